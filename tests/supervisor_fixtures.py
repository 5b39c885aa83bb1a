"""`caio run` as a real process against a published repository, and sick releases."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from caio.core.settings import SOURCE_DIR
from tests.background import BACKOFF_SECONDS, end, spawn
from tests.helpers import free_port
from tests.update_fixtures import UpdateEnv
from tuf_repo import build_release

ServiceArgs = list[str]


def release_with_patches(env: UpdateEnv, version: str, patches: dict[str, tuple[str, str]]) -> Path:
    """Publish ``version`` built from this source tree with text patches applied."""
    src = env.repo.work / f"patched-{version}"
    shutil.copytree(SOURCE_DIR / "caio", src / "caio", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(SOURCE_DIR / "manifest.json", src / "manifest.json")
    for relpath, (old, new) in patches.items():
        path = src / relpath
        text = path.read_text()
        assert old in text, f"patch anchor not found in {relpath}"
        path.write_text(text.replace(old, new, 1))
    artifact = build_release(src, version, env.repo.work / f"dist-{version}")
    env.repo.publisher().add_release(artifact, ["stable"])
    return artifact


SERVE = "def serve(settings: Settings) -> int:\n"
SICK = {
    "fails at start": {"caio/main.py": (SERVE, SERVE + "    raise RuntimeError('sick release')\n")},
    "never ready": {"caio/main.py": (SERVE, SERVE + "    __import__('time').sleep(3600)\n")},
    "wrong version": {
        "caio/api/routes/health.py": (
            'Health(status="ok", version=running.info.version, withdrawn=withdrawn)',
            'Health(status="ok", version="6.6.6", withdrawn=withdrawn)',
        )
    },
}
SLOW_START = {"caio/main.py": (SERVE, SERVE + "    __import__('time').sleep(4)\n")}
CRASH_LATER = {
    "caio/main.py": (
        SERVE,
        SERVE + "    __import__('threading').Timer(1.5, __import__('os')._exit, (3,)).start()\n",
    )
}


@dataclass
class Supervised:
    """A running `caio run` and what a test needs to observe it."""

    env: UpdateEnv
    proc: subprocess.Popen[str]
    url: str
    log: list[str] = field(default_factory=list)
    verify: ssl.SSLContext | bool = True  # what an https url is checked with

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            (self.env.settings.home / "state" / "supervisor.json").read_text()
        )
        return data

    def version(self) -> str:
        answer = httpx.get(f"{self.url}/api/v1/version", timeout=5, verify=self.verify)
        version: str = answer.json()["version"]
        return version

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.url}{path}",
            headers=self.env.auth(),
            timeout=30,
            verify=self.verify,
            **kw,
        )

    def update(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self.api("POST", "/api/v1/update", json=body or {}).status_code == 202
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status: dict[str, Any] = self.api("GET", "/api/v1/update").json()
            if status["status"] != "updating":
                return status
            time.sleep(0.1)
        raise AssertionError("update did not finish")

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except (httpx.HTTPError, OSError, ValueError, KeyError, TypeError):
                pass  # not yet: try again until the deadline
            time.sleep(0.1)
        raise AssertionError(
            f"condition not met in {timeout}s; log tail:\n" + "".join(self.log[-30:])
        )

    def audit(self) -> list[dict[str, Any]]:
        path = self.env.settings.home / "state" / "audit.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]


def version_load(
    supervised: Supervised, results: list[tuple[int | str, str]]
) -> Callable[[threading.Event], None]:
    """One request on a fresh connection (a fresh TLS handshake over HTTPS); a failure is
    recorded, then the loop backs off."""

    def step(stop: threading.Event) -> None:
        try:
            r = httpx.get(
                f"{supervised.url}/api/v1/version",
                timeout=10,
                headers={"Connection": "close"},
                verify=supervised.verify,
            )
            results.append((r.status_code, r.json()["version"]))
        except httpx.HTTPError as e:
            results.append((type(e).__name__, ""))
            stop.wait(BACKOFF_SECONDS)

    return step


def paced_probation(least: float = 4.0) -> str:
    """A probation window that follows this machine's pace now, for tests that wait it out.

    A child must import CAIO, bind and answer /health within the window: on a
    quiet machine an import takes about 0.45 s and 4 s is plenty; under load it
    can take seconds, and a fixed 4 s failed the first, healthy, start. The window
    is eight imports as long as one takes now, and never under ``least``.
    """
    began = time.monotonic()
    subprocess.run([sys.executable, "-c", "import caio.main"], check=True, timeout=120)
    return str(max(least, round(8 * (time.monotonic() - began), 1)))


def start_supervised(
    env: UpdateEnv,
    extra_env: dict[str, str] | None = None,
    verify: ssl.SSLContext | bool = True,
) -> Supervised:
    """``caio run`` on a free port; over HTTPS when ``extra_env`` sets CAIO_TLS_CERT."""
    port = free_port()
    scheme = "https" if "CAIO_TLS_CERT" in (extra_env or {}) else "http"
    process_env = env.process_env(port, **{"CAIO_PROBATION_SECONDS": "20", **(extra_env or {})})
    proc = spawn(
        [sys.executable, "-m", "caio", "run"],
        env=process_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    supervised = Supervised(env, proc, f"{scheme}://127.0.0.1:{port}", verify=verify)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            supervised.log.append(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        supervised.wait_for(lambda: supervised.api("GET", "/health").status_code == 200)
        supervised.wait_for(lambda: supervised.state()["active"]["pid"] > 0)
    except BaseException:
        end(proc)
        raise
    return supervised


def stop_supervised(supervised: Supervised) -> int:
    """SIGTERM, as an operator's stop; then its whole process group, whatever the outcome."""
    return end(supervised.proc, grace=30)


@pytest.fixture
def supervised(update_env: UpdateEnv) -> Iterator[Supervised]:
    running = start_supervised(update_env)
    yield running
    stop_supervised(running)
