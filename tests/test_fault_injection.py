"""Crash at every step boundary, and a full disk: CAIO always comes back consistent.

A real CAIO process is killed with SIGKILL at a named fault point, then started
again without it. Exactly the old or the new release must be active and
complete, state files must parse, leftovers must be gone, and a new update must
then succeed.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from caio.core.faults import POINTS
from caio.core.settings import SOURCE_DIR
from caio.core.state import JobStatus
from tests.background import end, spawn
from tests.helpers import free_port
from tests.update_fixtures import NEWER, RUNNING, UpdateEnv
from tuf_repo import build_release

LATER = "1.2.0"

pytestmark = pytest.mark.slow  # real processes


class Service:
    """`python -m caio.main` (or `caio run`) with optional fault point and file-size limit."""

    def __init__(
        self,
        env: UpdateEnv,
        *,
        fault: str | None = None,
        fsize: int | None = None,
        supervised: bool = False,
    ) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        process_env = env.process_env(self.port, CAIO_DRAIN_SECONDS="3")
        if fault:
            process_env["CAIO_FAULT_POINT"] = fault

        def limit() -> None:
            if fsize is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

        command = ["-m", "caio", "run"] if supervised else ["-m", "caio.main"]
        self.proc = spawn(
            [sys.executable, *command],
            env=process_env,
            preexec_fn=limit,
            stderr=subprocess.DEVNULL,
        )
        self._wait(lambda: httpx.get(f"{self.url}/health").status_code == 200)

    def _wait(self, check: Any, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except httpx.HTTPError:
                pass  # not yet: try again until the deadline
            if self.proc.poll() is not None:
                return
            time.sleep(0.05)
        raise AssertionError("timed out")

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body or {}, headers=self.env.auth(), timeout=30)

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(
            f"{self.url}/api/v1/update", headers=self.env.auth(), timeout=10
        ).json()
        return result

    def finished(self) -> dict[str, Any]:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status = self.status()
            if status["status"] != "updating":
                return status
            time.sleep(0.1)
        raise AssertionError("update did not finish")

    def stop(self) -> None:
        end(self.proc, grace=30)


def assert_consistent(env: UpdateEnv, allowed: set[str | None]) -> str | None:
    layout = env.layout
    current = layout.current_version
    assert current in allowed, (current, allowed)
    if current is not None:
        release = layout.release_dir(current)
        assert json.loads((release / "manifest.json").read_text())["version"] == current
        assert (release / "caio" / "api" / "app.py").is_file()
    assert list(layout.releases.glob(".staging*")) == []
    assert list(layout.releases.glob(".unverified*")) == []
    assert sorted(p.name for p in layout.releases.iterdir()) == layout.installed_versions()
    assert not any(layout.home.glob(".*.new"))
    state = JobStatus.model_validate_json((layout.state_dir / "update.json").read_bytes())
    assert state.status != "updating"
    for line in (layout.state_dir / "audit.jsonl").read_text().splitlines():
        json.loads(line)
    return current


CRASHES: dict[str, set[str | None]] = {
    # fault point: what may be current afterwards
    "after_download": {None},
    "during_extraction": {None},
    "during_preflight": {None},  # releases/<new> in place, unverified: removed at start
    "before_activation": {RUNNING},
    "during_switch": {RUNNING},
    "after_switch": {NEWER},
}


def test_every_fault_point_is_exercised() -> None:
    assert {*CRASHES, "during_restart"} == set(POINTS)


@pytest.mark.parametrize("point", sorted(CRASHES))
def test_sigkill_at_every_step_boundary_leaves_old_or_new(
    update_env: UpdateEnv, point: str
) -> None:
    update_env.publish(NEWER)
    crashing = Service(update_env, fault=point)
    assert crashing.post("/api/v1/update").status_code == 202
    assert crashing.proc.wait(60) == -signal.SIGKILL

    again = Service(update_env)
    try:
        current = assert_consistent(update_env, CRASHES[point])
        status = again.status()
        assert status["error"]["code"] == "interrupted"
        assert again.post("/api/v1/update").status_code == 202
        final = again.finished()
        assert final["status"] == "complete", final
        if current == NEWER:
            assert final["requires_restart"] and "installed; restart" in final["message"]
        assert update_env.layout.current_version == NEWER
        assert_consistent(update_env, {NEWER})
    finally:
        again.stop()


def test_a_verified_download_survives_a_crash_and_is_not_fetched_again(
    update_env: UpdateEnv,
) -> None:
    update_env.publish(NEWER)
    crashing = Service(update_env, fault="after_download")
    crashing.post("/api/v1/update")
    crashing.proc.wait(60)
    fetched = [p for p, _ in update_env.requests if p.endswith(f"caio-{NEWER}.tar.gz")]
    again = Service(update_env)
    try:
        again.post("/api/v1/update")
        assert again.finished()["status"] == "complete"
    finally:
        again.stop()
    assert [p for p, _ in update_env.requests if p.endswith(f"caio-{NEWER}.tar.gz")] == fetched


def test_sigkill_of_the_supervisor_during_restart(update_env: UpdateEnv) -> None:
    update_env.publish(NEWER)
    supervisor = Service(update_env, supervised=True, fault="during_restart")
    supervisor.post("/api/v1/update")
    assert supervisor.finished()["status"] == "complete"
    assert supervisor.post("/api/v1/restart").status_code == 202
    assert supervisor.proc.wait(60) == -signal.SIGKILL
    children = json.loads((update_env.layout.state_dir / "supervisor.json").read_text())
    for child in (children["active"], children["starting"]):
        deadline = time.monotonic() + 30
        while child and time.monotonic() < deadline and _alive(child["pid"]):
            time.sleep(0.1)
        assert not child or not _alive(child["pid"]), "orphaned child outlived its supervisor"

    again = Service(update_env, supervised=True)
    try:
        assert_consistent(update_env, {NEWER})
        version = httpx.get(f"{again.url}/api/v1/version").json()["version"]
        assert version == NEWER  # the activated release is what comes up
    finally:
        again.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_full_disk_during_download(update_env: UpdateEnv) -> None:
    artifact = update_env.publish(NEWER)
    limit = artifact.stat().st_size // 2
    service = Service(update_env, fsize=limit)
    try:
        service.post("/api/v1/update")
        final = service.finished()
        assert final["error"]["code"] == "disk_full", final
        assert update_env.layout.current_version is None
        assert update_env.leftovers() == []
        assert httpx.get(f"{service.url}/health").status_code == 200
    finally:
        service.stop()


def test_full_disk_during_extraction(update_env: UpdateEnv) -> None:
    src = update_env.repo.work / "big-src"
    shutil.copytree(SOURCE_DIR / "caio", src / "caio", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(SOURCE_DIR / "manifest.json", src / "manifest.json")
    (src / "caio" / "blob.bin").write_bytes(b"\0" * (4 * 1024 * 1024))  # compresses to ~4 KB
    artifact = build_release(src, NEWER, update_env.repo.work / "dist-big")
    update_env.repo.publisher().add_release(artifact, ["stable"])
    assert artifact.stat().st_size < 1024 * 1024
    service = Service(update_env, fsize=1024 * 1024)
    try:
        service.post("/api/v1/update")
        final = service.finished()
        assert final["error"]["code"] == "disk_full", final
        assert "no space left" in final["error"]["message"]
        assert update_env.layout.current_version is None
        assert update_env.leftovers() == []
        assert httpx.get(f"{service.url}/health").status_code == 200
    finally:
        service.stop()


@pytest.mark.parametrize("room", ["for the release, not its tar", "for neither"])
def test_full_disk_while_applying_a_delta(update_env: UpdateEnv, room: str) -> None:
    """The delta path falls back when the tar it makes does not fit; the full download
    then installs the release, or fails as a full disk, leaving nothing behind."""
    update_env.publish(NEWER)
    service = Service(update_env)  # a full download, whose tar is kept as the next base
    try:
        service.post("/api/v1/update")
        assert service.finished()["status"] == "complete"
    finally:
        service.stop()
    bases = update_env.settings.home / "bases"
    assert (bases / f"{NEWER}.tar").is_file()
    later = update_env.publish(LATER)  # with the delta from NEWER
    (delta,) = (update_env.repo.dir / "targets" / "caio" / LATER).glob(f"*.from-{NEWER}.delta")
    tar_size = len(gzip.decompress(later.read_bytes()))
    limit = tar_size // 2 if room == "for the release, not its tar" else later.stat().st_size // 2
    assert delta.stat().st_size < limit < tar_size

    service = Service(update_env, fsize=limit)
    try:
        service.post("/api/v1/update")
        final = service.finished()
        audit = (update_env.layout.state_dir / "audit.jsonl").read_text().splitlines()
        record = json.loads(audit[-1])
        assert "applying the delta: no space left" in record["delta_fallback"], record
        assert "delta" not in record
        if room == "for neither":
            assert final["error"]["code"] == "disk_full", final
            assert update_env.layout.current_version == NEWER
        else:
            assert final["status"] == "complete", final
            assert update_env.layout.current_version == LATER
        assert update_env.leftovers() == []
        assert sorted(p.name for p in bases.iterdir()) == [f"{NEWER}.tar"]  # LATER's did not fit
        assert httpx.get(f"{service.url}/health").status_code == 200
    finally:
        service.stop()
