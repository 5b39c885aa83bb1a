"""A real `caio serve` process for tests: started against an :class:`UpdateEnv`, logged, stopped."""

from __future__ import annotations

import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.background import end, spawn
from tests.helpers import free_port
from tests.update_fixtures import UpdateEnv

__all__ = ["Served", "run", "serve", "started"]


@dataclass
class Served:
    """A real `caio serve` process and its log."""

    env: UpdateEnv
    proc: subprocess.Popen[str]
    url: str
    log: list[str] = field(default_factory=list)
    verify: ssl.SSLContext | bool = True  # what an https url is checked with

    def api(self, method: str, path: str, role: str | None = "admin", **kw: Any) -> httpx.Response:
        headers = self.env.auth(role) if role else {}
        return httpx.request(
            method, f"{self.url}{path}", headers=headers, timeout=30, verify=self.verify, **kw
        )

    def peak_rss_kb(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(
            next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]
        )

    def wait_job(self, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status: dict[str, Any] = self.api("GET", "/api/v1/update").json()
            if status["status"] != "updating":
                return status
            time.sleep(0.05)
        raise AssertionError("the job did not end; log:\n" + "".join(self.log[-20:]))

    def wait_stage(self, stage: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.api("GET", "/api/v1/update").json()["stage"] == stage:
                return
            time.sleep(0.05)
        raise AssertionError(f"the job never reached {stage}")


def serve(
    env: UpdateEnv,
    preexec: Any = None,
    verify: Any = True,  # ssl.SSLContext | bool (Any: callers spread str settings)
    **extra: str,
) -> Served:
    """``caio serve`` on a free port; over HTTPS when ``extra`` sets CAIO_TLS_CERT (the
    test's requests check it with ``verify``)."""
    port = free_port()
    scheme = "https" if "CAIO_TLS_CERT" in extra else "http"
    proc = spawn(
        [sys.executable, "-m", "caio", "serve"],
        env=env.process_env(port, CAIO_RESTART_STRATEGY="exec", **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=preexec,
    )
    served = Served(env, proc, f"{scheme}://127.0.0.1:{port}", verify=verify)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            served.log.append(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if served.api("GET", "/health", role=None).status_code == 200:
                    return served
            except httpx.HTTPError:
                time.sleep(0.05)
            assert proc.poll() is None, "".join(served.log)
        raise AssertionError("caio serve did not come up:\n" + "".join(served.log))
    except BaseException:
        end(proc)
        raise


@pytest.fixture
def started(update_env: UpdateEnv) -> Iterator[list[Served]]:
    processes: list[Served] = []
    yield processes
    for served in processes:
        end(served.proc)


def run(
    env: UpdateEnv,
    started: list[Served],
    preexec: Any = None,
    verify: Any = True,  # ssl.SSLContext | bool (Any: callers spread str settings)
    **extra: str,
) -> Served:
    served = serve(env, preexec, verify, **extra)
    started.append(served)
    return served
