"""The host's view: a real CAIO process driven by `caio remote` and by CaioClient."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from caio.client import CaioClient, ConflictError, UnreachableError
from caio.schemas import JobStatus
from tests.background import end, spawn
from tests.helpers import free_port
from tests.update_fixtures import NEWER, RUNNING, UpdateEnv

pytestmark = pytest.mark.slow  # real processes


@pytest.fixture
def service(update_env: UpdateEnv) -> Iterator[str]:
    update_env.publish(NEWER)
    port = free_port()
    env = update_env.process_env(port)
    proc = spawn([sys.executable, "-m", "caio.main"], env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{url}/health")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        end(proc, grace=20)


def remote(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caio", "remote", *args], capture_output=True, text=True, timeout=120
    )


def test_remote_update_with_progress_then_status_and_rollback(
    service: str, update_env: UpdateEnv
) -> None:
    version = remote("version", "--url", service)
    assert version.returncode == 0
    assert f'"version": "{RUNNING}"' in version.stdout

    check = remote("check", "--url", service, "--token", update_env.viewer)
    assert check.returncode == 0, check.stderr
    assert f"an update installs {NEWER}" in check.stdout  # a table for people
    table = check.stdout.splitlines()
    header = next(n for n, line in enumerate(table) if line.startswith("version "))
    assert table[header + 1].split()[0] == NEWER and "newest" in table[header + 1]
    assert any(line.startswith("timestamp ") for line in table)  # and when it expires
    assert "visible to every local user" in check.stderr and "--token-file" in check.stderr
    as_json = remote("check", "--url", service, "--token", update_env.viewer, "--json")
    assert json.loads(as_json.stdout)["update_available"]["version"] == NEWER
    wrong_base = remote("check", "--url", f"{service}/api/v1", "--token", update_env.viewer)
    assert wrong_base.returncode == 3
    assert "[not_found]" in wrong_base.stderr and "without /api/v1" in wrong_base.stderr
    no_file = remote("check", "--url", service, "--token-file", "/nonexistent/token")
    assert no_file.returncode == 1  # README: a file named that does not exist
    assert "cannot read the token file /nonexistent/token" in no_file.stderr
    quiet = subprocess.run(  # the same token from the environment: no warning
        [sys.executable, "-m", "caio", "remote", "check", "--url", service, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CAIO_TOKEN": update_env.viewer},
    )
    assert quiet.returncode == 0 and "visible" not in quiet.stderr, quiet.stderr

    done = remote("update", "--url", service, "--token", update_env.admin, "--wait")
    assert done.returncode == 0, done.stderr
    assert f"{NEWER} is installed and active; restart to run it" in done.stdout
    assert "100%" in done.stderr  # the progress bar reached the end

    status = remote("status", "--url", service, "--token", update_env.viewer)
    assert status.stdout.startswith(f"complete: {NEWER} is installed and active"), status.stdout
    assert f"{RUNNING} -> {NEWER}, asked by ops" in status.stdout
    as_json = remote("status", "--url", service, "--token", update_env.viewer, "--json")
    assert json.loads(as_json.stdout)["status"] == "complete"
    rolled = remote("rollback", "--url", service, "--token", update_env.admin)
    assert rolled.returncode == 0, rolled.stderr
    assert rolled.stdout == f"{NEWER} -> {RUNNING}: {RUNNING} is active again; restart to run it\n"
    history = remote("history", "--url", service, "--token", update_env.viewer, "--limit", "2")
    assert history.returncode == 0, history.stderr
    lines = history.stdout.splitlines()
    assert lines[0].split() == ["time", "(UTC)", "event", "outcome", "versions", "by", "detail"]
    assert lines[1].split()[2:6] == ["update", "activated", RUNNING, "->"]
    assert lines[2].split()[2:7] == ["rollback", "activated", NEWER, "->", RUNNING]
    assert lines[-1] == "audit log: 2 records, hash chain intact"
    raw = remote("history", "--url", service, "--token", update_env.viewer, "--json")
    shown = json.loads(raw.stdout)
    assert shown["integrity"]["ok"] is True and shown["records"][-1]["event"] == "rollback"
    nothing = remote("cancel", "--url", service, "--token", update_env.admin)
    assert (nothing.returncode, "[no_update_in_progress]" in nothing.stderr) == (3, True)
    denied = remote("history", "--url", service, "--token", "caio_wrong")
    assert (denied.returncode, "[unauthorized]" in denied.stderr) == (3, True)

    unsupervised = remote("restart", "--url", service, "--token", update_env.admin)
    assert unsupervised.returncode == 3  # caio serve, with the default strategy: says what to do
    assert "[restart_failed]: not running under `caio run`" in unsupervised.stderr

    audit = update_env.settings.home / "state" / "audit.jsonl"
    audit.write_text(audit.read_text().replace('"by": "ops"', '"by": "eve"', 1))
    tampered = remote("history", "--url", service, "--token", update_env.viewer)
    assert tampered.returncode == 1, tampered.stdout  # a broken chain fails the command
    assert "AUDIT LOG BROKEN at record 1" in tampered.stdout


def test_remote_update_failure_exits_with_the_error_code(
    service: str, update_env: UpdateEnv
) -> None:
    path = next((update_env.repo.dir / "targets" / "caio" / NEWER).glob("*.tar.gz"))
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    failed = remote("update", "--url", service, "--token", update_env.admin, "--wait")
    assert failed.returncode == 1
    assert "update failed [hash_mismatch]" in failed.stderr

    denied = remote("update", "--url", service, "--token", update_env.viewer)
    assert denied.returncode == 3  # the API answered with an error
    assert "[forbidden]" in denied.stderr
    wrong = remote("status", "--url", service, "--token", "caio_wrong")
    assert (wrong.returncode, "[unauthorized]" in wrong.stderr) == (3, True)

    started = remote("update", "--url", service, "--token", update_env.admin)  # no --wait
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith("updating ("), started.stdout  # what started, in a line
    with CaioClient(service, update_env.viewer) as client:
        assert client.wait(timeout=120).error is not None  # the same bad bytes


def test_caio_client_follows_the_event_stream(service: str, update_env: UpdateEnv) -> None:
    seen: list[JobStatus] = []
    with CaioClient(service, update_env.admin) as client:
        assert client.health().version == RUNNING
        started = client.start_update()
        assert started.status == "updating"
        with pytest.raises(ConflictError) as busy:
            client.start_update()
        assert (busy.value.status_code, busy.value.code) == (409, "update_in_progress")
        final = client.wait(seen.append, timeout=120)
        assert final.status == "complete"
        assert seen[-1].stage == "complete"
        assert client.history().records[-1]["outcome"] == "activated"
    nowhere = CaioClient("http://127.0.0.1:9", retries=2, backoff=0.01)
    with nowhere, pytest.raises(UnreachableError) as down:
        nowhere.version()
    assert down.value.code == "unreachable"
