"""Scheduled updates (``CAIO_AUTO_UPDATE``), off by default.

Every ``CAIO_CHECK_INTERVAL`` seconds (with jitter, so a fleet does not ask
the repository all at once) the scheduler checks. What it does next depends
on the mode:

* ``check``: nothing more: the check is recorded (``/metrics``, ``check.json``);
* ``download``: download and verify the release this host may take, and keep it;
* ``install``: inside the maintenance window, install it (outside, download it);
* ``restart``: as ``install``, then restart into it through the restart strategy.

Jobs go through the same pipeline as ``POST /api/v1/update``, so they show in
``GET /api/v1/update`` and are audited with the actor ``scheduler``. A failed
run backs off (the interval doubles, up to 16 times); a version that failed
its health check is recorded as bad and never chosen again, by the scheduler
or any automatic choice. A job that an admin runs meanwhile wins: the
scheduler skips its turn.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from caio.core.errors import CaioError, ConflictError
from caio.core.schedule import MaintenanceWindow
from caio.core.state import JobStatus
from caio.update.service import UpdateRequest, UpdateService

log = logging.getLogger(__name__)

AutoMode = Literal["off", "check", "download", "install", "restart"]
ACTOR = "scheduler"
MAX_BACKOFF_FACTOR = 16
JITTER = 0.1


@dataclass(frozen=True)
class SchedulerState:
    mode: AutoMode
    next_run: datetime | None = None
    last_run: datetime | None = None
    last_outcome: str | None = None  # up_to_date, waiting, checked, downloaded, installed, ...
    consecutive_failures: int = 0
    in_window: bool = True


class Scheduler:
    """Runs scheduled checks and updates in one daemon thread."""

    def __init__(
        self,
        service: UpdateService,
        *,
        mode: AutoMode,
        interval: float,
        window: MaintenanceWindow | None = None,
        restart: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
        job_timeout: float = 3600.0,
    ) -> None:
        if mode == "restart" and restart is None:
            raise ValueError("the restart mode needs a way to restart")
        self._service = service
        self.mode: AutoMode = mode
        self.interval = interval
        self.window = window
        self._restart = restart
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
        self._job_timeout = job_timeout
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._downloaded: str | None = None  # the version whose artifact is kept
        self._lock = threading.Lock()
        self._state = SchedulerState(mode=mode, in_window=self._in_window(clock()))

    # --- lifecycle --------------------------------------------------------
    def start(self) -> None:
        if self.mode == "off" or self._thread is not None:
            return
        first = self._rng.uniform(0, self.interval * JITTER)
        self._set(next_run=self._clock() + timedelta(seconds=first))
        self._thread = threading.Thread(
            target=self._loop, args=(first,), name="caio-scheduler", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)

    def state(self) -> SchedulerState:
        with self._lock:
            return replace(self._state, in_window=self._in_window(self._clock()))

    def _loop(self, delay: float) -> None:
        while not self._wake.wait(delay):
            try:
                self.run_once()
            except Exception:  # the scheduler must outlive any one bad turn
                log.exception("scheduled update turn crashed")
                self._outcome("failed", failed=True)
            delay = self._next_delay()
            self._set(next_run=self._clock() + timedelta(seconds=delay))

    def _next_delay(self) -> float:
        factor: int = min(MAX_BACKOFF_FACTOR, 2 ** self.state().consecutive_failures)
        return self.interval * factor * self._rng.uniform(1 - JITTER, 1 + JITTER)

    # --- one turn ---------------------------------------------------------
    def run_once(self) -> str:
        """One scheduled turn; returns its outcome (also kept in :meth:`state`)."""
        try:
            check = self._service.checker.check()
        except CaioError as e:
            log.warning("scheduled check failed [%s]: %s", e.code, e.message)
            return self._outcome(f"check_failed:{e.code}", failed=True)
        release = check.update_available
        if self.mode == "check":
            return self._outcome("checked")
        if release is None:
            return self._outcome("waiting" if check.waiting is not None else "up_to_date")
        if self.mode in ("install", "restart") and self._in_window(self._clock()):
            return self._install()
        return self._download(release.version)

    def _download(self, version: str) -> str:
        """Outside the window (or in ``download`` mode): have the artifact ready and verified."""
        if self._downloaded != version:
            status = self._job(UpdateRequest(download_only=True))
            if status is None or status.status != "complete":
                return self._failed(status)
            self._downloaded = version
        return self._outcome("downloaded")

    def _install(self) -> str:
        status = self._job(UpdateRequest())
        if status is None or status.status != "complete":
            return self._failed(status)
        if not status.requires_restart:
            return self._outcome("up_to_date")
        if self.mode != "restart" or self._restart is None:
            return self._outcome("installed")
        try:
            self._restart()
        except CaioError as e:
            log.warning("scheduled restart failed [%s]: %s", e.code, e.message)
            return self._outcome(f"restart_failed:{e.code}", failed=True)
        return self._outcome("restarted")

    def _job(self, request: UpdateRequest) -> JobStatus | None:
        """Run one job to its end; None when another job (an admin's) holds the turn."""
        try:
            self._service.start(request, requested_by=ACTOR)
        except ConflictError:
            return None
        return self._service.wait(self._job_timeout)

    def _failed(self, status: JobStatus | None) -> str:
        if status is None:
            return self._outcome("busy")  # an admin's job runs: skip this turn
        if status.running:
            return self._outcome("still_running")
        code = status.error.code if status.error is not None else "unknown"
        log.warning("scheduled update failed [%s]: %s", code, status.message)
        return self._outcome(f"failed:{code}", failed=True)

    def _outcome(self, outcome: str, *, failed: bool = False) -> str:
        with self._lock:
            self._state = replace(
                self._state,
                last_run=self._clock(),
                last_outcome=outcome,
                consecutive_failures=self._state.consecutive_failures + 1 if failed else 0,
            )
        return outcome

    def _set(self, **changes: object) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)  # type: ignore[arg-type]

    def _in_window(self, now: datetime) -> bool:
        return self.window is None or self.window.contains(now)
