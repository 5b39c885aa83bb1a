"""``caio run``: a small parent that owns the listening socket and runs CAIO as a child.

Restart (asked by the child over its notify socket, or by SIGHUP): start a new
child from ``current`` on the same socket, wait for ``READY=1`` and a healthy
``/health`` with the expected version (asked over the new child's private unix
socket, so the answer cannot come from the old child) within the probation
window, then drain and stop the old child. If the new child exits, never gets
ready, or reports another version: kill it, switch ``current`` back, mark the
version bad, record ``health_check_failed``; the old child never stopped. A new
child that exits before it is ready is first started again (``boot_attempts``).

A child that dies on its own is started again with backoff; if a newly
activated version keeps dying, that is a crash loop and is rolled back too.
SIGTERM/SIGINT stop everything gracefully. A stop that comes while a new child
is on probation is no verdict: nothing is marked bad and no link changes, and
the next start health-checks what is active. A child whose supervisor is gone
(even by SIGKILL) gets SIGTERM, and ends by itself after the drain time if it
ignores that (:func:`caio.restart.process.watch_supervisor`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from caio.core.faults import fault_point
from caio.core.files import atomic_write_json
from caio.core.layout import InstallLayout, seed_release
from caio.core.manifest import Manifest
from caio.core.settings import Settings
from caio.restart.connections import raise_open_file_limit
from caio.restart.control import boot_command
from caio.restart.notify import NotifyListener, wait_any
from caio.restart.process import (
    CONTROL_FD_ENV,
    FEATURES_ENV,
    LISTEN_FD_ENV,
    PREPARE_MESSAGE,
    REQUEST_FIELD,
    RESTART_MESSAGE,
    STANDBY_FD_ENV,
    SUPERVISED_ENV,
    SUPERVISOR_PID_ENV,
    bind,
)
from caio.restart.standby import FEATURE, StandbyKeeper
from caio.restart.verdict import Verdicts

log = logging.getLogger("caio.supervisor")

CRASH_LOOP_LIMIT = 3
MAX_BACKOFF = 30.0
_CHILD_ENV_DROP = ("CAIO_MANIFEST", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


@dataclass
class Child:
    number: int
    version: str
    proc: subprocess.Popen[bytes]
    notify: NotifyListener
    control_path: Path
    started: float = field(default_factory=time.monotonic)
    ready: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def messages(self) -> list[dict[str, str]]:
        return self.notify.drain()


class Supervisor:
    """Owns the socket, runs one child from ``current``, replaces it on restart."""

    def __init__(
        self,
        settings: Settings,
        running: Manifest,
        source_dir: Path,
        *,
        python: str = sys.executable,
    ) -> None:
        self.settings = settings
        self.running = running
        self.source_dir = source_dir
        self.python = python
        self.layout = InstallLayout(settings.home)
        self.verdicts = Verdicts(self.layout)
        self.audit = self.verdicts.audit
        self.job_lock = self.verdicts.job_lock
        self._status_path = self.layout.state_dir / "supervisor.json"
        self._children = 0
        self._active: Child | None = None
        self._starting: Child | None = None
        self._stop = False
        self._restart_asked: bool | None = None  # graceful flag when asked
        self._fresh: tuple[str, float] | None = None  # version activated by a restart, when
        self._crashes = 0
        self._last_failure = ("unhealthy", "")
        self._sock: socket.socket | None = None
        self._rundir: Path | None = None
        self._standby: StandbyKeeper[Child] = StandbyKeeper(
            self._spawn,
            lambda child: self._stop_child(child, graceful=False),
            self.layout.state_dir,
            boot_timeout=settings.preflight_timeout,
            keep_seconds=settings.standby_seconds,
        )

    # --- lifecycle ------------------------------------------------------------
    def run(self) -> int:
        """Serve until SIGTERM/SIGINT. Returns the process exit code."""
        self.layout.ensure()
        self.layout.clean_leftovers()
        if repaired := self.audit.settle():  # a crash cut an append: repaired and recorded
            log.warning("audit log repaired: %s", "; ".join(repaired))
        seed_release(self.layout, self.source_dir, self.running)
        raise_open_file_limit()
        self._sock = bind(self.settings.host, self.settings.port)
        self._sock.set_inheritable(True)
        self._rundir = Path(tempfile.mkdtemp(prefix="caio-run-"))
        self._install_signal_handlers()
        log.info(
            "supervisor %d listening on %s://%s:%d",
            os.getpid(),
            self.settings.api_scheme,
            self.settings.host,
            self._sock.getsockname()[1],
        )
        try:
            self._active = self._start_initial()
            if self._active is None:
                return 0 if self._stop else 1  # a stop is not a failure
            self._loop()
            return 0
        finally:
            self._standby.discard()
            for child in (self._starting, self._active):
                if child is not None:
                    self._stop_child(child, graceful=True)
            self._sock.close()
            shutil.rmtree(self._rundir, ignore_errors=True)
            self._write_status()

    def _install_signal_handlers(self) -> None:
        def stop(_sig: int, _frame: FrameType | None) -> None:
            self._stop = True

        def hup(_sig: int, _frame: FrameType | None) -> None:
            self._restart_asked = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)

    def _loop(self) -> None:
        while not self._stop and self._active is not None:
            active = self._active
            for message in active.notify.drain():
                if message.get(RESTART_MESSAGE) == "1":
                    self._restart_asked = message.get("X_CAIO_GRACEFUL", "1") == "1"
                if PREPARE_MESSAGE in message:
                    self._standby.prepare(message[PREPARE_MESSAGE], message.get(REQUEST_FIELD, ""))
                    self._write_status()
            if self._standby.tend():
                self._write_status()
            if active.proc.poll() is not None:
                self._on_crash(active)
            elif self._restart_asked is not None:
                graceful, self._restart_asked = self._restart_asked, None
                self.restart(graceful=graceful)
            else:  # a message (a restart, a standby's report) wakes us at once
                standby = self._standby.child
                wait_any([active.notify, *([standby.notify] if standby else [])], 0.1)

    # --- children -------------------------------------------------------------
    def _spawn(self, version: str, standby_fd: int | None = None) -> Child:
        if self._sock is None or self._rundir is None:
            raise RuntimeError("the supervisor is not running")
        self._children += 1
        n = self._children
        control_path = self._rundir / f"child-{n}.sock"
        control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        control.bind(str(control_path))
        control.listen(64)
        notify = NotifyListener(self._rundir / f"notify-{n}.sock")
        env = {k: v for k, v in os.environ.items() if k not in _CHILD_ENV_DROP}
        env.update(
            {
                LISTEN_FD_ENV: str(self._sock.fileno()),
                CONTROL_FD_ENV: str(control.fileno()),
                "NOTIFY_SOCKET": str(notify.path),
                SUPERVISED_ENV: "1",
                SUPERVISOR_PID_ENV: str(os.getpid()),
            }
        )
        if self.settings.standby_seconds > 0:
            env[FEATURES_ENV] = FEATURE
        passed = [self._sock.fileno(), control.fileno()]
        if standby_fd is not None:
            env[STANDBY_FD_ENV] = str(standby_fd)
            passed.append(standby_fd)
        release = str(self.layout.release_dir(version).resolve())
        proc = subprocess.Popen(
            boot_command(release, self.python),
            env=env,
            pass_fds=passed,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (async-signal-safe: one prctl call)
        )
        control.close()
        child = Child(n, version, proc, notify, control_path)
        role = "standby child" if standby_fd is not None else "child"
        log.info("started %s %d (pid %d) running %s", role, n, proc.pid, version)
        return child

    def _await_healthy(self, child: Child, expected: str) -> tuple[str, str] | None:
        """None when ``child`` is ready and healthy in time, else (kind, why not).

        The kind is one of a fixed set (the reason label of the rollback metric).
        """
        deadline = time.monotonic() + self.settings.probation_seconds
        transport = httpx.HTTPTransport(uds=str(child.control_path))
        with httpx.Client(transport=transport, timeout=2.0) as client:
            while time.monotonic() < deadline and not self._stop:
                code = child.proc.poll()
                if code is not None:
                    return "exited", f"the new process exited with code {code}"
                child.ready = child.ready or any(
                    m.get("READY") == "1" for m in child.notify.drain()
                )
                if child.ready:
                    try:
                        health = client.get("http://caio/health")
                        version = health.json().get("version")
                    except (httpx.HTTPError, ValueError):
                        version = None
                    if version == expected and health.status_code == 200:
                        return None
                    if version is not None:
                        return "wrong_version", f"it reports version {version}, expected {expected}"
                    time.sleep(0.02)
                else:
                    wait_any([child.notify], 0.05)  # READY=1 wakes us at once
        if self._stop:
            return "stopped", "stopped by signal"
        return "unhealthy", f"not ready and healthy within {self.settings.probation_seconds:g}s"

    def _stop_child(self, child: Child, *, graceful: bool) -> None:
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
            try:
                child.proc.wait(self.settings.drain_seconds + 5)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        child.notify.close()
        with contextlib.suppress(FileNotFoundError):
            child.control_path.unlink()
        log.info("child %d (pid %d, %s) stopped", child.number, child.pid, child.version)

    def _start_initial(self) -> Child | None:
        """Start ``current``; if it cannot come up, fall back to ``previous``."""
        for _ in range(2):
            version = self.layout.current_version
            if version is None:
                log.error("no current release under %s", self.layout.home)
                return None
            child = self._launch(version)
            if child is not None:
                return child
            if self._stop:
                self._probation_stopped(version, None)
                return None
            previous = self.layout.previous_version
            if previous is None or previous == version:
                log.error("%s does not start and there is no previous release", version)
                return None
            self.verdicts.roll_back(version, previous, ("did_not_start", "it did not start"))
        return None

    def _launch(self, version: str, fault: str | None = None) -> Child | None:
        """``version`` running, ready and healthy; None when it does not come up.

        A process that exits before it is ready is started again, up to
        ``boot_attempts`` starts in all: one exit at boot (a race with another
        process, a moment short of memory, a kill) is no verdict on a release.
        Not ready in time and another version are judged at once.
        """
        # The standby booted by the update's preflight, or a fresh process.
        child = self._standby.take(version) or self._spawn(version)
        attempts = self.settings.boot_attempts
        for attempt in range(1, attempts + 1):
            self._starting = child
            self._write_status()
            if fault and attempt == 1:
                fault_point(fault)
            failure = self._await_healthy(child, version)
            self._starting = None
            if failure is None:
                self._write_status(child)
                return child
            log.error("child running %s failed: %s", version, failure[1])
            self._stop_child(child, graceful=False)
            self._write_status()
            self._last_failure = failure
            if failure[0] != "exited" or self._stop or attempt == attempts:
                break
            self.audit.append(
                "child_exit", version=version, code=child.proc.returncode, during="start"
            )
            log.warning("starting %s again (start %d of %d)", version, attempt + 1, attempts)
            child = self._spawn(version)
        return None

    # --- restart and rollback ---------------------------------------------------
    def restart(self, *, graceful: bool) -> bool:
        """Bring ``current`` up beside the running child; swap, or roll back. True if swapped."""
        old = self._active
        if old is None:
            return False
        expected = self.layout.current_version
        if expected is None:
            self.verdicts.record_failure(
                "restart_failed", "there is no current release", old.version, None
            )
            return False
        new = self._launch(expected, fault="during_restart")
        if new is None and self._stop:
            self._probation_stopped(expected, old.version)
            return False
        if new is None and expected == old.version:
            self._same_version_failed(expected)
            return False
        if new is None:
            self.verdicts.roll_back(expected, old.version, self._last_failure)
            return False
        self._active = new
        self._write_status(new)
        self._stop_child(old, graceful=graceful)
        if expected != old.version:
            self._fresh = (expected, time.monotonic())
            self._crashes = 0
        self.audit.append("restart", outcome="succeeded", **{"from": old.version, "to": expected})
        log.info("now serving %s (child %d)", expected, new.number)
        return True

    def _same_version_failed(self, version: str) -> None:
        """A new process of the version already serving did not come up: no verdict on it.

        The release is the one serving; what changed is outside it (e.g. a
        rotated TLS certificate that does not load). Nothing is marked bad and
        no link changes; the old process keeps serving.
        """
        kind, reason = self._last_failure
        self.audit.append(
            "restart",
            outcome="failed",
            kind=kind,
            reason=reason,
            **{"from": version, "to": version},
        )
        self.verdicts.record_failure(
            "restart_failed",
            f"a new process of {version} did not come up ({reason}); the running one "
            "keeps serving: see its log",
            version,
            None,
        )

    def _probation_stopped(self, version: str, serving: str | None) -> None:
        """A stop (SIGTERM, SIGINT) came while ``version`` was on probation: no verdict.

        Nothing is marked bad and no link changes: the next start runs what is
        active and health-checks it as usual. A reboot during a maintenance
        window must not roll a fleet back.
        """
        log.warning("stopped while %s was on probation: it stays active, unjudged", version)
        self.audit.append(
            "restart",
            outcome="interrupted",
            reason="stopped by signal during the health check; the next start checks it again",
            **{"from": serving, "to": version},
        )

    def _on_crash(self, child: Child) -> None:
        code = child.proc.returncode
        self._stop_child(child, graceful=False)
        self.audit.append("child_exit", version=child.version, code=code)
        log.warning("child %d running %s exited with %s", child.number, child.version, code)
        fresh = self._fresh
        if (
            fresh
            and fresh[0] == child.version
            and time.monotonic() - fresh[1] < self.settings.stable_seconds
        ):
            self._crashes += 1
            if self._crashes >= CRASH_LOOP_LIMIT and self.layout.previous_version:
                self._fresh = None
                self.verdicts.roll_back(
                    child.version,
                    self.layout.previous_version,
                    ("crash_loop", "crash loop"),
                )
        self._active = None
        while not self._stop:
            backoff = min(MAX_BACKOFF, 0.5 * 2 ** min(self._crashes, 6))
            deadline = time.monotonic() + backoff
            while time.monotonic() < deadline and not self._stop:
                time.sleep(0.05)
            if self._stop:
                return
            self._active = self._start_initial()
            if self._active is not None:
                return
            self._crashes += 1

    def _write_status(self, active: Child | None = None) -> None:
        current = active or self._active
        atomic_write_json(
            self._status_path,
            {
                "pid": os.getpid(),
                "active": None
                if current is None
                else {"pid": current.pid, "version": current.version},
                "starting": None
                if self._starting is None
                else {"pid": self._starting.pid, "version": self._starting.version},
                "standby": self._standby.describe(),
            },
            mode=0o600,
        )


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the supervisor dies, even by SIGKILL.

    Otherwise orphaned children would keep serving on the inherited socket and
    hold the port against the next supervisor.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
