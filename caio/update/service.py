"""The update job: check → download → verify → install → activate, one at a time.

The job runs in a worker thread; every status change is saved atomically to
``state/update.json``, published to subscribers (the SSE route), and the
outcome is appended to the audit log. Failures leave ``current`` untouched.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caio.core.errors import ConflictError, ErrorCode, UpdateError
from caio.core.faults import fault_point
from caio.core.layout import InstallLayout
from caio.core.manifest import Manifest
from caio.core.state import AuditLog, JobError, JobStatus, StateStore, utcnow
from caio.update.download import ArtifactDownloader
from caio.update.errors import from_os_error
from caio.update.install import ReleaseInstaller, seed_release
from caio.update.policy import choose_release, releases_for_channel
from caio.update.repository import Release, TrustedMetadataInfo, TrustedRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpdateRequest:
    target_version: str | None = None
    allow_downgrade: bool = False


@dataclass(frozen=True)
class CheckResult:
    running_version: str
    channel: str
    releases: list[Release]
    latest: Release | None
    update_available: Release | None
    metadata: TrustedMetadataInfo


@dataclass(frozen=True)
class RollbackResult:
    from_version: str
    to_version: str


class StatusFeed:
    """Hands every status change to asyncio subscribers (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[JobStatus]]] = []

    def subscribe(self) -> asyncio.Queue[JobStatus]:
        queue: asyncio.Queue[JobStatus] = asyncio.Queue()
        with self._lock:
            self._subscribers.append((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[JobStatus]) -> None:
        with self._lock:
            self._subscribers = [(lp, q) for lp, q in self._subscribers if q is not queue]

    def publish(self, status: JobStatus) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            if not loop.is_closed():
                loop.call_soon_threadsafe(queue.put_nowait, status)


RepositoryFactory = Callable[[], TrustedRepository]


class UpdateService:
    """Runs update jobs and rollbacks against one install layout."""

    def __init__(
        self,
        *,
        layout: InstallLayout,
        running: Manifest,
        channel: str,
        repository: RepositoryFactory,
        downloader: ArtifactDownloader,
        installer: ReleaseInstaller,
        keep_releases: int,
        source_dir: Path,
    ) -> None:
        self.layout = layout
        self.running = running
        self.channel = channel
        self._repository = repository
        self._downloader = downloader
        self._installer = installer
        self._keep = keep_releases
        self._source_dir = source_dir
        self._state = StateStore(layout.state_dir / "update.json")
        self.audit = AuditLog(layout.state_dir / "audit.jsonl")
        self.feed = StatusFeed()
        self._lock = threading.Lock()  # guards _status and job start
        self._tuf_lock = threading.Lock()  # ngclient's cache is single-user
        self._thread: threading.Thread | None = None
        self._status = JobStatus()

    # --- start-up ---------------------------------------------------------
    def recover(self) -> None:
        """After a crash: remove leftovers, and close a job that was cut off."""
        self.layout.ensure()
        removed = self.layout.clean_leftovers()
        if removed:
            log.warning("removed leftovers of an interrupted install: %s", ", ".join(removed))
        status = self._state.load()
        if status.running:
            status = status.model_copy(
                update={
                    "status": "failed",
                    "stage": "failed",
                    "error": JobError(
                        code=ErrorCode.INTERRUPTED.value,
                        message="the service stopped while this update ran; nothing was activated"
                        if self.layout.current_version != status.to_version
                        else "the service stopped after activating; restart to run it",
                    ),
                    "message": "interrupted",
                    "finished_at": utcnow(),
                }
            )
            self._state.save(status)
            self.audit.append("update", outcome="interrupted", to=status.to_version)
        self._status = status

    # --- queries ----------------------------------------------------------
    def status(self) -> JobStatus:
        """The running job, or the last one saved (possibly by the supervisor after a restart)."""
        with self._lock:
            job_here = self._thread is not None and self._thread.is_alive()
            if not job_here:
                self._status = self._state.load()
            return self._status

    def check(self) -> CheckResult:
        """What the repository offers now (a fresh verified refresh).

        Raises:
            UpdateError: trust not configured, or a TUF/network failure.
        """
        with self._tuf_lock:
            view = self._repository().refresh()
        releases = releases_for_channel(view.releases, self.channel)
        available = choose_release(
            view.releases,
            running=self.running.version,
            channel=self.channel,
            bad_versions=frozenset(self.layout.bad_versions()),
        )
        return CheckResult(
            running_version=self.running.version,
            channel=self.channel,
            releases=releases,
            latest=releases[-1] if releases else None,
            update_available=available,
            metadata=view.metadata,
        )

    # --- the job ----------------------------------------------------------
    def start(self, request: UpdateRequest, requested_by: str) -> JobStatus:
        """Start a job in a worker thread and return its first status.

        Raises:
            ConflictError: a job is already running.
        """
        with self._lock:
            if self._status.running:
                raise ConflictError(
                    f"an update to {self._status.to_version or 'the newest release'} is running",
                    code="update_in_progress",
                )
            now = utcnow()
            self._status = JobStatus(
                status="updating",
                stage="checking",
                progress=0,
                message="checking for updates",
                from_version=self.running.version,
                requested_by=requested_by,
                started_at=now,
                updated_at=now,
            )
            self._state.save(self._status)
            first = self._status
            self._thread = threading.Thread(
                target=self._run, args=(request,), name="caio-update", daemon=True
            )
            self._thread.start()
        self.feed.publish(first)
        return first

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the running job ends (for tests and the CLI)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.status()

    def _update(self, **changes: Any) -> None:
        with self._lock:  # memory and file change together, so readers never see them differ
            self._status = self._status.model_copy(update={**changes, "updated_at": utcnow()})
            status = self._status
            self._state.save(status)
        self.feed.publish(status)

    def _run(self, request: UpdateRequest) -> None:
        facts: dict[str, Any] = {}
        try:
            self._job(request, facts)
        except UpdateError as e:
            self._fail(e.code, e.message, facts)
        except OSError as e:
            err = from_os_error(e, "update")
            self._fail(err.code, err.message, facts)
        except Exception as e:
            log.exception("update job crashed")
            self._fail(ErrorCode.INTERNAL_ERROR.value, f"{type(e).__name__}: {e}", facts)

    def _job(self, request: UpdateRequest, facts: dict[str, Any]) -> None:
        with self._tuf_lock:
            view = self._repository().refresh()
            facts["metadata_versions"] = view.metadata.versions
            release = choose_release(
                view.releases,
                running=self.running.version,
                channel=self.channel,
                target_version=request.target_version,
                allow_downgrade=request.allow_downgrade,
                bad_versions=frozenset(self.layout.bad_versions()),
            )
            if release is None:
                self._finish(f"already up to date: {self.running.version} is the newest", False)
                self.audit.append("update", outcome="up_to_date", **self._who(), **facts)
                return
            info = view.target_info(release.target)
        facts["to"] = release.version
        signed_version = (info.custom or {}).get("caio", {}).get("version")
        if signed_version != release.version:
            raise UpdateError(
                ErrorCode.REPOSITORY_INVALID,
                f"index lists {release.version} at {release.target}, "
                f"whose signed metadata says {signed_version!r}",
            )
        facts["sha256"] = info.hashes.get("sha256")
        if self.layout.current_version == release.version:
            self._finish(f"{release.version} is installed; restart to run it", True)
            return

        self._update(
            stage="downloading",
            to_version=release.version,
            bytes_total=info.length,
            message=f"downloading {release.version}",
        )
        artifact = self._downloader.fetch(view.target_url(info), info, self._on_bytes)
        fault_point("after_download")
        self._update(stage="installing", progress=50, message=f"installing {release.version}")
        self._installer.install(
            artifact, release.version, lambda f: self._update(progress=50 + int(f * 45))
        )
        seed_release(self.layout, self._source_dir, self.running)
        fault_point("before_activation")
        previous = self.layout.activate(release.version)
        fault_point("after_switch")
        artifact.unlink(missing_ok=True)
        self.audit.append("update", outcome="activated", previous=previous, **self._who(), **facts)
        pruned = self.layout.prune(self._keep)
        if pruned:
            log.info("pruned old releases: %s", ", ".join(pruned))
        self._finish(f"{release.version} is installed and active; restart to run it", True)

    def _on_bytes(self, done: int, total: int) -> None:
        stage = "verifying" if done >= total else "downloading"
        progress = int(50 * done / total) if total else 50
        if stage == "verifying":
            self._update(stage=stage, bytes_done=done, progress=50, message="verifying")
        elif progress != self._status.progress or done == 0:
            self._update(bytes_done=done, progress=progress)

    def _finish(self, message: str, requires_restart: bool) -> None:
        self._update(
            status="complete",
            stage="complete",
            progress=100,
            message=message,
            requires_restart=requires_restart,
            finished_at=utcnow(),
        )

    def _fail(self, code: str, message: str, facts: dict[str, Any]) -> None:
        log.warning("update failed [%s]: %s", code, message)
        self._update(
            status="failed",
            stage="failed",
            message=message,
            error=JobError(code=code, message=message),
            finished_at=utcnow(),
        )
        self.audit.append("update", outcome="failed", code=code, **self._who(), **facts)

    def _who(self) -> dict[str, Any]:
        return {"by": self._status.requested_by, "from": self.running.version}

    # --- rollback -----------------------------------------------------------
    def rollback(self, requested_by: str) -> RollbackResult:
        """Make ``previous`` current again.

        Raises:
            ConflictError: a job is running, or there is no previous release.
        """
        with self._lock:
            if self._status.running:
                raise ConflictError("an update is running", code="update_in_progress")
            try:
                old, new = self.layout.swap_to_previous()
            except FileNotFoundError as e:
                raise ConflictError(str(e), code="no_previous_release") from e
        self.audit.append(
            "rollback", outcome="activated", by=requested_by, **{"from": old, "to": new}
        )
        return RollbackResult(from_version=old, to_version=new)
