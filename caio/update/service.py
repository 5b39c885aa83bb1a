"""The update job: check → download → verify → install → activate, one at a time.

The job runs in a worker thread; every status change is saved atomically to
``state/update.json``, published to subscribers (the SSE route), and the
outcome is appended to the audit log. Failures leave ``current`` untouched.

One job at a time, across processes: the process running a job holds
``state/job.lock`` (see :class:`~caio.core.state.JobLock`), and only the
current, uncancelled job of that process may write the status. A cancelled
job's thread is fenced out: its next write raises :class:`JobCancelled`, and
it can no longer activate anything. Checks are :mod:`caio.update.checking`'s.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from caio.core.errors import ConflictError, ErrorCode, UpdateError
from caio.core.faults import fault_point
from caio.core.layout import InstallLayout, seed_release
from caio.core.manifest import Manifest
from caio.core.redact import redact
from caio.core.rollback import activate_previous
from caio.core.rollout import iso
from caio.core.state import AuditLog, JobError, JobLock, JobStatus, StateStore, utcnow
from caio.update.checking import Checker, RepositoryFactory
from caio.update.deltas import DeltaPath
from caio.update.download import ArtifactDownloader
from caio.update.errors import from_os_error
from caio.update.feed import StatusFeed
from caio.update.install import ReleaseInstaller
from caio.update.policy import (
    Choice,
    choose_release,
)
from caio.update.repository import Release, View
from caio.update.transport import Transport

if TYPE_CHECKING:
    from tuf.api.metadata import TargetFile

log = logging.getLogger(__name__)

# Progress within a stage is saved to state/update.json at most this often.
PROGRESS_SAVE_SECONDS = 1.0

# Failures of one location that another repository's copy of the same signed bytes may not have.
FETCH_ELSEWHERE = frozenset(
    {
        ErrorCode.REPOSITORY_UNREACHABLE,
        ErrorCode.REPOSITORY_UNAUTHORIZED,
        ErrorCode.SLOW_RETRIEVAL,
        ErrorCode.TARGET_NOT_FOUND,
        ErrorCode.HASH_MISMATCH,
        ErrorCode.LENGTH_MISMATCH,
    }
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class UpdateRequest:
    target_version: str | None = None
    allow_downgrade: bool = False
    allow_withdrawn: bool = False
    download_only: bool = False  # download and verify, keep the artifact, install nothing


class Restarter(Protocol):
    """What the update service needs of a restart strategy (caio.restart provides them)."""

    name: str

    def check(self) -> None: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class RestartPlan:
    strategy: str
    from_version: str
    to_version: str
    message: str


@dataclass(frozen=True)
class RollbackResult:
    from_version: str
    to_version: str


# A transfer cut by these may resume: its partial download is kept for the next job.
RESUMABLE = frozenset(
    {
        ErrorCode.CANCELLED.value,
        ErrorCode.INTERRUPTED.value,
        ErrorCode.REPOSITORY_UNREACHABLE.value,
        ErrorCode.SLOW_RETRIEVAL.value,
    }
)


# How long a new job waits for the lock of another process's job that has said it ended.
FINISHED_JOB_GRACE_SECONDS = 2.0


class JobCancelled(Exception):
    """Raised in a job thread that was cancelled or superseded: stop, write nothing."""


@dataclass(eq=False)
class _Job:
    id: str
    cancel: threading.Event = field(default_factory=threading.Event)
    partial: Path | None = None  # the .part file of the artifact being downloaded
    keep: Path | None = None  # a verified artifact kept for a later install (download only)
    thread: threading.Thread | None = None


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
        transports: tuple[Transport, ...] = (),
        host_id: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
        deltas: DeltaPath | None = None,
    ) -> None:
        self.layout = layout
        self._deltas = deltas or DeltaPath(layout)
        self.host_id = host_id or layout.host_id()
        self._clock = clock
        self._transports = transports
        self.running = running
        self.channel = channel
        self._repository = repository
        self._downloader = downloader
        self._installer = installer
        self._keep = keep_releases
        self._source_dir = source_dir
        self._state = StateStore(layout.state_dir / "update.json")
        self._job_lock = JobLock(layout.state_dir / "job.lock")
        self.audit = AuditLog(layout.state_dir / "audit.jsonl")
        self.feed = StatusFeed()
        self._lock = threading.Lock()  # guards _status, _job and the job lock
        self._tuf_lock = threading.Lock()  # ngclient's cache is single-user
        self.checker = Checker(
            layout=layout,
            running=running,
            channel=channel,
            host_id=self.host_id,
            repository=repository,
            deltas=self._deltas,
            tuf_lock=self._tuf_lock,
            clock=clock,
        )
        self._job: _Job | None = None
        self._status = JobStatus()
        # The job, stage and moment of the last save of a running job's status.
        self._saved: tuple[str | None, str, float] = (None, "", 0.0)

    def close(self) -> None:
        """Release the repository connections and end the check thread (the app's shutdown)."""
        self.checker.close()
        for transport in self._transports:
            transport.close()

    # --- start-up ---------------------------------------------------------
    def recover(self) -> None:
        """After a crash: remove leftovers, and close a job that was cut off.

        Nothing is touched while another process (an old child during a
        restart) runs a job: its staging tree and its status are its own.
        """
        self.layout.ensure()
        if repaired := self.audit.settle():  # a crash cut an append: repaired and recorded
            log.warning("audit log repaired: %s", "; ".join(repaired))
        with self._job_lock.probe() as nobody_runs_a_job:
            if nobody_runs_a_job:
                removed = self.layout.clean_leftovers()
                if removed:
                    log.warning(
                        "removed leftovers of an interrupted install: %s", ", ".join(removed)
                    )
            self._status = self._load_checked(nobody_runs_a_job)
            if nobody_runs_a_job:
                self._status = self._now_running(self._status)
        if (withdrawal := self.checker.recall_withdrawal()) is not None:
            reason = f" ({withdrawal.reason})" if withdrawal.reason else ""
            log.warning(
                "this process runs %s, which its publisher withdrew on %s%s: install a newer "
                "release, or roll back",
                self.running.version,
                iso(withdrawal.at),
                reason,
            )

    def _now_running(self, status: JobStatus) -> JobStatus:
        """A job that activated what this process runs is done: it needs no restart any more."""
        if not (
            status.status == "complete"
            and status.requires_restart
            and status.to_version == self.running.version
        ):
            return status
        status = status.model_copy(
            update={
                "requires_restart": False,
                "message": f"{self.running.version} is installed and running",
                "updated_at": utcnow(),
            }
        )
        self._state.save(status)
        return status

    def _load_checked(self, nobody_runs_a_job: bool) -> JobStatus:
        """The saved status; a "running" job that no process owns is closed as interrupted."""
        status = self._state.load()
        if not status.running or not nobody_runs_a_job:
            return status
        activated = (
            status.to_version is not None and self.layout.current_version == status.to_version
        )
        status = status.model_copy(
            update={
                "status": "failed",
                "stage": "failed",
                "error": JobError(
                    code=ErrorCode.INTERRUPTED.value,
                    message="the service stopped after activating; restart to run it"
                    if activated
                    else "the service stopped while this update ran; nothing was activated",
                ),
                "message": "interrupted",
                "finished_at": utcnow(),
            }
        )
        self._state.save(status)
        self.audit.append("update", outcome="interrupted", to=status.to_version)
        return status

    # --- queries ----------------------------------------------------------
    def status(self) -> JobStatus:
        """The job of this process, else the last one saved (by another process too).

        Never reports a running stage with nothing running: a saved "updating"
        whose owner is gone is closed as interrupted first.
        """
        job = self._job
        if job is not None and job.thread is not None and job.thread.is_alive():
            return self._status  # no lock: a job's write (with fsync) must not delay readers
        with self._lock:
            with self._job_lock.probe() as nobody_runs_a_job:
                self._status = self._load_checked(nobody_runs_a_job)
            return self._status

    # --- the job ----------------------------------------------------------
    def start(self, request: UpdateRequest, requested_by: str) -> JobStatus:
        """Start a job in a worker thread and return its first status.

        Raises:
            ConflictError: a job is already running, here or in another process.
        """
        with self._lock:
            if self._status.running and self._job is not None:
                raise ConflictError(
                    f"an update to {self._status.to_version or 'the newest release'} is running",
                    code="update_in_progress",
                )
            if not self._acquire_after_a_finished_job():
                raise ConflictError(
                    "an update is running in another CAIO process (a restart is under way); "
                    "try again when it ends",
                    code="update_in_progress",
                )
            previous = self._job
            job = _Job(id=uuid.uuid4().hex)
            now = utcnow()
            self._status = JobStatus(
                status="updating",
                stage="checking",
                progress=0,
                message="checking for updates",
                from_version=self.running.version,
                requested_by=requested_by,
                job_id=job.id,
                started_at=now,
                updated_at=now,
            )
            self._state.save(self._status)
            first = self._status
            self._job = job
            job.thread = threading.Thread(
                target=self._run, args=(job, request, previous), name="caio-update", daemon=True
            )
            job.thread.start()
        self.feed.publish(first)
        return first

    def cancel(self, requested_by: str, *, reason: str | None = None) -> JobStatus:
        """Stop the running job: it ends ``failed`` with ``cancelled`` at once.

        ``current`` and ``previous`` are untouched; the partial download stays
        in ``downloads/`` and the next job resumes it. The job's thread is
        fenced and stops at its next step.

        Raises:
            ConflictError: no update is running in this process.
        """
        with self._lock:
            job = self._job
            if job is None or job.cancel.is_set() or not self._status.running:
                raise ConflictError("no update is running", code="no_update_in_progress")
            job.cancel.set()
            message = reason or f"cancelled by {requested_by}; nothing was activated"
            status = self._status.model_copy(
                update={
                    "status": "failed",
                    "stage": "failed",
                    "message": message,
                    "error": JobError(code=ErrorCode.CANCELLED.value, message=message),
                    "updated_at": utcnow(),
                    "finished_at": utcnow(),
                }
            )
            self._state.save(status)
            self._status = status
        self.feed.publish(status)
        self.audit.append(
            "update",
            outcome="cancelled",
            by=requested_by,
            to=status.to_version,
            **{"from": self.running.version},
        )
        return status

    def shutdown(self) -> None:
        """The service is stopping (restart or shutdown): cancel a running job, saying why."""
        try:
            self.cancel(
                "service",
                reason="the service stopped (restart or shutdown) while this update ran; "
                "nothing was activated; start the update again",
            )
        except ConflictError:
            return  # nothing running: nothing to say

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the job's thread ends (for tests and the CLI)."""
        job = self._job
        if job is not None and job.thread is not None:
            job.thread.join(timeout)
        return self.status()

    def _update(self, job: _Job, **changes: Any) -> None:
        """Change the job's status; memory and file change together.

        Raises:
            JobCancelled: ``job`` was cancelled or superseded; nothing is written.
        """
        if "message" in changes:
            changes["message"] = redact(changes["message"])
        with self._lock:
            self._fence(job)
            status = self._status.model_copy(update={**changes, "updated_at": utcnow()})
            if self._worth_saving(status):
                self._state.save(status)  # the file first: a reader of the API never runs ahead
                self._saved = (status.job_id, status.stage, time.monotonic())
            self._status = status
        self.feed.publish(status)

    def _worth_saving(self, status: JobStatus) -> bool:
        """All but progress within a running stage goes to disk at once; that, once a second.

        Subscribers (the event stream, the API) get every change from memory; the file
        is for other processes and for the next start. A 200 MB download used to
        rewrite it, with two fsyncs, at every percent. A job's end, and any change of
        job or stage, is never held back: another process reading a running job that
        has ended would call it interrupted.
        """
        job_id, stage, at = self._saved
        return (
            status.status != "updating"
            or (status.job_id, status.stage) != (job_id, stage)
            or time.monotonic() - at >= PROGRESS_SAVE_SECONDS
        )

    def _fence(self, job: _Job) -> None:
        """Raises JobCancelled unless ``job`` is this process's live job (call under _lock)."""
        if job is not self._job or job.cancel.is_set():
            raise JobCancelled(job.id)

    def _run(self, job: _Job, request: UpdateRequest, previous: _Job | None) -> None:
        facts: dict[str, Any] = {}
        outcome = ErrorCode.INTERNAL_ERROR.value
        failure: tuple[str, str] | None = None
        try:
            old_thread = previous.thread if previous is not None else None
            if old_thread is not None and old_thread.is_alive():
                self._update(job, message="waiting for the cancelled job to stop")
                old_thread.join()
            self._job_steps(job, request, facts)
            outcome = "complete"
        except JobCancelled:
            outcome = ErrorCode.CANCELLED.value
        except UpdateError as e:
            outcome = e.code
            failure = (e.code, e.message)
        except OSError as e:
            err = from_os_error(e, "update")
            outcome = err.code
            failure = (err.code, err.message)
        except Exception as e:
            log.exception("update job crashed")
            failure = (outcome, f"{type(e).__name__}: {e}")
        finally:
            # Tidy first: once a job says "failed", what it downloaded is already gone.
            with self._lock:
                if job is self._job:
                    self._tidy(job, outcome)
            if failure is not None:
                self._fail(job, *failure, facts)
            with self._lock:  # a newer job (started once this one said how it ended) keeps it
                if job is self._job:
                    self._job_lock.release()

    def _acquire_after_a_finished_job(self) -> bool:
        """The job lock; a moment's grace when another process's job has said it ended.

        A job writes how it ended, then lets go of the lock: a client that
        polls that status and starts the next update at once must not be told
        an update is running.
        """
        deadline = time.monotonic() + FINISHED_JOB_GRACE_SECONDS
        while not self._job_lock.try_acquire():
            if time.monotonic() >= deadline or self._state.load().running:
                return False
            time.sleep(0.02)
        return True

    def _tidy(self, job: _Job, outcome: str) -> None:
        """Bound ``downloads/``: keep only a resumable partial or an artifact asked for."""
        keep = [job.partial] if job.partial is not None and outcome in RESUMABLE else []
        if job.keep is not None:
            keep.append(job.keep)
        try:
            self._downloader.prune(keep)
        except OSError as e:
            log.warning("could not tidy %s: %s", self._downloader.directory, e)

    def _job_steps(self, job: _Job, request: UpdateRequest, facts: dict[str, Any]) -> None:
        if request.target_version is not None:
            facts["asked"] = request.target_version  # recorded even if nothing is chosen
        with self._tuf_lock:
            self._fence_now(job)
            view = self._repository().refresh()
            facts["metadata_versions"] = view.metadata.versions
            now = self._clock()
            # Listed, but not by enough repositories, or not the same bytes: say so by name.
            asked = request.target_version
            if asked is not None and (refused := view.refusal(asked)) is not None:
                raise refused
            choice = choose_release(
                view.releases,
                running=self.running.version,
                channel=self.channel,
                host_id=self.host_id,
                now=now,
                target_version=request.target_version,
                allow_downgrade=request.allow_downgrade,
                allow_withdrawn=request.allow_withdrawn,
                bad_versions=frozenset(self.layout.bad_versions()),
                delays=self.checker.sightings.delays(view.releases, now),
            )
            release = choice.release
            if release is None:
                self._nothing_to_install(job, choice, facts)
                return
            info = view.verified_target(release)
            if signers := view.signers(release.version):
                facts["signed_by"] = list(signers)  # which repositories agreed on these bytes
        facts["to"] = release.version
        facts["sha256"] = info.hashes.get("sha256")
        if self.layout.current_version == release.version:
            self._finish(job, f"{release.version} is installed; restart to run it", True)
            return

        artifact = self._download(job, view, release, info, facts)
        if request.download_only:
            job.keep = artifact
            self._finish(job, f"{release.version} is downloaded and verified; not installed", False)
            self._audit(job, "update", outcome="downloaded", **self._who(), **facts)
            return
        fault_point("after_download")
        self._update(job, stage="installing", progress=50, message=f"installing {release.version}")
        self._installer.install(
            artifact, release.version, lambda f: self._update(job, progress=50 + int(f * 45))
        )
        seed_release(self.layout, self._source_dir, self.running)
        self._deltas.keep(release.version, artifact)  # the next update's delta base
        fault_point("before_activation")
        with self._lock:  # activation and its status change as one step: cancel cannot split them
            self._fence(job)
            previous = self.layout.activate(release.version)
            fault_point("after_switch")
            self.audit.append(
                "update", outcome="activated", previous=previous, **self._who(), **facts
            )
            artifact.unlink(missing_ok=True)
            pruned = self.layout.prune(self._keep)  # before "complete": a reader sees it done
            self._deltas.prune()
            final = self._status.model_copy(
                update={
                    "status": "complete",
                    "stage": "complete",
                    "progress": 100,
                    "message": f"{release.version} is installed and active; restart to run it",
                    "requires_restart": True,
                    "updated_at": utcnow(),
                    "finished_at": utcnow(),
                }
            )
            self._state.save(final)  # the file first: what the API says is already on disk
            self._status = final
        self.feed.publish(final)
        if pruned:
            log.info("pruned old releases: %s", ", ".join(pruned))

    def _download(
        self, job: _Job, view: View, release: Release, info: TargetFile, facts: dict[str, Any]
    ) -> Path:
        """The verified release: the tar a signed delta made from the current release's,
        when one applies here, else the artifact downloaded whole (``facts`` say which)."""

        def fetch(target: TargetFile, locations: list[tuple[str, Transport | None]]) -> Path:
            job.partial = self._downloader.paths(target)[1]
            return self._fetch(job, target, locations)

        base = self._deltas.base_for(release.version)
        fallback: str | None = None
        if base is not None:
            try:
                delta = view.delta_target(base, release.version)
            except UpdateError as e:  # the role that would list it does not verify
                delta, fallback = None, e.message
            if delta is not None:
                self._update(
                    job,
                    stage="downloading",
                    to_version=release.version,
                    bytes_total=delta.info.length,
                    message=f"downloading the delta from {base} to {release.version}",
                )
                listed_at = delta.locations
                tried = self._deltas.attempt(
                    delta.info, release, info, base, lambda t: fetch(t, listed_at)
                )
                if tried.tar is not None:
                    facts["delta"] = {"from": base, "bytes": tried.delta_bytes}
                    facts["bytes"] = tried.delta_bytes
                    return tried.tar
                fallback = tried.fallback
        note = ""
        if fallback is not None:
            facts["delta_fallback"] = fallback
            note = f"the delta from {base} was not used ({fallback}); "
        self._update(
            job,
            stage="downloading",
            to_version=release.version,
            bytes_total=info.length,
            message=f"{note}downloading {release.version}",
        )
        artifact = fetch(info, view.locations(info, release.version))
        facts["bytes"] = info.length
        return artifact

    def _fetch(
        self, job: _Job, info: TargetFile, locations: list[tuple[str, Transport | None]]
    ) -> Path:
        """The verified artifact, from the first location that gives the signed bytes.

        With several repositories agreeing on the bytes, one that cannot serve them (down,
        hosting metadata only, or serving other bytes) is not the end: the next one is asked.
        """
        for n, (url, transport) in enumerate(locations, 1):
            try:
                return self._downloader.fetch(
                    url, info, lambda done, total: self._on_bytes(job, done, total), transport
                )
            except UpdateError as e:
                if n == len(locations) or e.error_code not in FETCH_ELSEWHERE:
                    raise
                log.warning("%s; fetching the same bytes from the next repository", e.message)
        raise UpdateError(ErrorCode.TARGET_NOT_FOUND, f"{info.path}: no repository serves it")

    def _nothing_to_install(self, job: _Job, choice: Choice, facts: dict[str, Any]) -> None:
        """Up to date, or waiting for a rollout to reach this host: say which, and when."""
        if choice.waiting is None:
            self._finish(job, f"already up to date: {self.running.version} is the newest", False)
            self._audit(job, "update", outcome="up_to_date", **self._who(), **facts)
            return
        when = (
            f"this host becomes eligible at {iso(choice.waiting_until)}"
            if choice.waiting_until is not None
            else "its rollout is paused or does not reach this host"
        )
        self._finish(
            job,
            f"{choice.waiting.version} is being rolled out and has not reached this host yet: "
            f"{when}; {self.running.version} stays",
            False,
        )
        self._audit(
            job,
            "update",
            outcome="not_eligible",
            waiting=choice.waiting.version,
            eligible_at=iso(choice.waiting_until) if choice.waiting_until else None,
            **self._who(),
            **facts,
        )

    def _fence_now(self, job: _Job) -> None:
        with self._lock:
            self._fence(job)

    def _audit(self, job: _Job, event: str, **fields: Any) -> None:
        """An audit record for ``job``, unless it was cancelled (its canceller wrote one)."""
        with self._lock:
            if job is not self._job or job.cancel.is_set():
                return
        self.audit.append(event, **fields)

    def _on_bytes(self, job: _Job, done: int, total: int) -> None:
        stage = "verifying" if done >= total else "downloading"
        progress = int(50 * done / total) if total else 50
        if stage == "verifying":
            self._update(job, stage=stage, bytes_done=done, progress=50, message="verifying")
        elif progress != self._status.progress or done == 0:
            self._update(job, bytes_done=done, progress=progress)
        elif job.cancel.is_set():
            raise JobCancelled(job.id)

    def _finish(self, job: _Job, message: str, requires_restart: bool) -> None:
        self._update(
            job,
            status="complete",
            stage="complete",
            progress=100,
            message=message,
            requires_restart=requires_restart,
            finished_at=utcnow(),
        )

    def _fail(self, job: _Job, code: str, message: str, facts: dict[str, Any]) -> None:
        message = redact(message)
        try:
            self._update(
                job,
                status="failed",
                stage="failed",
                message=message,
                error=JobError(code=code, message=message),
                finished_at=utcnow(),
            )
        except JobCancelled:
            return  # cancelled meanwhile: the canceller has said what happened
        log.warning("update failed [%s]: %s", code, message)
        self.audit.append("update", outcome="failed", code=code, **self._who(), **facts)

    def _who(self) -> dict[str, Any]:
        """Who asked, from which version, and how long the job has taken so far."""
        started = self._status.started_at
        seconds = round((utcnow() - started).total_seconds(), 3) if started else None
        return {"by": self._status.requested_by, "from": self.running.version, "seconds": seconds}

    # --- restart --------------------------------------------------------------
    def prepare_restart(
        self, restarter: Restarter, *, requested_by: str, graceful: bool
    ) -> RestartPlan:
        """Check that a restart can run now and record the request; the caller runs it.

        Raises:
            ConflictError: an update is running (wait, or cancel it first).
            RestartError: the strategy cannot restart now.
        """
        if self.status().running:
            raise ConflictError(
                "an update is running; wait for it to end, or cancel it (DELETE "
                "/api/v1/update) and then restart",
                code="update_in_progress",
            )
        restarter.check()
        current = self.layout.current_version
        self.audit.append(
            "restart",
            outcome="requested",
            by=requested_by,
            strategy=restarter.name,
            graceful=graceful,
            running=self.running.version,
            current=current,
        )
        return RestartPlan(
            strategy=restarter.name,
            from_version=self.running.version,
            to_version=current or self.running.version,
            message=restarter.describe(),
        )

    # --- rollback -----------------------------------------------------------
    def rollback(self, requested_by: str) -> RollbackResult:
        """Make ``previous`` current again.

        Raises:
            ConflictError: a job is running, or there is no previous release.
        """
        if self.status().running:
            raise ConflictError("an update is running", code="update_in_progress")
        with self._lock:
            old, new = activate_previous(self.layout, self._job_lock, self.audit, by=requested_by)
        return RollbackResult(from_version=old, to_version=new)
