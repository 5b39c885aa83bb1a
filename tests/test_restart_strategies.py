"""The exec, systemd and embedded restart strategies, with real processes where they matter."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from caio.api.app import create_app
from caio.core.layout import InstallLayout, seed_release
from caio.core.manifest import Manifest
from caio.core.settings import SOURCE_DIR
from caio.restart import EXIT_RESTART
from caio.restart.notify import NotifyListener
from tests.background import BACKOFF_SECONDS, end, looping, spawn
from tests.helpers import free_port
from tests.update_fixtures import NEWER, RUNNING, UpdateEnv

pytestmark = pytest.mark.slow  # real processes


def wait_until(check, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError, ValueError, KeyError):
            pass  # not yet: try again until the deadline
        time.sleep(0.05)
    raise AssertionError("condition not met")


Start = Callable[..., tuple[subprocess.Popen[bytes], str]]


@pytest.fixture
def start(update_env: UpdateEnv) -> Iterator[Start]:
    """Start `python -m caio.main` (or another caio command) and wait until it serves."""
    started: list[subprocess.Popen[bytes]] = []

    def starter(*command: str, **extra: str) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        args = list(command) or ["-m", "caio.main"]
        proc = spawn([sys.executable, *args], env=update_env.process_env(port, **extra))
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{url}/health").status_code == 200)
        return proc, url

    yield starter
    for proc in started:
        end(proc, grace=0, sig=signal.SIGKILL)


def test_exec_restarts_in_place_keeping_the_socket(update_env: UpdateEnv, start: Start) -> None:
    update_env.publish(NEWER)
    proc, url = start(CAIO_RESTART_STRATEGY="exec")
    auth = update_env.auth()
    assert httpx.post(f"{url}/api/v1/update", json={}, headers=auth).status_code == 202
    wait_until(
        lambda: httpx.get(f"{url}/api/v1/update", headers=auth).json()["status"] == "complete"
    )

    results: list[int | str] = []

    def health(stop: threading.Event) -> None:
        try:
            r = httpx.get(f"{url}/health", timeout=15, headers={"Connection": "close"})
            results.append(r.status_code)
        except httpx.HTTPError as e:
            results.append(type(e).__name__)
            stop.wait(BACKOFF_SECONDS)

    with looping(health, name="exec-load"):
        answer = httpx.post(f"{url}/api/v1/restart", json={"graceful": True}, headers=auth)
        assert (answer.status_code, answer.json()["strategy"]) == (202, "exec")
        wait_until(lambda: httpx.get(f"{url}/api/v1/version").json()["version"] == NEWER)
    assert proc.poll() is None  # the same process, now running the new release
    assert set(results) == {200}, set(results)


def test_systemd_notify_socket_activation_watchdog_and_restart_exit_code(
    update_env: UpdateEnv,
) -> None:
    listener = NotifyListener(Path(os.environ.get("TMPDIR", "/tmp")) / f"caio-n-{os.getpid()}.sock")
    activated = socket.socket()
    activated.bind(("127.0.0.1", 0))
    activated.listen(16)
    port = activated.getsockname()[1]
    unused = free_port()
    env = update_env.process_env(
        unused,
        CAIO_RESTART_STRATEGY="systemd",
        NOTIFY_SOCKET=str(listener.path),
        WATCHDOG_USEC="200000",
    )
    fd = activated.fileno()
    # Like systemd: the socket at fd 3 and LISTEN_PID = the service's own pid (same after exec).
    launcher = (
        "import os, sys; os.dup2(int(sys.argv[1]), 3); "
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1'); "
        "os.execv(sys.executable, [sys.executable, '-m', 'caio.main'])"
    )
    command = [sys.executable, "-c", launcher, str(fd)]
    proc = spawn(command, env=env, pass_fds=(fd,))
    try:
        messages: list[dict[str, str]] = []

        def got(key: str) -> bool:
            messages.extend(listener.drain())
            return any(key in m for m in messages)

        wait_until(lambda: got("READY"))
        ready = next(m for m in messages if "READY" in m)
        assert ready["X_CAIO_VERSION"] == RUNNING
        assert httpx.get(f"http://127.0.0.1:{port}/health").json()["version"] == RUNNING
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{unused}/health")  # it did not bind its own port
        wait_until(lambda: got("WATCHDOG"), timeout=5)

        answer = httpx.post(f"http://127.0.0.1:{port}/api/v1/restart", headers=update_env.auth())
        assert (answer.status_code, answer.json()["strategy"]) == (202, "systemd")
        assert proc.wait(30) == EXIT_RESTART
        assert got("STOPPING")
    finally:
        end(proc, grace=0, sig=signal.SIGKILL)
        listener.close()
        activated.close()


def test_embedded_exit_code_for_the_host(update_env: UpdateEnv, start: Start) -> None:
    proc, url = start(CAIO_RESTART_STRATEGY="embedded")
    assert httpx.post(f"{url}/api/v1/restart", headers=update_env.auth()).status_code == 202
    assert proc.wait(30) == EXIT_RESTART


def test_embedded_signal_to_the_host_that_registered(update_env: UpdateEnv, start: Start) -> None:
    received: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda sig, _frame: received.append(sig))
    try:
        proc, url = start(
            CAIO_RESTART_STRATEGY="embedded",
            CAIO_RESTART_SIGNAL="SIGUSR1",
            CAIO_RESTART_PID=str(os.getpid()),  # this test is the host
        )
        answer = httpx.post(f"{url}/api/v1/restart", headers=update_env.auth())
        assert answer.status_code == 202
        assert f"SIGUSR1 to the host process (pid {os.getpid()})" in answer.json()["message"]
        wait_until(lambda: received == [signal.SIGUSR1], timeout=10)
        assert proc.poll() is None  # the host decides what happens next
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_embedded_callback_in_process(update_env: UpdateEnv) -> None:
    calls: list[bool] = []
    settings = update_env.settings.model_copy(update={"restart_strategy": "embedded"})
    client = TestClient(create_app(settings, on_restart=calls.append))
    auth = update_env.auth()
    assert client.post("/api/v1/restart", headers=auth).status_code == 202
    assert client.post("/api/v1/restart", json={"graceful": False}, headers=auth).status_code == 202
    assert calls == [True, False]
    assert (
        client.post("/api/v1/restart", json={"graceful": "maybe"}, headers=auth).status_code == 422
    )
    history = client.get("/api/v1/update/history", headers=auth).json()["records"]
    assert [r["strategy"] for r in history if r["event"] == "restart"] == ["embedded", "embedded"]


def test_exec_and_systemd_need_a_running_server(update_env: UpdateEnv) -> None:
    for strategy in ("exec", "systemd"):
        settings = update_env.settings.model_copy(update={"restart_strategy": strategy})
        response = TestClient(create_app(settings)).post(
            "/api/v1/restart", headers=update_env.auth()
        )
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "restart_failed"


def test_serve_current_runs_the_current_release(update_env: UpdateEnv, start: Start) -> None:
    layout = InstallLayout(update_env.settings.home)
    layout.ensure()
    manifest = Manifest(name="caio", version="1.0.7", update_url=update_env.repo.url)
    seed_release(layout, SOURCE_DIR, manifest)
    _, url = start("-m", "caio", "serve-current")
    assert httpx.get(f"{url}/api/v1/version").json()["version"] == "1.0.7"


def test_the_shipped_systemd_units_match_the_code() -> None:
    deploy = SOURCE_DIR / "deploy"
    service = (deploy / "caio.service").read_text()
    assert "Type=notify" in service
    assert f"RestartForceExitStatus={EXIT_RESTART}" in service
    assert "CAIO_RESTART_STRATEGY=systemd" in service
    assert "serve-current" in service
    # Boot counting needs CAIO_BOOT_ATTEMPTS (at most 5) failed starts and one more, at
    # RestartSec apart, inside systemd's start limit.
    keys = dict(line.split("=", 1) for line in service.splitlines() if line[:1].isupper())
    assert int(keys["StartLimitBurst"]) >= 5 + 1
    assert int(keys["StartLimitIntervalSec"]) >= (5 + 1) * 2 * float(keys["RestartSec"])
    assert "ListenStream=" in (deploy / "caio.socket").read_text()


def test_the_shipped_unit_is_hardened_as_systemd_scores_it() -> None:
    """Issue 21, item 7: `systemd-analyze security` scored the unit 8.7 EXPOSED."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing: scripts/test installs systemd")
        pytest.skip("needs systemd-analyze")
    done = subprocess.run(
        [analyze, "security", "--offline=yes", str(SOURCE_DIR / "deploy" / "caio.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    overall = next(line for line in done.stdout.splitlines() if "Overall exposure" in line)
    score = float(overall.split(":")[1].split()[0])
    assert score <= 4.0, overall
    service = (SOURCE_DIR / "deploy" / "caio.service").read_text()
    for wanted in ("UMask=0077", "StateDirectoryMode=0700", "SystemCallFilter=@system-service"):
        assert wanted in service
