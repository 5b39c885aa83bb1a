"""`caio run` with real child processes: zero downtime, health-gated rollback, signals."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from caio.client import AsyncCaioClient, RestartFailedError
from tests.background import end, looping, spawn
from tests.helpers import free_port
from tests.supervisor_fixtures import (
    CRASH_LATER,
    SICK,
    SLOW_START,
    Supervised,
    paced_probation,
    release_with_patches,
    start_supervised,
    stop_supervised,
    version_load,
)
from tests.update_fixtures import NEWER, RUNNING, UpdateEnv

pytestmark = pytest.mark.slow  # real processes


def test_zero_downtime_restart_under_load(supervised: Supervised) -> None:
    supervised.env.publish(NEWER)
    assert supervised.update()["status"] == "complete"
    old_child = supervised.state()["active"]["pid"]

    results: list[tuple[int | str, str]] = []
    with looping(version_load(supervised, results), threads=8, name="restart-load"):
        time.sleep(1.0)
        answer = supervised.api("POST", "/api/v1/restart", json={"graceful": True})
        assert answer.status_code == 202
        assert answer.json()["status"] == "restarting"
        supervised.wait_for(lambda: supervised.state()["active"]["version"] == NEWER)
        time.sleep(1.0)

    codes = Counter(code for code, _ in results)
    assert set(codes) == {200}, codes  # every request answered successfully
    versions = [v for _, v in results]
    assert versions[0] == RUNNING
    assert versions[-1] == NEWER
    assert len(results) > 20  # load ran through the restart (hundreds on an idle machine)
    assert supervised.version() == NEWER
    # Recorded once the old child has drained, which under load may outlast the second above.
    supervised.wait_for(lambda: supervised.audit()[-1]["outcome"] == "succeeded")
    assert not _alive(old_child)


def test_remote_update_restart_installs_restarts_and_waits_for_the_new_version(
    supervised: Supervised,
) -> None:
    """`caio remote update --restart`: the operator's one command, under `caio run`."""
    supervised.env.publish(NEWER)
    done = caio_remote(supervised, "update", "--restart")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{NEWER} is installed and active; restart to run it",
        f"now running {NEWER}",
    ]
    assert supervised.version() == NEWER
    again = caio_remote(supervised, "update", "--restart")  # up to date: says so, no restart
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [f"already up to date: {NEWER} is the newest"]


def caio_remote(supervised: Supervised, *args: str) -> subprocess.CompletedProcess[str]:
    """``caio remote ARGS`` against ``supervised``, as its admin (the token in the environment)."""
    env = {**os.environ, "CAIO_URL": supervised.url, "CAIO_TOKEN": supervised.env.admin}
    return subprocess.run(
        [sys.executable, "-m", "caio", "remote", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sickness", sorted(SICK))
def test_sick_release_is_rolled_back_and_the_old_child_keeps_serving(
    update_env: UpdateEnv, sickness: str
) -> None:
    release_with_patches(update_env, NEWER, SICK[sickness])
    supervised = start_supervised(update_env, {"CAIO_PROBATION_SECONDS": paced_probation()})
    try:
        assert supervised.update()["status"] == "complete"
        serving = supervised.state()["active"]["pid"]
        assert supervised.api("POST", "/api/v1/restart").status_code == 202
        supervised.wait_for(
            lambda: supervised.api("GET", "/api/v1/update").json()["error"] is not None
        )
        status = supervised.api("GET", "/api/v1/update").json()
        assert status["error"]["code"] == "health_check_failed", status
        assert f"rolled back to {RUNNING}" in status["message"]
        assert supervised.version() == RUNNING
        assert supervised.state()["active"]["pid"] == serving  # never stopped
        layout = update_env.layout
        assert layout.current_version == RUNNING
        assert NEWER in layout.bad_versions()
        assert supervised.audit()[-1]["outcome"] == "rolled_back"
        # The bad version is skipped from now on unless asked for by name.
        again = supervised.update()
        assert (again["status"], again["requires_restart"]) == ("complete", False)
    finally:
        stop_supervised(supervised)


def test_remote_restart_wait_reports_the_rollback_instead_of_waiting_out_its_timeout(
    update_env: UpdateEnv,
) -> None:
    """`caio remote restart --wait` into a release that fails its health check ends
    with the supervisor's verdict, not two minutes later with ``wait_timeout``."""
    release_with_patches(update_env, NEWER, SICK["fails at start"])
    supervised = start_supervised(update_env)
    try:
        assert supervised.update()["status"] == "complete"
        asked = caio_remote(supervised, "restart")  # without --wait: what was asked, in a line
        assert asked.returncode == 0, asked.stderr
        assert asked.stdout.startswith(f"{RUNNING} -> {NEWER}: the supervisor is starting")
        supervised.wait_for(  # the rollback's last step: its record in the job status
            lambda: (
                supervised.api("GET", "/api/v1/update").json()["error"]["code"]
                == "health_check_failed"
            )
        )

        assert supervised.update({"target_version": NEWER})["status"] == "complete"
        restart = caio_remote(supervised, "restart", "--wait")
        assert restart.returncode == 3, restart
        assert "caio: error [health_check_failed]" in restart.stderr, restart.stderr
        assert f"rolled back to {RUNNING}" in restart.stderr
        assert supervised.version() == RUNNING

        # The same through the async client, the bad release asked for by name.
        assert supervised.update({"target_version": NEWER})["status"] == "complete"

        async def restart_and_wait() -> None:
            async with AsyncCaioClient(supervised.url, update_env.admin) as client:
                before = await client.status()
                answer = await client.restart()
                with pytest.raises(RestartFailedError) as failed:
                    await client.wait_for_version(answer.to_version or "", before=before)
                assert failed.value.code == "health_check_failed"

        asyncio.run(restart_and_wait())
        assert supervised.version() == RUNNING
    finally:
        stop_supervised(supervised)


def _kill_the_starting_child(supervised: Supervised, killed: list[int]) -> None:
    """SIGKILL the child on probation, once it is one not killed before."""
    supervised.wait_for(lambda: supervised.state()["starting"]["pid"] not in killed)
    pid = supervised.state()["starting"]["pid"]
    os.kill(pid, signal.SIGKILL)
    killed.append(pid)


def test_a_new_child_killed_once_during_probation_is_started_again_and_serves(
    update_env: UpdateEnv,
) -> None:
    """One exit at boot (here a kill; in CI once a race with the supervisor's own
    write) is no verdict: the release gets a second start before it is judged."""
    release_with_patches(update_env, NEWER, SLOW_START)
    supervised = start_supervised(update_env)
    try:
        assert supervised.update()["status"] == "complete"
        serving = supervised.state()["active"]["pid"]
        assert supervised.api("POST", "/api/v1/restart").status_code == 202
        killed: list[int] = []
        _kill_the_starting_child(supervised, killed)
        supervised.wait_for(lambda: supervised.state()["active"]["pid"] != serving)
        assert supervised.version() == NEWER
        assert supervised.state()["active"]["pid"] not in killed
        assert update_env.layout.current_version == NEWER
        assert NEWER not in update_env.layout.bad_versions()
        exits = [r for r in supervised.audit() if r["event"] == "child_exit"]
        assert [(r["version"], r["code"], r["during"]) for r in exits] == [(NEWER, -9, "start")]
        supervised.wait_for(  # recorded once the old child has drained
            lambda: (
                [r for r in supervised.audit() if r["event"] == "restart"][-1]["outcome"]
                == "succeeded"
            )
        )
    finally:
        stop_supervised(supervised)


@pytest.mark.parametrize("attempts", [1, 2])
def test_a_new_child_killed_at_every_start_is_rolled_back(
    update_env: UpdateEnv, attempts: int
) -> None:
    release_with_patches(update_env, NEWER, SLOW_START)
    supervised = start_supervised(update_env, {"CAIO_BOOT_ATTEMPTS": str(attempts)})
    try:
        assert supervised.update()["status"] == "complete"
        serving = supervised.state()["active"]["pid"]
        assert supervised.api("POST", "/api/v1/restart").status_code == 202
        killed: list[int] = []
        for _ in range(attempts):
            _kill_the_starting_child(supervised, killed)
        supervised.wait_for(lambda: update_env.layout.current_version == RUNNING)
        supervised.wait_for(lambda: supervised.state()["starting"] is None)
        status = supervised.api("GET", "/api/v1/update").json()
        assert status["error"]["code"] == "health_check_failed"
        assert "exited with code -9" in status["message"]
        assert supervised.state()["active"]["pid"] == serving
        assert supervised.version() == RUNNING
        assert NEWER in update_env.layout.bad_versions()
        exits = [r for r in supervised.audit() if r["event"] == "child_exit"]
        assert len(exits) == attempts - 1  # the last exit is the rollback's own record
    finally:
        stop_supervised(supervised)


def test_a_crash_loop_of_a_new_version_is_rolled_back(update_env: UpdateEnv) -> None:
    release_with_patches(update_env, NEWER, CRASH_LATER)
    supervised = start_supervised(update_env, {"CAIO_STABLE_SECONDS": "60"})
    try:
        assert supervised.update()["status"] == "complete"
        assert supervised.api("POST", "/api/v1/restart").status_code == 202
        supervised.wait_for(lambda: update_env.layout.current_version == RUNNING, timeout=90)
        supervised.wait_for(lambda: supervised.version() == RUNNING, timeout=60)
        exits = [r for r in supervised.audit() if r["event"] == "child_exit"]
        assert len(exits) >= 3
        assert NEWER in update_env.layout.bad_versions()
        status = supervised.api("GET", "/api/v1/update").json()
        assert "crash loop" in status["message"]
    finally:
        stop_supervised(supervised)


def test_a_child_that_dies_on_its_own_is_started_again(supervised: Supervised) -> None:
    first = supervised.state()["active"]["pid"]
    os.kill(first, signal.SIGKILL)
    supervised.wait_for(lambda: supervised.state()["active"]["pid"] != first)
    supervised.wait_for(lambda: supervised.version() == RUNNING)
    assert supervised.audit()[-1]["event"] == "child_exit"


def test_sighup_restarts_and_sigterm_stops_everything(supervised: Supervised) -> None:
    first = supervised.state()["active"]["pid"]
    supervised.proc.send_signal(signal.SIGHUP)
    supervised.wait_for(lambda: supervised.state()["active"]["pid"] != first)
    second = supervised.state()["active"]["pid"]
    assert supervised.version() == RUNNING
    assert stop_supervised(supervised) == 0
    assert not _alive(first)
    assert not _alive(second)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{supervised.url}/health", timeout=2)


def test_restart_without_a_supervisor_is_refused_clearly(update_env: UpdateEnv) -> None:
    client = update_env.client()
    response = client.post("/api/v1/restart", headers=update_env.auth())
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "restart_failed"
    assert "caio run" in response.json()["error"]["message"]
    assert client.post("/api/v1/restart", headers=update_env.auth("viewer")).status_code == 403
    assert client.post("/api/v1/restart").status_code == 401


def _start_slow_request(url: str, token: str) -> socket.socket:
    """An authorised request whose body is still arriving: the server cannot answer it yet."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = (
        "POST /api/v1/update HTTP/1.1\r\nHost: caio\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: 20\r\n\r\n"
    )
    sock.sendall(head.encode() + b'{"target_')
    return sock


@pytest.mark.parametrize("graceful", [True, False])
def test_graceful_restart_lets_an_in_flight_request_finish(
    supervised: Supervised, graceful: bool
) -> None:
    old = supervised.state()["active"]["pid"]
    sock = _start_slow_request(supervised.url, supervised.env.admin)
    time.sleep(0.5)  # the old child has accepted it and is waiting for the body
    answer = supervised.api("POST", "/api/v1/restart", json={"graceful": graceful})
    assert answer.status_code == 202
    supervised.wait_for(lambda: supervised.state()["active"]["pid"] != old)
    if not graceful:  # the switch is written before the old child is killed: wait for the kill
        supervised.wait_for(lambda: not Path(f"/proc/{old}").exists(), timeout=15)
    try:
        sock.sendall(b'version": 1}')  # 20 bytes in all, but not a valid version
        reply = sock.recv(4096)
    except OSError:
        reply = b""
    finally:
        sock.close()
    if graceful:
        assert reply.startswith(b"HTTP/1.1 4"), reply  # answered by the draining old child
    else:
        assert reply == b""  # the old child was killed with the request in flight


# --- a stop is not a failure (issue 21, items 3 and 4) ---------------------------------------


def interrupted(supervised: Supervised) -> list[dict[str, object]]:
    return [r for r in supervised.audit() if r.get("outcome") == "interrupted"]


def test_a_stop_during_a_restarts_probation_marks_nothing_bad(update_env: UpdateEnv) -> None:
    release_with_patches(update_env, NEWER, SLOW_START)  # 4 s from start to serving
    supervised = start_supervised(update_env)
    try:
        assert supervised.update()["status"] == "complete"
        assert supervised.api("POST", "/api/v1/restart").status_code == 202
        supervised.wait_for(lambda: supervised.state()["starting"] is not None)
        code = stop_supervised(supervised)  # systemctl stop, Ctrl-C, a reboot
    finally:
        stop_supervised(supervised)
    assert code == 0, "".join(supervised.log[-20:])
    layout = update_env.layout
    assert layout.current_version == NEWER and layout.bad_versions() == set()
    [record] = interrupted(supervised)
    assert (record["from"], record["to"]) == (RUNNING, NEWER)
    assert not any(r.get("outcome") == "rolled_back" for r in supervised.audit())
    job = json.loads((update_env.settings.home / "state" / "update.json").read_text())
    assert (job.get("error") or {}).get("code") != "health_check_failed"

    again = start_supervised(update_env)  # runs what is active, health-checked as usual
    try:
        assert again.version() == NEWER
    finally:
        stop_supervised(again)


def test_a_stop_during_the_first_starts_probation_marks_nothing_bad(
    update_env: UpdateEnv,
) -> None:
    release_with_patches(update_env, NEWER, SLOW_START)
    supervised = start_supervised(update_env)
    try:
        assert supervised.update()["status"] == "complete"  # active; not yet running
    finally:
        assert stop_supervised(supervised) == 0
    port = free_port()
    proc = spawn([sys.executable, "-m", "caio", "run"], env=update_env.process_env(port))
    try:
        status = update_env.settings.home / "state" / "supervisor.json"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                if json.loads(status.read_text())["starting"] is not None:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the first child never went on probation")
        code = end(proc, grace=30)
    finally:
        end(proc)
    assert code == 0
    layout = update_env.layout
    assert (layout.current_version, layout.previous_version) == (NEWER, RUNNING)
    assert layout.bad_versions() == set()
    assert [r["to"] for r in interrupted(supervised)] == [NEWER]


IGNORES_SIGTERM = {
    "caio/main.py": (
        "    async def shutdown(self",
        "    def handle_exit(self, sig: int, frame: object) -> None:\n"
        "        return None  # a sick release: SIGTERM does nothing\n\n"
        "    async def shutdown(self",
    )
}


def test_a_child_whose_supervisor_was_killed_ends_and_frees_the_port(
    update_env: UpdateEnv,
) -> None:
    release_with_patches(update_env, NEWER, IGNORES_SIGTERM)
    supervised = start_supervised(update_env)
    try:
        assert supervised.update()["status"] == "complete"
        assert supervised.api("POST", "/api/v1/restart").status_code == 202
        supervised.wait_for(lambda: supervised.version() == NEWER)
        child = supervised.state()["active"]["pid"]
        os.kill(supervised.proc.pid, signal.SIGKILL)
        supervised.proc.wait(10)
        deadline = time.monotonic() + 30  # drain (5 s) and its margin (5 s), and then some
        while time.monotonic() < deadline and Path(f"/proc/{child}").exists():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, os.WNOHANG)  # reaped here if it became ours; else by init
            time.sleep(0.1)
        ended_in = 30 - (deadline - time.monotonic())
        assert not Path(f"/proc/{child}").exists(), "the orphan kept running"
        port = int(supervised.url.rsplit(":", 1)[1])
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))  # nobody holds it any more
        assert ended_in < 20
    finally:
        stop_supervised(supervised)
