"""The host recipes under examples/, end to end against a repository published by tuf_repo."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.background import end, spawn
from tests.helpers import free_port
from tests.supervisor_fixtures import start_supervised, stop_supervised
from tests.update_fixtures import NEWER, RUNNING, UpdateEnv

pytestmark = pytest.mark.slow  # real processes

ROOT = Path(__file__).resolve().parent.parent


def test_beside_a_host_app_updates_caio_run_and_confirms_the_new_version(
    update_env: UpdateEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    update_env.publish(NEWER)
    caio = start_supervised(update_env)
    try:
        from examples.beside.host_app import app

        monkeypatch.setenv("CAIO_URL", caio.url)
        monkeypatch.setenv("CAIO_TOKEN", update_env.admin)
        host = TestClient(app)
        assert host.get("/maintenance/caio").json() == {"version": RUNNING}
        report = host.post("/maintenance/update-caio").json()
        assert (report["outcome"], report["from_version"], report["to_version"]) == (
            "updated",
            RUNNING,
            NEWER,
        )
        assert report["progress"][-1] == "complete 100%"
        assert any(line.startswith("downloading") for line in report["progress"])
        assert caio.version() == NEWER  # the supervisor serves the new release
        again = host.post("/maintenance/update-caio").json()
        assert again["outcome"] == "up_to_date"
        monkeypatch.setenv("CAIO_TOKEN", "caio_not-the-token")
        refused = host.post("/maintenance/update-caio")
        assert refused.status_code == 502 and "[unauthorized]" in refused.json()["detail"]
    finally:
        stop_supervised(caio)


def test_embedded_the_host_restarts_itself_into_the_new_release(update_env: UpdateEnv) -> None:
    update_env.publish(NEWER)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CAIO_")},
        "CAIO_HOME": str(update_env.settings.home),
        "CAIO_UPDATE_URL": update_env.repo.url,
    }
    proc = spawn(
        [sys.executable, "-m", "examples.embedded.host_app", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    auth = update_env.auth()

    def wait_for(version: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"{url}/host/hello", timeout=2).json()["caio"] == version:
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"the host did not come up with CAIO {version}")

    try:
        wait_for("1.0.0")
        assert httpx.post(f"{url}/api/v1/update", json={}, headers=auth).status_code == 202
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/api/v1/update", headers=auth).json()["status"] == "updating":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        restart = httpx.post(f"{url}/api/v1/restart", json={}, headers=auth).json()
        assert (restart["strategy"], restart["to_version"]) == ("embedded", NEWER)
        wait_for(NEWER)  # the same process, re-executed into the new release
        assert httpx.get(f"{url}/api/v1/version").json()["version"] == NEWER
    finally:
        end(proc, grace=20)
