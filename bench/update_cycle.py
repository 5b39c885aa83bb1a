"""Benchmark 15: the whole update cycle, against the plain way of doing it by hand.

From "update!" to "the new version answers": CAIO under `caio run` gets
``POST /api/v1/update`` (check, download, verify, install, activate) and then
``POST /api/v1/restart`` (a new child, health-gated, the old one drained),
and the clock stops when ``/api/v1/version`` reports the new version.

The baseline does the least a script would: `curl` the same artifact from the
same server, `sha256sum` it, `tar -xzf` it, stop the running server and start
the new tree as a fresh process (down in between), and the clock stops when
the new version answers. Releases of about 1 MB and 200 MB (this source tree
plus an incompressible blob); rounds interleave baseline and CAIO, each on a
fresh home.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench._common import (
    caio_env,
    caio_home,
    free_port,
    machine,
    median,
    new_repository,
    repo_server,
    table,
    wait_http,
    write_random,
)
from caio.core.settings import SOURCE_DIR
from caio.restart.control import boot_command
from tuf_repo import build_release

NEW = "1.1.0"
POLL = 0.01


def release_tree(work: Path, blob_bytes: int) -> Path:
    """This source tree, plus an incompressible file of ``blob_bytes`` in the package."""
    src = work / f"src-{blob_bytes}"
    shutil.copytree(SOURCE_DIR / "caio", src / "caio", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(SOURCE_DIR / "manifest.json", src / "manifest.json")
    write_random(src / "caio" / "blob.bin", blob_bytes)
    return src


def wait_version(url: str, version: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v1/version", timeout=5).json()["version"] == version:
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass  # down, or not yet the new one
        time.sleep(POLL)
    raise SystemExit(f"{url} never served {version}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def by_hand(work: Path, artifact_url: str, sha256: str) -> float:
    """curl, sha256sum, tar -xzf, then stop the old server and start the new tree."""
    home = work / "plain-home"
    home.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = caio_env(home, port, "http://127.0.0.1:9/unused", CAIO_RESTART_STRATEGY="exec")
    old = subprocess.Popen(boot_command(str(SOURCE_DIR)), env=env)
    new: subprocess.Popen[bytes] | None = None
    try:
        wait_http(f"{url}/health")
        started = time.perf_counter()
        download = work / "plain.tar.gz"
        subprocess.run(["curl", "-sfo", str(download), artifact_url], check=True)
        digest = subprocess.run(
            ["sha256sum", str(download)], check=True, capture_output=True, text=True
        ).stdout.split()[0]
        if digest != sha256:
            raise SystemExit("the baseline downloaded other bytes")
        tree = work / "plain-tree"
        tree.mkdir()
        subprocess.run(["tar", "-xzf", str(download), "-C", str(tree)], check=True)
        stop(old)
        new = subprocess.Popen(boot_command(str(tree / f"caio-{NEW}")), env=env)
        wait_version(url, NEW)
        return time.perf_counter() - started
    finally:
        stop(old)
        if new is not None:
            stop(new)


def with_caio(work: Path, repo: Path, repo_url: str) -> tuple[float, float]:
    """(whole cycle, of which the restart) under `caio run`."""
    home = work / "caio-home"
    auth = caio_home(home, repo)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "caio", "run"], env=caio_env(home, port, repo_url)
    )
    try:
        wait_http(f"{url}/health")
        with httpx.Client(base_url=url, headers=auth, timeout=60) as client:
            started = time.perf_counter()
            client.post("/api/v1/update", json={}).raise_for_status()
            while (status := client.get("/api/v1/update").json())["status"] == "updating":
                time.sleep(POLL)
            if status["status"] != "complete":
                raise SystemExit(f"the update failed: {status}")
            restart_at = time.perf_counter()
            client.post("/api/v1/restart", json={"graceful": True}).raise_for_status()
            wait_version(url, NEW)
            done = time.perf_counter()
        return done - started, done - restart_at
    finally:
        stop(supervisor)


def fresh(work: Path, name: str) -> Path:
    place = work / name
    shutil.rmtree(place, ignore_errors=True)
    place.mkdir()
    return place


def measure(size: int, rounds: int, work: Path) -> list[object]:
    repo = work / f"repo-{size}"
    publisher = new_repository(repo, work / f"keys-{size}")
    artifact = build_release(release_tree(work, size), NEW, work / f"dist-{size}")
    publisher.add_release(artifact, ["stable"])
    sha256 = hashlib.sha256(artifact.read_bytes()).hexdigest()
    served = next(repo.glob(f"targets/**/*{artifact.name}"))
    plain: list[float] = []
    cycles: list[float] = []
    restarts: list[float] = []
    with repo_server(repo) as repo_url:
        artifact_url = f"{repo_url}/{served.relative_to(repo).as_posix()}"
        runs: list[tuple[str, Callable[[], None]]] = [
            ("plain", lambda: plain.append(by_hand(fresh(work, "p"), artifact_url, sha256))),
            ("caio", lambda: _caio_round(fresh(work, "c"), repo, repo_url, cycles, restarts)),
        ]
        for _ in range(rounds):
            for _name, run in runs:
                run()
    ratios = [c / p for c, p in zip(cycles, plain, strict=True)]
    return [
        f"{artifact.stat().st_size / 1e6:.1f} MB",
        f"{median(plain):.2f}",
        f"{median(cycles):.2f}",
        f"{median(restarts):.2f}",
        f"**{median(ratios):.2f}x** ({min(ratios):.2f}-{max(ratios):.2f})",
    ]


def _caio_round(
    work: Path, repo: Path, repo_url: str, cycles: list[float], restarts: list[float]
) -> None:
    cycle, restart = with_caio(work, repo, repo_url)
    cycles.append(cycle)
    restarts.append(restart)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="1,200", help="blob sizes in MB")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="caio-bench-cycle-"))
    try:
        rows = [measure(int(mb) * 1_000_000, args.rounds, work) for mb in args.sizes.split(",")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("## 15. The whole update cycle vs curl + sha256sum + tar + a process restart\n")
    print(f"Machine: {machine()}; {args.rounds} interleaved rounds, medians\n")
    headers = ["artifact", "by hand s", "CAIO s", "of which restart s", "CAIO / by hand"]
    print(table(headers, rows))
    print("\nBy hand is down from the stop to the new version's first answer; CAIO never is.")


if __name__ == "__main__":
    main()
