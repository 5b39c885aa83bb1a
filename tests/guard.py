"""Every test ends: a backstop per test, and a guard that fails the run when anything outlives it.

pytest-timeout (``timeout`` in ``pyproject.toml``, or ``@pytest.mark.timeout(N)``)
fails a test that runs past its limit and prints the stacks of every thread.
Its signal can be swallowed (a hang inside C code, a thread that holds the
interpreter), so this plugin keeps a second clock per test: 60 s after the
limit, faulthandler prints every thread's stack and ends the process, and
``scripts/test`` then kills whatever the run left behind.

At the end of the session the guard looks for what should have ended with
the tests: non-daemon threads (the interpreter would wait for them forever)
and processes started by this run (found by an environment marker that every
child inherits). It names each one with the test during which it appeared,
kills the processes, and ends the run at once with a non-zero exit. A clean
run prints nothing.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: Set in the environment of the run; every process it starts inherits it.
RUN_MARKER = "CAIO_TEST_RUN"
#: How long past its own limit a test may run before the process is ended
#: (``CAIO_TEST_BACKSTOP_SECONDS`` overrides it, for the guard's own tests).
BACKSTOP_GRACE_SECONDS = float(os.environ.get("CAIO_TEST_BACKSTOP_SECONDS", "60"))
#: How long the guard lets threads and processes finish on their own.
SETTLE_SECONDS = 1.0
#: How long a test's own non-daemon threads may take to end after its teardown.
THREAD_GRACE_SECONDS = 2.0
#: The GIL switch interval once a test has left a thread running (default 0.005).
SPINNING_SWITCH_INTERVAL = 0.0001
#: The exit code of a run whose tests passed but that left something behind
#: (a run with a failed test exits 1, as pytest's own).
EXIT_LEFT_BEHIND = 3


@dataclass(frozen=True)
class Straggler:
    kind: str  # "thread" or "process"
    ident: int
    description: str


@dataclass
class RunGuard:
    """The plugin: remembers which test each thread and process appeared in, and checks.

    After each test it waits briefly for the test's own non-daemon threads; if
    any is still alive, the run stops after that test (the summary still
    prints). At the end it names everything left and ends the run.
    """

    marker: str
    stderr: int  # a copy of the terminal's stderr, taken before any test captures fd 2
    worker: bool  # a pytest-xdist worker: its controller checks the processes
    first_seen: dict[tuple[str, int], str] = field(default_factory=dict)
    failed: bool = False

    # --- hooks -------------------------------------------------------------------------
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, None, None]:
        before = {t.ident for t in threading.enumerate()}
        limit = limit_of(item)
        if limit:
            # Prints every thread's stack and exits the process: the last resort when
            # pytest-timeout's signal cannot interrupt the test.
            faulthandler.dump_traceback_later(
                limit + BACKSTOP_GRACE_SECONDS, exit=True, file=self.stderr
            )
        try:
            yield
        finally:
            if limit:
                faulthandler.cancel_dump_traceback_later()
            self.note(item.nodeid)
            left = _joined_or_left(_other_threads(), before, THREAD_GRACE_SECONDS)
            if left:
                names = ", ".join(repr(t.name) for t in left)
                item.session.shouldstop = f"{item.nodeid} left non-daemon threads running: {names}"

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, None, None]:
        seen = {ident for kind, ident in self.first_seen if kind == "thread"}
        if call.when == "call" and any(t.ident not in seen for t in _other_threads()):
            # A thread that spins while the main thread reports (reading source files,
            # formatting) makes it wait up to the switch interval for the GIL at each
            # step: seconds become minutes. A short interval keeps reporting quick.
            sys.setswitchinterval(SPINNING_SWITCH_INTERVAL)
        yield

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.failed = True

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        found = self.stragglers()
        if self.worker:
            found = [s for s in found if s.kind == "thread"]
        if not found:
            os.close(self.stderr)
            return
        sys.stdout.flush()
        os.write(self.stderr, self.report(found).encode())
        for s in found:
            if s.kind == "process":
                with contextlib.suppress(OSError):  # it ended by itself meanwhile
                    os.kill(s.ident, signal.SIGKILL)
        # Not sys.exit: the interpreter would wait for the very threads named above.
        os._exit(1 if self.failed else EXIT_LEFT_BEHIND)

    # --- checks --------------------------------------------------------------------------
    def note(self, nodeid: str) -> None:
        for thread in threading.enumerate():
            if thread.ident is not None:
                self.first_seen.setdefault(("thread", thread.ident), nodeid)
        for pid in run_processes(self.marker):
            self.first_seen.setdefault(("process", pid), nodeid)

    def stragglers(self) -> list[Straggler]:
        deadline = time.monotonic() + SETTLE_SECONDS
        for thread in _other_threads():
            thread.join(max(0.0, deadline - time.monotonic()))
        while run_processes(self.marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        found = [
            Straggler("thread", t.ident or 0, f"thread {t.name!r}{_where(t)}")
            for t in _other_threads()
        ]
        found += [
            Straggler("process", pid, f"process {pid}: {_cmdline(pid)}")
            for pid in run_processes(self.marker)
        ]
        return found

    def report(self, stragglers: Iterable[Straggler]) -> str:
        lines = ["", "caio test guard: the tests are done but these are still running:"]
        for s in stragglers:
            test = self.first_seen.get((s.kind, s.ident), "(before the first test)")
            lines.append(f"  {s.description}\n      started during {test}")
        lines.append(
            "Every thread a test starts must be joined (or be a daemon), and every process\n"
            "ended, also when the test fails. The processes were killed; the run fails."
        )
        return "\n".join(lines) + "\n"


def pytest_configure(config: pytest.Config) -> None:
    # Workers of pytest-xdist inherit the marker of the run that started them.
    marker = os.environ.setdefault(RUN_MARKER, f"{os.getpid()}-{uuid.uuid4().hex[:8]}")
    # pytest captures nothing during configure: fd 2 is still the terminal here.
    guard = RunGuard(marker, os.dup(2), worker=hasattr(config, "workerinput"))
    config.pluginmanager.register(guard, "caio-run-guard")


def limit_of(item: pytest.Item) -> float:
    """The pytest-timeout limit that applies to ``item`` (0: none)."""
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    value = item.config.getini("timeout")
    return float(value) if value else 0.0


def _joined_or_left(
    threads: Iterable[threading.Thread], before: set[int | None], grace: float
) -> list[threading.Thread]:
    """Threads not in ``before`` that are still alive after ``grace`` seconds in all."""
    deadline = time.monotonic() + grace
    new = [t for t in threads if t.ident not in before]
    for thread in new:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t for t in new if t.is_alive()]


def _other_threads() -> list[threading.Thread]:
    main = threading.main_thread()
    return [t for t in threading.enumerate() if t is not main and not t.daemon and t.is_alive()]


def _where(thread: threading.Thread) -> str:
    frame = sys._current_frames().get(thread.ident or 0)
    if frame is None:
        return ""
    return f", at {Path(frame.f_code.co_filename).name}:{frame.f_lineno} in {frame.f_code.co_name}"


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)[:200]


def _ancestors() -> set[int]:
    """This process and those it runs under (``scripts/test``'s timeout, an xdist controller)."""
    found, pid = set(), os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return found


def run_processes(marker: str) -> list[int]:
    """Live processes (not zombies) of this run, other than this one and its ancestors.

    A process of the run is one whose environment holds ``marker``.
    """
    needle = f"{RUN_MARKER}={marker}".encode()
    skip = _ancestors()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue  # gone, or not ours to read
        if state not in ("Z", "X"):
            found.append(int(entry.name))
    return sorted(found)
