"""The README's run command, end to end, as CI runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.background import end, spawn
from tests.helpers import free_port

pytestmark = pytest.mark.slow  # real processes

ROOT = Path(__file__).resolve().parent.parent


def test_demo_updates_and_restarts_into_the_newer_release(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CAIO_")},
        "CAIO_DEMO_DIR": str(tmp_path / "demo"),
        "CAIO_DEMO_KEYS": str(tmp_path / "keys"),
    }
    done = subprocess.run(
        [str(ROOT / "scripts" / "demo"), "--once", "--port", "0", "--repo-port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "ok  releases: 1.0.0, 1.1.0" in output
    assert "1.1.0 is installed and active; restart to run it" in output
    assert "now running 1.1.0" in output
    assert '"version": "1.1.0"' in output
    assert "not shown again" not in output  # the demo shows its token; it says so plainly
    assert "admin token 'demo-admin' created" in output
    first_version_line = output.split("starting `caio run`")[1].splitlines()[1]
    assert '"commit": "unknown"' not in first_version_line  # the seeded release knows its commit
    home = tmp_path / "demo" / "home"
    assert os.readlink(home / "current") == "releases/1.1.0"
    assert os.readlink(home / "previous") == "releases/1.0.0"
    assert len(list((tmp_path / "keys").rglob("root-*.json"))) == 3


def _processes_with(home: Path) -> list[int]:
    """Pids of live processes whose environment points at ``home`` (caio run and its child)."""
    found = []
    marker = f"CAIO_HOME={home}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().split(") ")[-1][0]
        except OSError:
            continue
        if marker in environ and state != "Z":
            found.append(int(entry.name))
    return found


def read_until(demo: subprocess.Popen[str], text: str) -> list[str]:
    """The demo's output lines up to the first holding ``text`` (failing with them if none)."""
    assert demo.stdout is not None
    seen = []
    for line in demo.stdout:
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError("".join(seen))


def _demo_env(tmp_path: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("CAIO_")},
        "CAIO_DEMO_DIR": str(tmp_path / "demo"),
        "CAIO_DEMO_KEYS": str(tmp_path / "keys"),
    }


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_stopping_the_demo_by_signal_stops_everything_it_started(
    tmp_path: Path, signum: signal.Signals
) -> None:
    port, repo_port = free_port(), free_port()
    demo = spawn(
        [str(ROOT / "scripts" / "demo"), "--port", str(port), "--repo-port", str(repo_port)],
        env=_demo_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        read_until(demo, "CAIO keeps serving")
        home = tmp_path / "demo" / "home"
        assert len(_processes_with(home)) >= 2  # the supervisor and its child
        token = (home / "admin.token").read_text().strip()
        second = subprocess.run(  # the README's --once while this demo serves
            [str(ROOT / "scripts" / "demo"), "--once", "--port", "0", "--repo-port", "0"],
            env=_demo_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 1, second.stdout + second.stderr
        assert f"another demo (pid {demo.pid}) is using" in second.stderr
        assert "Traceback" not in second.stderr
        assert (home / "admin.token").read_text().strip() == token  # nothing wiped
        status = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/update",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert status.status_code == 200, status.text  # the first demo's token still works
        demo.send_signal(signum)
        assert demo.wait(60) == 128 + signum
        deadline = time.monotonic() + 30
        while _processes_with(home) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_with(home) == []
    finally:
        end(demo, grace=0, sig=signal.SIGKILL)  # only what the demo itself failed to stop
    for busy in (port, repo_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", busy)) != 0  # nothing serves there any more


def test_the_demo_runs_twice_in_a_row_on_its_own_ports(tmp_path: Path) -> None:
    port, repo_port = free_port(), free_port()
    command = [str(ROOT / "scripts" / "demo"), "--once", "--port", str(port)]
    command += ["--repo-port", str(repo_port)]
    for run in range(2):
        done = subprocess.run(
            command, env=_demo_env(tmp_path), capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "is busy" not in done.stdout, f"run {run + 1}: {done.stdout}"
        assert f"http://127.0.0.1:{port}/api/v1/version" in done.stdout


def test_ctrl_c_during_set_up_ends_quietly(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole foreground process group: the demo and the step it runs."""
    demo = spawn(
        [str(ROOT / "scripts" / "demo"), "--once", "--port", "0", "--repo-port", "0"],
        env=_demo_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        seen = read_until(demo, "building and publishing releases")
        os.killpg(demo.pid, signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
        output = "".join(seen) + rest
        assert demo.returncode == 128 + signal.SIGINT, output
        assert "Traceback" not in output and "demo: interrupted" in output
    finally:
        end(demo, grace=0, sig=signal.SIGKILL)


def test_the_two_party_demo_holds_the_update_back_until_it_is_approved(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            str(ROOT / "scripts" / "demo"),
            "--once",
            "--two-party",
            "--port",
            "0",
            "--repo-port",
            "0",
        ],
        env=_demo_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    held, approved = output.split("approve it", 1)
    assert "1.1.0 held back" in held and "NOT OFFERED 1.1.0 (approval_missing)" in held
    assert "signed by vendor, missing from approval" in held
    assert "approved caio/1.1.0/caio-1.1.0.tar.gz" in approved
    assert "now running 1.1.0" in approved
    record = (tmp_path / "demo" / "home" / "state" / "audit.jsonl").read_text().splitlines()
    activated = [json.loads(line) for line in record if '"activated"' in line]
    assert activated[-1]["signed_by"] == ["vendor", "approval"]
