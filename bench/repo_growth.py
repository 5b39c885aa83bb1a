"""Benchmark 18: a repository's size after a year at the shipped cadence, pruned daily or not.

A repository with ``--targets`` targets (100,000 by default) in 256 hash bins
with an online bins key, run on a simulated clock: ``refresh`` every six hours
(the hourly timer re-signs only when 18 hours of the timestamp are left, so
this is the same publications), a release every two weeks, and ``tuf-repo
prune`` once a day. Prune only removes, so the size without it is the size at
the end plus everything it removed, measured in the same run: the baseline.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench._common import machine, median, table
from bench.tuf_repo_add import fake_targets
from caio.core.settings import SOURCE_DIR
from tuf_repo import Keyring, Publisher, RepoStore, build_release

KEEP = timedelta(days=7)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2027, 1, 4, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def size(directory: Path) -> tuple[int, int]:
    files = [p for p in directory.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="caio-bench-growth-"))
    try:
        clock = Clock()
        repo, keys = work / "repo", work / "keys"
        Publisher(RepoStore(repo), Keyring([]), clock=clock).init(keys, bins=256, online_bins=True)
        publisher = Publisher(RepoStore(repo), Keyring.from_dir(keys), clock=clock)
        publisher.import_target_files(fake_targets(args.targets))
        start_files, start_bytes = size(repo)
        removed_files = removed_bytes = releases = 0
        prune_seconds: list[float] = []
        for step in range(args.days * 4):
            clock.now += timedelta(hours=6)
            publisher.refresh()
            if step % 4 == 0:
                started = time.perf_counter()
                pruned = publisher.prune(KEEP)
                prune_seconds.append(time.perf_counter() - started)
                removed_files += len(pruned.removed)
                removed_bytes += pruned.bytes
            if step % (14 * 4) == 1:
                releases += 1
                artifact = build_release(SOURCE_DIR, f"3.{releases}.0", work / "dist")
                publisher.add_release(artifact, ["stable"], delta_from=0)
                (work / "dist" / artifact.name).unlink()
        end_files, end_bytes = size(repo)
        artifacts = sum(p.stat().st_size for p in (repo / "targets").rglob("*.tar.gz"))
        without = end_bytes + removed_bytes
        print(f"## 18. Repository size after {args.days} days (`python -m bench.repo_growth`)\n")
        print(f"Machine: {machine()}\n")
        print(
            f"{args.targets:,} targets in 256 bins (online bins key), refresh every 6 h, "
            f"{releases} releases ({artifacts:,} bytes of artifacts), prune daily "
            f"(--keep-days {KEEP.days}).\n"
        )
        print(
            table(
                ["", "files", "bytes", "growth over the start", "vs not pruned"],
                [
                    ("at the start", f"{start_files:,}", f"{start_bytes:,}", "-", "-"),
                    (
                        "not pruned (baseline)",
                        f"{end_files + removed_files:,}",
                        f"{without:,}",
                        f"{without - start_bytes:,}",
                        "1.00",
                    ),
                    (
                        "pruned daily",
                        f"{end_files:,}",
                        f"{end_bytes:,}",
                        f"{end_bytes - start_bytes:,}",
                        f"{end_bytes / without:.2f}",
                    ),
                ],
            )
        )
        print(
            f"\nA prune: median {median(prune_seconds) * 1000:.0f} ms, "
            f"slowest {max(prune_seconds) * 1000:.0f} ms."
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
