"""Benchmark 1: download + verify a 200 MB artifact, CAIO's pipeline vs plain streams + sha256.

CAIO: ArtifactDownloader on HttpTransport (stream once to .part while hashing,
cut at the signed length, fsync, compare every signed hash, rename).
Baselines, same server, same run: a plain httpx stream and a plain urllib3
stream, each hashing with sha256 and writing the file (as any download must).
Ratio = baseline time / CAIO time (1.0 = as fast; target >= 0.9 of the faster).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
from pathlib import Path

import httpx
import urllib3
from tuf.api.metadata import TargetFile

from bench._common import best_of, machine, repo_server, table, write_random
from caio.update.download import ArtifactDownloader
from caio.update.repository import RetryPolicy
from caio.update.transport import HttpTransport


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
            results = {
                name: best_of(args.runs, func, clean)
                for name, func in (
                    ("plain urllib3 + sha256", plain_urllib3),
                    ("plain httpx + sha256", plain_httpx),
                    ("CAIO pipeline", caio),
                )
            }
            transport.close()
            client.close()
        mb = args.mb
        fastest = min(v for k, v in results.items() if k != "CAIO pipeline")
        httpx_time = results["plain httpx + sha256"]
        rows = [
            (name, f"{t:.3f}", f"{mb / t:.0f}", f"{fastest / t:.2f}", f"{httpx_time / t:.2f}")
            for name, t in results.items()
        ]
        print(f"## 1. Download and verify a {mb} MB artifact (best of {args.runs})\n")
        print(f"Machine: {machine()}\n")
        print(table(["client", "seconds", "MB/s", "vs fastest baseline", "vs plain httpx"], rows))
        ratio = fastest / results["CAIO pipeline"]
        verdict = "met" if ratio >= 0.9 else "MISSED"
        print(f"\nCAIO / fastest plain baseline: **{ratio:.2f}** (target >= 0.9: {verdict})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
