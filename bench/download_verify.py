"""Benchmark 1: download + verify an artifact, CAIO's pipeline vs plain streams + sha256.

CAIO: ArtifactDownloader on HttpTransport (stream once to .part while hashing,
cut at the signed length, fsync, compare every signed hash, rename).
Baselines, same server, same run: a plain httpx stream and a plain urllib3
stream, each hashing with sha256 and writing the file (as any download must).
Ratio = baseline time / CAIO time (1.0 = as fast; target >= 0.9 of the faster).
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import urllib3
from tuf.api.metadata import TargetFile

from bench._common import best_of, machine, repo_server, table, write_random
from caio.update.download import ArtifactDownloader
from caio.update.repository import RetryPolicy
from caio.update.transport import HttpTransport


def cpu_seconds() -> float:
    """User + system CPU time of this process (the server is another process)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_limits(data: bytes, out: Path, runs: int) -> dict[str, tuple[float, float]]:
    """For context: sha256 of the bytes alone, and writing them alone (no network)."""

    def sha256_alone() -> None:
        hashlib.sha256(data).hexdigest()

    def write_alone() -> None:
        with (out / "write.bin").open("wb") as f:
            view = memoryview(data)
            for start in range(0, len(data), 1024 * 1024):
                f.write(view[start : start + 1024 * 1024])

    limits = {}
    for name, func in (("limit: sha256 alone", sha256_alone), ("limit: write alone", write_alone)):
        started = cpu_seconds()
        wall = best_of(runs, func)
        limits[name] = (wall, (cpu_seconds() - started) / runs)
    return limits


def main() -> None:  # noqa: PLR0915 (one linear script)
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="caio-bench-dl-"))
    try:
        repo = work / "repo"
        (repo / "metadata").mkdir(parents=True)
        (repo / "metadata" / "1.root.json").write_text("{}")
        (repo / "tuf-repo.json").write_text('{"expiry_days": {}, "bins": 0}')
        (repo / "targets").mkdir()
        artifact = write_random(repo / "targets" / "artifact.bin", args.mb * 1024 * 1024)
        info = TargetFile.from_file("artifact.bin", str(artifact), ["sha256"])
        out = work / "out"
        out.mkdir()
        with repo_server(repo) as url:
            target_url = f"{url}/targets/artifact.bin"
            transport = HttpTransport(url, user_agent="bench", timeout=60)
            downloader = ArtifactDownloader(transport, out / "caio", RetryPolicy(attempts=1))

            def clean() -> None:
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()

            def caio() -> None:
                downloader.fetch(target_url, info, lambda _d, _t: None)

            client = httpx.Client(timeout=60)

            def check(h: hashlib._Hash) -> None:
                if h.hexdigest() != info.hashes["sha256"]:
                    raise SystemExit("baseline download was corrupted")

            def plain_httpx() -> None:
                h = hashlib.sha256()
                with client.stream("GET", target_url) as r, (out / "httpx.bin").open("wb") as f:
                    for chunk in r.iter_bytes():
                        h.update(chunk)
                        f.write(chunk)
                check(h)

            pool = urllib3.PoolManager()

            def plain_urllib3() -> None:
                h = hashlib.sha256()
                r = pool.request("GET", target_url, preload_content=False)
                with (out / "urllib3.bin").open("wb") as f:
                    for chunk in r.stream(1024 * 1024):
                        h.update(chunk)
                        f.write(chunk)
                r.release_conn()
                check(h)

            caio()  # warm the page cache and connections for everyone
            # Interleaved rounds, best per client: at 1 GB the disk's writeback of
            # one client's file would otherwise land on whichever client runs next.
            clients = {
                "plain urllib3 + sha256": plain_urllib3,
                "plain httpx + sha256": plain_httpx,
                "CAIO pipeline": caio,
            }
            walls: dict[str, list[float]] = {name: [] for name in clients}
            cpus: dict[str, float] = dict.fromkeys(clients, 0.0)
            for _ in range(args.runs):
                for name, func in clients.items():
                    clean()
                    started_cpu, started = cpu_seconds(), time.perf_counter()
                    func()
                    walls[name].append(time.perf_counter() - started)
                    cpus[name] += cpu_seconds() - started_cpu
            results = {name: (min(walls[name]), cpus[name] / args.runs) for name in clients}
            transport.close()
            client.close()
        limits = machine_limits(artifact.read_bytes(), out, args.runs)
        mb = args.mb
        fastest = min(v[0] for k, v in results.items() if k != "CAIO pipeline")
        httpx_time = results["plain httpx + sha256"][0]
        gb = mb / 1024
        rows = [
            (
                name,
                f"{t:.3f}",
                f"{mb / t:.0f}",
                f"{cpu / gb:.2f}",
                f"{fastest / t:.2f}",
                f"{httpx_time / t:.2f}",
            )
            for name, (t, cpu) in results.items()
        ]
        rows += [
            (name, f"{t:.3f}", f"{mb / t:.0f}", f"{cpu / gb:.2f}", "-", "-")
            for name, (t, cpu) in limits.items()
        ]
        print(f"## 1. Download and verify a {mb} MB artifact (best of {args.runs})\n")
        print(f"Machine: {machine()}\n")
        headers = ["client", "seconds", "MB/s", "CPU s/GB", "vs fastest baseline", "vs httpx"]
        print(table(headers, rows))
        ratio = fastest / results["CAIO pipeline"][0]
        verdict = "met" if ratio >= 0.9 else "MISSED"
        print(f"\nCAIO / fastest plain baseline: **{ratio:.2f}** (target >= 0.9: {verdict})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
