"""The test run always ends: a hung test is cut and named, and leftovers fail the run.

Each case runs pytest in a child process on a small test file, with the
guard plugin (tests/guard.py) and pytest-timeout as the suite uses them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.background import end, spawn
from tests.guard import RUN_MARKER, run_processes

REPO = Path(__file__).resolve().parent.parent


def run_pytest(tmp_path: Path, source: str, *options: str, **env: str) -> tuple[int, str, float]:
    """Run pytest on ``source`` as a test file; returns (exit code, output, seconds)."""
    (tmp_path / "test_case.py").write_text(textwrap.dedent(source))
    (tmp_path / "pytest.ini").write_text("[pytest]\ntimeout = 20\ntimeout_method = signal\n")
    child_env = {k: v for k, v in os.environ.items() if k != RUN_MARKER}
    child_env.update(PYTHONPATH=str(REPO), **env)
    started = time.monotonic()
    command = [sys.executable, "-m", "pytest", "-p", "tests.guard", "-p", "no:cacheprovider"]
    proc = spawn(
        [*command, *options, str(tmp_path / "test_case.py")],
        cwd=tmp_path,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = proc.communicate(timeout=120)
    finally:
        end(proc, grace=0)
    return proc.returncode, output, time.monotonic() - started


def test_a_failing_test_that_leaves_a_spinning_thread_ends_the_run_and_is_named(
    tmp_path: Path,
) -> None:
    code, output, seconds = run_pytest(
        tmp_path,
        """
        import threading

        def test_leaves_a_thread():
            stop = threading.Event()

            def spin():  # like a load loop whose server is gone: no wait between tries
                while not stop.is_set():
                    pass

            threading.Thread(target=spin, name="spinner").start()
            assert False, "broken on purpose"

        def test_not_run_under_a_spinning_thread():
            pass
        """,
    )
    assert seconds < 60, output
    assert code == 1, output  # a test failed: the exit code says so, as pytest's own
    assert "1 failed" in output and "passed" not in output  # the run stopped there
    assert "left non-daemon threads running: 'spinner'" in output
    assert "thread 'spinner'" in output
    assert "started during test_case.py::test_leaves_a_thread" in output


def test_a_passing_run_that_leaves_a_thread_behind_fails(tmp_path: Path) -> None:
    code, output, _ = run_pytest(
        tmp_path,
        """
        import threading

        def test_leaves_a_waiter():
            threading.Thread(target=threading.Event().wait, name="waiter").start()
        """,
    )
    assert code == 3, output
    assert "1 passed" in output
    assert "thread 'waiter'" in output and "test_leaves_a_waiter" in output


def test_a_process_left_running_is_named_and_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code, output, _ = run_pytest(
        tmp_path,
        f"""
        import subprocess, sys

        def test_leaves_a_process():
            proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                                    start_new_session=True)
            open({str(pid_file)!r}, "w").write(str(proc.pid))
        """,
    )
    assert code == 3, output
    pid = int(pid_file.read_text())
    assert f"process {pid}:" in output and "time.sleep(300)" in output
    assert "started during test_case.py::test_leaves_a_process" in output
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        if state == "Z":
            break  # killed; its parent (the finished pytest) is gone, init reaps it
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists() or state == "Z"


def test_a_test_that_sleeps_past_its_limit_is_cut_and_named_with_stacks(
    tmp_path: Path,
) -> None:
    code, output, seconds = run_pytest(
        tmp_path,
        """
        import threading, time
        import pytest

        @pytest.mark.timeout(1)
        def test_sleeps_too_long():
            threading.Thread(target=time.sleep, args=(3,), name="sleeper", daemon=True).start()
            time.sleep(60)

        def test_after_it_runs():
            pass
        """,
    )
    assert seconds < 30, output
    assert code == 1, output
    assert "FAILED test_case.py::test_sleeps_too_long - Failed: Timeout" in output
    assert "Stack of sleeper" in output  # every thread's stack, not only the test's
    assert "1 passed" in output  # the run went on after the cut test


def test_a_hang_that_swallows_the_timeout_is_ended_by_the_backstop(tmp_path: Path) -> None:
    code, output, seconds = run_pytest(
        tmp_path,
        """
        import signal, time
        import pytest

        @pytest.mark.timeout(1)
        def test_ignores_the_alarm():
            signal.signal(signal.SIGALRM, signal.SIG_IGN)
            time.sleep(60)
        """,
        CAIO_TEST_BACKSTOP_SECONDS="2",
    )
    assert seconds < 30, output
    assert code != 0
    assert "Timeout (0:00:03)!" in output  # faulthandler's dump, then the exit
    assert "test_ignores_the_alarm" in output


def test_a_clean_run_prints_nothing_extra(tmp_path: Path) -> None:
    code, output, _ = run_pytest(
        tmp_path,
        """
        import subprocess, sys, threading

        def test_clean():
            threading.Thread(target=threading.Event().wait, daemon=True).start()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
        """,
    )
    assert code == 0, output
    assert "caio test guard" not in output


def test_this_run_is_marked_for_the_guard() -> None:
    marker = os.environ[RUN_MARKER]
    proc = spawn([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while proc.pid not in run_processes(marker):
            assert time.monotonic() < deadline, "the child does not carry the run's marker"
            time.sleep(0.05)
    finally:
        end(proc, grace=0)
    assert proc.pid not in run_processes(marker)
