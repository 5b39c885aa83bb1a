"""CAIO pointed at a real published repository on loopback, plus hostile-server hooks."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from caio.api.app import create_app
from caio.core.layout import InstallLayout
from caio.core.settings import SOURCE_DIR, Settings
from caio.core.tokens import Role, TokenStore
from tests.helpers import write_manifest
from tests.tuf_fixtures import PublishedRepo
from tuf_repo import Keyring, Publisher, RepoServer, RepoStore, build_release
from tuf_repo.server import RepoRequestHandler

RUNNING = "1.0.0"
NEWER = "1.1.0"

Behaviour = Callable[[RepoRequestHandler], None]


class HostileHandler(RepoRequestHandler):
    """Serves the repository, except for paths a test has given a behaviour."""

    behaviours: dict[str, Behaviour]
    requests: list[tuple[str, str | None]]

    def do_GET(self) -> None:
        self.requests.append((self.path, self.headers.get("Range")))
        for suffix, behaviour in self.behaviours.items():
            if self.path.endswith(suffix):
                behaviour(self)
                return
        super().do_GET()


def endless(handler: RepoRequestHandler) -> None:
    """Never-ending body without a length (endless-data attack); bounded for the test's sake."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/octet-stream")
    handler.end_headers()
    chunk = b"\0" * 65536
    try:
        for _ in range(16384):  # 1 GiB at most; the client must stop long before
            handler.wfile.write(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client hung up, as it should on endless data
    handler.close_connection = True


def promise_whole_file(handler: RepoRequestHandler) -> bytes:
    """Send a 200 head announcing the requested file's full length; returns its bytes."""
    path = handler._resolve()
    assert path is not None
    data = path.read_bytes()
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    return data


def trickle(interval: float, *, max_seconds: float = 120.0) -> Behaviour:
    """Serve the file with its full length, one byte every ``interval`` seconds (slow retrieval).

    Stops when the client hangs up, or after ``max_seconds`` for the test's sake.
    """

    def behaviour(handler: RepoRequestHandler) -> None:
        data = promise_whole_file(handler)
        deadline = time.monotonic() + max_seconds
        try:
            for i in range(len(data)):
                if time.monotonic() > deadline:
                    break
                handler.wfile.write(data[i : i + 1])
                handler.wfile.flush()
                time.sleep(interval)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on us, as it should
        handler.close_connection = True

    return behaviour


def paced(chunks: int, pause: float) -> Behaviour:
    """Serve the whole file in ``chunks`` pieces with ``pause`` seconds between them.

    A download that takes a few seconds on loopback, so a watcher sees its progress.
    """

    def behaviour(handler: RepoRequestHandler) -> None:
        data = promise_whole_file(handler)
        size = -(-len(data) // chunks)
        try:
            for start in range(0, len(data), size):
                handler.wfile.write(data[start : start + size])
                handler.wfile.flush()
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass
        handler.close_connection = True

    return behaviour


def cut_after(limit: int) -> Behaviour:
    """Serve the first ``limit`` bytes of the file with its full length, then drop the line."""
    used: list[bool] = []

    def behaviour(handler: RepoRequestHandler) -> None:
        if used:  # only the first request is cut; resumed requests are served normally
            RepoRequestHandler.do_GET(handler)
            return
        used.append(True)
        data = promise_whole_file(handler)
        handler.wfile.write(data[:limit])
        handler.wfile.flush()
        handler.close_connection = True

    return behaviour


@dataclass
class UpdateEnv:
    """A running repository, CAIO settings pointing at it, and tokens."""

    repo: PublishedRepo
    settings: Settings
    admin: str
    viewer: str
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def channel(self) -> str:
        assert self.settings.manifest is not None
        channel: str = json.loads(self.settings.manifest.read_text())["channel"]
        return channel

    @property
    def layout(self) -> InstallLayout:
        return InstallLayout(self.settings.home)

    def publish(self, version: str, channels: tuple[str, ...] = ("stable",)) -> Path:
        artifact = built_release(version, self.repo.work / "dist")
        self.repo.publisher().add_release(artifact, channels)
        return artifact

    def process_env(self, port: int, **extra: str) -> dict[str, str]:
        """Environment for a real CAIO process using this repository and home."""
        s = self.settings
        return {
            **os.environ,
            "CAIO_HOME": str(s.home),
            "CAIO_PORT": str(port),
            "CAIO_MANIFEST": str(s.manifest),
            "CAIO_UPDATE_URL": self.repo.url,
            "CAIO_RETRY_BASE_DELAY": "0.01",
            "CAIO_DRAIN_SECONDS": "5",
            **extra,
        }

    def client(self) -> TestClient:
        return TestClient(create_app(self.settings))

    def auth(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin if role == 'admin' else self.viewer}"}

    def run_update(self, client: TestClient, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST /update and poll until the job ends; returns the final status."""
        started = client.post("/api/v1/update", json=body or {}, headers=self.auth())
        assert started.status_code == 202, started.text
        return self.wait(client)

    def wait(self, client: TestClient, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status: dict[str, Any] = client.get("/api/v1/update", headers=self.auth()).json()
            if status["status"] != "updating":
                return status
            time.sleep(0.05)
        raise AssertionError("update job did not finish")

    def leftovers(self) -> list[str]:
        """Partial downloads and staging trees that a failed job must not leave."""
        found = [p.name for p in self.layout.downloads.glob("*.part")]
        found += [p.name for p in self.layout.releases.glob(".staging*")]
        return found


_BUILT: dict[str, bytes] = {}


def built_release(version: str, dist: Path) -> Path:
    """This source tree built as ``version`` into ``dist``; built once per session.

    Builds are deterministic (same source and version, same bytes), so a
    cached build is the build.
    """
    if version not in _BUILT:
        _BUILT[version] = build_release(SOURCE_DIR, version, dist).read_bytes()
    path = dist / f"caio-{version}.tar.gz"
    if not path.exists():
        dist.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_BUILT[version])
    return path


def make_update_env(tmp_path: Path, *, channel: str = "stable") -> UpdateEnv:
    work = tmp_path / "publisher"
    work.mkdir()
    Publisher(RepoStore(work / "repo"), Keyring([])).init(work / "keys")
    home = tmp_path / "home"
    home.mkdir()
    (home / "trusted_root.json").write_bytes((work / "repo/metadata/1.root.json").read_bytes())
    tokens = TokenStore(home / "tokens.json")
    admin, viewer = tokens.create("ops", Role.ADMIN), tokens.create("dash", Role.VIEWER)
    return _serve_env(tmp_path, admin, viewer, channel)


def clone_update_env(template: UpdateEnv, tmp_path: Path) -> UpdateEnv:
    """A copy of ``template`` (repository, keys, CAIO home) with its own server: milliseconds.

    Tests that need the same starting state (releases published, an update
    done) build it once per session and clone it, instead of building it again.
    """
    source = template.repo.work.parent
    for name in ("publisher", "home"):
        shutil.copytree(source / name, tmp_path / name, symlinks=True)
    return _serve_env(tmp_path, template.admin, template.viewer, template.channel)


def _serve_env(tmp_path: Path, admin: str, viewer: str, channel: str) -> UpdateEnv:
    work = tmp_path / "publisher"
    behaviours: dict[str, Behaviour] = {}
    requests: list[tuple[str, str | None]] = []
    handler = type("Hostile", (HostileHandler,), {"behaviours": behaviours, "requests": requests})
    server = RepoServer(work / "repo", quiet=True, handler_class=handler).start()
    repo = PublishedRepo(work / "repo", work / "keys", work, server)
    manifest = write_manifest(
        tmp_path / "manifest.json", version=RUNNING, update_url=repo.url, channel=channel
    )
    settings = Settings(
        home=tmp_path / "home", manifest=manifest, retry_base_delay=0.01, retry_attempts=3
    )
    return UpdateEnv(
        repo, settings, admin=admin, viewer=viewer, behaviours=behaviours, requests=requests
    )


@pytest.fixture
def update_env(tmp_path: Path) -> Iterator[UpdateEnv]:
    env = make_update_env(tmp_path)
    yield env
    env.repo.server.stop()


@pytest.fixture
def approval_env(tmp_path: Path) -> Iterator[UpdateEnv]:
    """A second, independent repository (its own keys and root) on its own server:
    the approval repository of two-party tests."""
    (tmp_path / "approval").mkdir()
    env = make_update_env(tmp_path / "approval")
    yield env
    env.repo.server.stop()


def sse_events(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Read the event stream until it ends; returns the status payloads."""
    events = []
    with client.stream("GET", "/api/v1/update/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line.removeprefix("data:").strip()))
    return events


def in_thread(target: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread
