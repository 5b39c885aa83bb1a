"""What the repository offers this host: a verified refresh, shared by callers that
arrive while one runs (single flight), with the rollout, withdrawal and delta facts
the API, the console, metrics and the scheduler show.

A check never changes what is installed; it records its outcome in
``state/check.json`` (metrics and ``/health`` read it) and when this host first saw
each release (``state/rollout-sightings.json``, for rollout delays).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime

from packaging.version import Version

from caio.core.errors import ErrorCode, UpdateError
from caio.core.layout import InstallLayout
from caio.core.manifest import Manifest
from caio.core.rollout import Withdrawal
from caio.update.agreement import Agreement
from caio.update.checks import CheckRecord
from caio.update.deltas import DeltaOffer, DeltaPath
from caio.update.policy import Eligibility, choose_release, eligibility, releases_for_channel
from caio.update.repository import Release, Repository, TrustedMetadataInfo, View
from caio.update.sightings import Sightings

log = logging.getLogger(__name__)

# A check looks up the signed delta of at most this many of the newest releases newer
# than the running one (each lookup may read a hash bin): a host far behind pays no more.
DELTA_OFFERS = 8

RepositoryFactory = Callable[[], Repository]


@dataclass(frozen=True)
class CheckResult:
    running_version: str
    channel: str
    host_id: str
    releases: list[Release]
    latest: Release | None
    update_available: Release | None  # the newest release this host may install now
    waiting: Release | None  # a newer release whose rollout has not reached this host
    waiting_until: datetime | None
    eligibility: dict[str, Eligibility]  # by version
    running_withdrawn: Withdrawal | None
    metadata: TrustedMetadataInfo
    checked_at: datetime
    skipped_entries: list[str] = field(default_factory=list)  # unreadable index entries
    # With a repository map: who signs each listed version, offered or not.
    approvals: list[Agreement] = field(default_factory=list)
    # By version, for the DELTA_OFFERS newest releases newer than the running one (and
    # update_available): the signed delta from the current release.
    deltas: dict[str, DeltaOffer] = field(default_factory=dict)


class Checker:
    """Checks what the repository offers; one refresh at a time through ngclient's cache."""

    def __init__(
        self,
        *,
        layout: InstallLayout,
        running: Manifest,
        channel: str,
        host_id: str,
        repository: RepositoryFactory,
        deltas: DeltaPath,
        tuf_lock: threading.Lock,
        clock: Callable[[], datetime],
    ) -> None:
        self.layout = layout
        self.running = running
        self.channel = channel
        self.host_id = host_id
        self._repository = repository
        self._deltas = deltas
        self._tuf_lock = tuf_lock  # ngclient's cache is single-user: shared with the job
        self._clock = clock
        self.records = CheckRecord(layout.state_dir / "check.json")
        self.sightings = Sightings(layout.state_dir / "rollout-sightings.json")
        # The running version's withdrawal, from the last successful check.
        self.running_withdrawn: Withdrawal | None = None
        self._flight_lock = threading.Lock()
        self._flight: Future[CheckResult] | None = None
        self._queue: queue.SimpleQueue[Future[CheckResult] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def close(self) -> None:
        """End the check thread (the app's shutdown); a check running finishes first."""
        self._queue.put(None)

    def recall_withdrawal(self) -> Withdrawal | None:
        """The running version's withdrawal as the last successful check saw it (at start)."""
        self.running_withdrawn = self.records.read().withdrawal_of(self.running.version)
        return self.running_withdrawn

    def check(self) -> CheckResult:
        """What the repository offers now (a fresh verified refresh).

        Raises:
            UpdateError: trust not configured, or a TUF/network failure;
                metadata_expired carries the last trusted versions and expiry.
        """
        try:
            with self._tuf_lock:
                repository = self._repository()
                try:
                    view = repository.refresh()
                except UpdateError as e:
                    if e.error_code is ErrorCode.METADATA_EXPIRED:
                        raise _explain_expired(e, repository.trusted_metadata()) from e
                    raise
        except UpdateError as e:
            self.records.failed(self._clock(), e.code)
            raise
        now = self._clock()
        releases = releases_for_channel(view.releases, self.channel)
        bad = frozenset(self.layout.bad_versions())
        delays = self.sightings.delays(view.releases, now)
        choice = choose_release(
            view.releases,
            running=self.running.version,
            channel=self.channel,
            host_id=self.host_id,
            now=now,
            bad_versions=bad,
            delays=delays,
        )
        running = next((r for r in view.releases if r.version == self.running.version), None)
        running_version = Version(self.running.version)
        newer = [r for r in releases if r.parsed_version > running_version][-DELTA_OFFERS:]
        if choice.release is not None and choice.release not in newer:
            newer.append(choice.release)  # a pinned or older choice: its own delta
        with self._tuf_lock:  # ngclient's cache is single-user
            offers = {
                r.version: offer for r in newer if (offer := self._delta_offer(view, r)) is not None
            }
        result = CheckResult(
            running_version=self.running.version,
            channel=self.channel,
            host_id=self.host_id,
            releases=releases,
            latest=releases[-1] if releases else None,
            update_available=choice.release,
            waiting=choice.waiting,
            waiting_until=choice.waiting_until,
            eligibility={
                r.version: eligibility(r, self.host_id, now, delays[r.version]) for r in releases
            },
            running_withdrawn=running.withdrawn if running is not None else None,
            metadata=view.metadata,
            checked_at=now,
            skipped_entries=list(view.skipped),
            approvals=view.approvals(),
            deltas=offers,
        )
        self.records.succeeded(
            now,
            newest=result.latest.version if result.latest else None,
            newest_eligible=_newest_eligible(releases, result.eligibility, bad),
            running_withdrawn=result.running_withdrawn is not None,
            withdrawn={r.version: r.withdrawn for r in view.releases if r.withdrawn is not None},
            approvals=result.approvals,
        )
        self.running_withdrawn = result.running_withdrawn
        return result

    def _delta_offer(self, view: View, release: Release) -> DeltaOffer | None:
        """The signed delta an update to ``release`` would try, and whether it applies here.

        None when none is listed, or the role that would list it does not verify (an
        update would then download the release whole, and say why).
        """
        base = self._deltas.base_for(release.version)
        if base is None:
            return None
        try:
            delta = view.delta_target(base, release.version)
        except UpdateError:
            return None
        if delta is None:
            return None
        return DeltaOffer(base, delta.info.length, self._deltas.base_tar(base).is_file())

    def trusted_metadata(self) -> TrustedMetadataInfo | None:
        """Versions and expiry of the metadata trusted now (local files; None: no repository)."""
        try:
            return self._repository().trusted_metadata()
        except UpdateError:
            return None

    def shared(self) -> Future[CheckResult]:
        """A check that callers arriving while it runs share (single flight).

        The refresh runs in its own thread, so waiting callers hold no worker
        thread; a caller may stop waiting and the refresh still completes.
        """
        with self._flight_lock:
            flight = self._flight
            if flight is None:
                flight = Future()
                self._flight = flight
                self._queue.put(flight)
                if self._thread is None:  # one thread for every check, started once
                    self._thread = threading.Thread(
                        target=self._worker, name="caio-check", daemon=True
                    )
                    self._thread.start()
            return flight

    def _worker(self) -> None:
        while (flight := self._queue.get()) is not None:
            self._run(flight)

    def _run(self, flight: Future[CheckResult]) -> None:
        try:
            result = self.check()
        except BaseException as e:
            with self._flight_lock:
                self._flight = None
            flight.set_exception(e)
        else:
            with self._flight_lock:
                self._flight = None
            flight.set_result(result)


def _newest_eligible(
    releases: list[Release], places: dict[str, Eligibility], bad: frozenset[str]
) -> str | None:
    """The newest release this host would take by itself: eligible, not withdrawn, not bad."""
    usable = [
        r
        for r in releases
        if places[r.version].eligible and r.withdrawn is None and r.version not in bad
    ]
    return usable[-1].version if usable else None


def _explain_expired(error: UpdateError, trusted: TrustedMetadataInfo) -> UpdateError:
    """``metadata_expired`` with the last trusted version and expiry of every role."""
    roles = ", ".join(
        f"{role} v{trusted.versions[role]} (expires {trusted.expires[role]:%Y-%m-%dT%H:%M:%SZ})"
        for role in trusted.versions
    )
    return UpdateError(
        ErrorCode.METADATA_EXPIRED,
        f"{error.message}; last trusted: {roles or 'nothing'}",
        details={
            "metadata": {
                "versions": trusted.versions,
                "expires": {r: t.isoformat() for r, t in trusted.expires.items()},
            }
        },
    )
