"""Benchmark 2: peak RSS of the service while it updates with a 1 GB artifact.

A real `python -m caio.main` process; its VmHWM (peak resident set) is read
from /proc after an update to a release carrying an incompressible blob of
the given size, and compared with its idle RSS measured in the same run.
Target: < 50 MB above idle, independent of the artifact's size.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import httpx

from bench._common import caio_env, free_port, machine, repo_server, table, wait_http
from caio.core.settings import SOURCE_DIR
from caio.core.tokens import Role, TokenStore
from tuf_repo import Keyring, Publisher, RepoStore, build_release
from tuf_repo.release import ReleaseInfo, artifact_name


class RandomStream(io.RawIOBase):
    """``size`` random bytes, read in pieces (so the blob never sits in memory)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left, 8 * 1024 * 1024)
        buffer[:n] = os.urandom(n)
        self.left -= n
        return n


def big_release(work: Path, version: str, blob_mb: int) -> Path:
    """The real release plus caio/blob.bin of ``blob_mb`` MB (gzip level 1, streamed)."""
    base = build_release(SOURCE_DIR, version, work / f"base-{version}")
    out = work / artifact_name(version)
    with (
        tarfile.open(base) as src,
        gzip.open(out, "wb", compresslevel=1) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        for member in src:
            tar.addfile(member, src.extractfile(member) if member.isfile() else None)
        info = tarfile.TarInfo(f"caio-{version}/caio/blob.bin")
        info.size = blob_mb * 1024 * 1024
        tar.addfile(info, io.BufferedReader(RandomStream(info.size), 8 * 1024 * 1024))
    return out


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} for {pid}")


def run_update(work: Path, blob_mb: int) -> tuple[int, int, float]:
    """(idle kB, peak kB, seconds) for one service updating to a release with a big blob."""
    case = work / f"case-{blob_mb}"
    repo, home = case / "repo", case / "home"
    Publisher(RepoStore(repo), Keyring([])).init(case / "keys")
    publisher = Publisher(RepoStore(repo), Keyring.from_dir(case / "keys"))
    artifact = big_release(case, "2.0.0", blob_mb)
    publisher.publish_artifact(artifact, ReleaseInfo("2.0.0", "", "bench", "stable"), ["stable"])
    home.mkdir()
    shutil.copy(repo / "metadata" / "1.root.json", home / "trusted_root.json")
    auth = {"Authorization": f"Bearer {TokenStore(home / 'tokens.json').create('b', Role.ADMIN)}"}
    manifest = case / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "name": "caio",
                "version": "1.0.0",
                "update_url": "http://127.0.0.1:9",
                "channel": "stable",
            }
        )
    )
    with repo_server(repo) as repo_url:
        port = free_port()
        env = caio_env(
            home,
            port,
            repo_url,
            CAIO_MANIFEST=str(manifest),
            CAIO_MAX_UNPACKED_MB=str(blob_mb * 2),
        )
        service = subprocess.Popen([sys.executable, "-m", "caio.main"], env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/health")
            httpx.get(f"{url}/api/v1/update/check", headers=auth, timeout=60)  # warm: TUF, httpx
            idle = rss_kb(service.pid, "VmRSS")
            started = time.perf_counter()
            httpx.post(f"{url}/api/v1/update", json={}, headers=auth, timeout=30)
            while (s := httpx.get(f"{url}/api/v1/update", headers=auth).json())[
                "status"
            ] == "updating":
                time.sleep(0.2)
            seconds = time.perf_counter() - started
            if s["status"] != "complete":
                raise SystemExit(f"update failed: {s['error']}")
            return idle, rss_kb(service.pid, "VmHWM"), seconds
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1024], help="MB")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="caio-bench-rss-"))
    try:
        rows = []
        worst = 0
        for mb in args.sizes:
            idle, peak, seconds = run_update(work, mb)
            worst = max(worst, peak - idle)
            rows.append(
                (
                    f"{mb} MB",
                    f"{idle / 1024:.1f}",
                    f"{peak / 1024:.1f}",
                    f"{(peak - idle) / 1024:.1f}",
                    f"{seconds:.1f}",
                )
            )
            shutil.rmtree(work / f"case-{mb}", ignore_errors=True)
        print("## 2. Peak RSS of the service while updating\n")
        print(f"Machine: {machine()}\n")
        print(
            table(
                ["artifact", "idle RSS MB", "peak RSS MB", "above idle MB", "update seconds"], rows
            )
        )
        print(
            f"\nWorst peak above idle: **{worst / 1024:.1f} MB** (target < 50 MB: "
            f"{'met' if worst < 50 * 1024 else 'MISSED'})"
        )
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(work)], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
