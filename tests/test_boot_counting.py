"""Boot counting under systemd (`caio serve-current`): a release that does not stay up for
CAIO_BOOT_ATTEMPTS boots in a row is rolled back before the next, as the supervisor would.

The unit tests drive the counter; the process tests play systemd (`Restart=on-failure`):
start `caio serve-current` again each time it exits, as the shipped unit does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from caio.core.audit import AuditLog
from caio.core.layout import InstallLayout
from caio.restart import BOOT_FILE, EXIT_RESTART, BootCounter
from caio.restart.boots import BootRecord
from tests.background import end, spawn
from tests.helpers import free_port
from tests.supervisor_fixtures import SICK, release_with_patches
from tests.update_fixtures import NEWER, RUNNING, UpdateEnv


def test_a_boot_counts_as_failed_only_when_it_neither_stayed_up_nor_stopped(
    tmp_path: Path,
) -> None:
    counter = BootCounter(tmp_path / BOOT_FILE)
    assert not counter.counting("1.1.0")  # nothing begun: a process not started by serve-current
    assert counter.begin("1.1.0") == 0  # first boot of a version
    assert counter.counting("1.1.0") and not counter.counting("1.0.0")
    assert counter.begin("1.1.0") == 1  # the last one neither came up nor stopped
    counter.mark("1.1.0", "stopped")  # a clean stop: no verdict, the count stays
    assert counter.begin("1.1.0") == 1
    counter.mark("1.1.0", "up")  # served long enough: the count starts over
    assert counter.begin("1.1.0") == 0
    counter.mark("1.0.0", "up")  # another version's mark changes nothing
    assert counter.begin("1.1.0") == 1
    assert counter.begin("1.2.0") == 0  # a new version starts its own count
    counter.mark("1.2.0", "up")
    counter.mark("1.2.0", "stopped")  # a clean stop after it was up: recorded as such
    assert counter.read() == BootRecord("1.2.0", "stopped", 0)
    counter.mark("1.2.0", "up")  # a late "up" does not hide the stop
    assert counter.read() == BootRecord("1.2.0", "stopped", 0)
    (tmp_path / BOOT_FILE).write_text("{not json")
    assert counter.begin("1.2.0") == 0  # unreadable: counting starts over, never a crash


def installed(update_env: UpdateEnv, patches: dict[str, tuple[str, str]]) -> InstallLayout:
    """NEWER (with ``patches``) installed and current over the seeded RUNNING, by a real job."""
    release_with_patches(update_env, NEWER, patches)
    assert update_env.run_update(update_env.client())["status"] == "complete"
    layout = update_env.layout
    assert (layout.current_version, layout.previous_version) == (NEWER, RUNNING)
    return layout


class Systemd:
    """Starts `caio serve-current` as the shipped unit does, one boot at a time."""

    def __init__(self, update_env: UpdateEnv, **extra: str) -> None:
        self.port = free_port()
        self.env = update_env.process_env(self.port, **extra)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def boot(self) -> subprocess.Popen[bytes]:
        self.proc = spawn([sys.executable, "-m", "caio", "serve-current"], env=self.env)
        return self.proc

    def serving(self, timeout: float = 60, *, restarted: bool = False) -> str:
        """The version /health reports; ``restarted``: a unit thread starts it again, so an
        exit is no failure of the wait."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not restarted:
                assert self.proc is not None and self.proc.poll() is None, "it exited"
            try:
                return str(httpx.get(f"{self.url}/health", timeout=2).json()["version"])
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("not serving in time")

    def exit_code(self) -> int:
        assert self.proc is not None
        return self.proc.wait(60)

    def close(self) -> None:
        if self.proc is not None:
            end(self.proc, grace=0, sig=signal.SIGKILL)


def boot_record(layout: InstallLayout) -> dict[str, object]:
    data: dict[str, object] = json.loads((layout.state_dir / BOOT_FILE).read_text())
    return data


@pytest.mark.slow
def test_a_release_that_fails_every_boot_is_rolled_back_on_the_next(
    update_env: UpdateEnv,
) -> None:
    layout = installed(update_env, SICK["fails at start"])
    systemd = Systemd(update_env, CAIO_STABLE_SECONDS="1")
    try:
        for failures in (0, 1):  # CAIO_BOOT_ATTEMPTS: 2
            systemd.boot()
            assert systemd.exit_code() == 1  # the sick release; systemd would start it again
            assert boot_record(layout) == {
                "version": NEWER,
                "state": "booting",
                "failures": failures,
            }
        systemd.boot()
        assert systemd.serving() == RUNNING  # rolled back before this boot
        assert (layout.current_version, layout.previous_version) == (RUNNING, NEWER)
        assert NEWER in layout.bad_versions()
        records = AuditLog(layout.state_dir / "audit.jsonl").records()
        exits = [(r["version"], r["during"]) for r in records if r["event"] == "child_exit"]
        assert exits == [(NEWER, "start"), (NEWER, "start")]  # each failed boot, recorded
        restart = [r for r in records if r["event"] == "restart"][-1]
        assert (restart["outcome"], restart["kind"]) == ("rolled_back", "did_not_start")
        assert "did not stay up in 2 boots in a row" in restart["reason"]
        status = httpx.get(f"{systemd.url}/api/v1/update", headers=update_env.auth()).json()
        assert status["error"]["code"] == "health_check_failed"
        deadline = time.monotonic() + 30  # CAIO_STABLE_SECONDS=1: judged up
        while boot_record(layout)["state"] != "up" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert boot_record(layout) == {"version": RUNNING, "state": "up", "failures": 0}

        assert systemd.proc is not None
        systemd.proc.send_signal(signal.SIGKILL)
        systemd.exit_code()
        systemd.boot()  # killed after it was judged up: no failure, and no way back to NEWER
        assert systemd.serving() == RUNNING
        assert boot_record(layout)["failures"] == 0
        last_exit = AuditLog(layout.state_dir / "audit.jsonl").records()[-1]
        assert (last_exit["event"], last_exit["during"]) == ("child_exit", "serving")
    finally:
        systemd.close()


@pytest.mark.slow
def test_clean_stops_are_no_verdict_and_kills_before_it_is_up_are(update_env: UpdateEnv) -> None:
    layout = installed(update_env, {})
    systemd = Systemd(update_env)  # CAIO_STABLE_SECONDS: 60, longer than this test's boots
    try:
        for _ in range(3):  # `systemctl restart`, three times in a minute
            systemd.boot()
            assert systemd.serving() == NEWER
            assert systemd.proc is not None
            systemd.proc.send_signal(signal.SIGTERM)
            assert systemd.exit_code() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
            assert boot_record(layout) == {"version": NEWER, "state": "stopped", "failures": 0}
        for failures in (0, 1):  # killed before it has stayed up: those count
            systemd.boot()
            assert systemd.serving() == NEWER
            assert systemd.proc is not None
            systemd.proc.send_signal(signal.SIGKILL)
            systemd.exit_code()
            assert boot_record(layout)["failures"] == failures
        systemd.boot()
        assert systemd.serving() == RUNNING
        assert NEWER in layout.bad_versions()
        records = AuditLog(layout.state_dir / "audit.jsonl").records()
        exits = [r["during"] for r in records if r["event"] == "child_exit"]
        assert exits == ["start", "start"]  # the clean stops left no record; the kills did
    finally:
        systemd.close()


@pytest.mark.slow
def test_a_restart_into_a_sick_release_under_systemd_comes_back_and_the_cli_says_why(
    update_env: UpdateEnv,
) -> None:
    """The whole systemd path: `caio remote update --restart` installs a release that fails
    at start; the service exits 75 for systemd, which starts it again until boot counting
    rolls back; the CLI, waiting, reports the verdict."""
    release_with_patches(update_env, NEWER, SICK["fails at start"])
    systemd = Systemd(update_env, CAIO_RESTART_STRATEGY="systemd")
    stop = threading.Event()
    exits: list[int] = []

    def unit() -> None:  # Restart=on-failure, RestartForceExitStatus=75, a short RestartSec
        while not stop.is_set():
            code = systemd.boot().wait()
            exits.append(code)
            if code not in (1, EXIT_RESTART) or stop.wait(0.2):
                return

    runner = threading.Thread(target=unit, name="systemd-unit", daemon=True)
    runner.start()
    try:
        assert systemd.serving(restarted=True) == RUNNING  # a fresh home: seeded and served
        done = subprocess.run(
            [sys.executable, "-m", "caio", "remote", "update", "--restart"],
            env={**os.environ, "CAIO_URL": systemd.url, "CAIO_TOKEN": update_env.admin},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 3, done
        assert "caio: error [health_check_failed]" in done.stderr
        assert "did not stay up in 2 boots in a row" in done.stderr
        assert systemd.serving(restarted=True) == RUNNING
        assert exits == [EXIT_RESTART, 1, 1]  # the restart, then the two failed boots
        assert NEWER in update_env.layout.bad_versions()
    finally:
        stop.set()
        systemd.close()
        runner.join(30)
        assert not runner.is_alive()
