"""Benchmark 6: `tuf-repo add` of one release into a repository holding 100,000 targets.

Without hash bins every add re-signs one targets.json listing every target;
with bins (TAP 15 succinct delegation) it re-signs one small bin. The
baseline is the same add into an empty repository, in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from tuf.api.metadata import TargetFile

from bench._common import machine, table
from caio.core.settings import SOURCE_DIR
from tuf_repo import Keyring, Publisher, RepoStore, build_release


def fake_targets(count: int) -> list[TargetFile]:
    return [
        TargetFile(1024, {"sha256": hashlib.sha256(os.urandom(16)).hexdigest()}, f"other/{i}.bin")
        for i in range(count)
    ]


class Repository:
    """A repository holding ``existing`` targets, ready for timed adds."""

    def __init__(
        self, work: Path, label: str, bins: int, existing: int, adds: int, delta_from: int
    ) -> None:
        self.label = label
        self.delta_from = delta_from
        repo, keys = work / f"repo-{bins}-{existing}", work / f"keys-{bins}-{existing}"
        Publisher(RepoStore(repo), Keyring([])).init(keys, bins=bins)
        self.publisher = Publisher(RepoStore(repo), Keyring.from_dir(keys))
        if existing:
            self.publisher.import_target_files(fake_targets(existing))
        dist = work / f"dist-{bins}-{existing}"
        self.artifacts = iter(
            [build_release(SOURCE_DIR, f"2.0.{n}", dist) for n in range(adds + 1)]
        )
        warm = next(self.artifacts)  # the index exists, and deltas have a base
        self.publisher.add_release(warm, ["stable"], delta_from=delta_from)
        self.metadata = repo / "metadata"
        self.seconds: list[float] = []
        self.written: list[int] = []

    def add(self) -> None:
        before = {p.name for p in self.metadata.iterdir()}
        artifact = next(self.artifacts)
        started = time.perf_counter()
        self.publisher.add_release(artifact, ["stable"], delta_from=self.delta_from)
        self.seconds.append(time.perf_counter() - started)
        new = [p for p in self.metadata.iterdir() if p.name not in before]
        self.written.append(sum(p.stat().st_size for p in new))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=100_000)
    parser.add_argument("--bins", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--delta-from", type=int, default=2, help="deltas each add signs (tuf-repo's default: 2)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="caio-bench-add-"))
    try:
        repos = [
            Repository(work, "empty repository (baseline)", 0, 0, args.rounds, args.delta_from),
            Repository(
                work,
                f"{args.targets} targets, no bins",
                0,
                args.targets,
                args.rounds,
                args.delta_from,
            ),
            Repository(
                work,
                f"{args.targets} targets, {args.bins} hash bins",
                args.bins,
                args.targets,
                args.rounds,
                args.delta_from,
            ),
        ]
        for _ in range(args.rounds):  # interleaved: each round adds once to each
            for repo in repos:
                repo.add()
        base = repos[0].seconds
        rows = []
        for repo in repos:
            ratios = sorted(t / b for t, b in zip(repo.seconds, base, strict=True))
            rows.append(
                (
                    repo.label,
                    f"{statistics.median(repo.seconds) * 1000:.0f}",
                    f"{statistics.median(repo.written) // 1024}",
                    f"{statistics.median(ratios):.1f}",
                    f"{ratios[0]:.1f}-{ratios[-1]:.1f}",
                )
            )
        print(
            f"## 6. `tuf-repo add` of one release ({args.rounds} interleaved rounds, "
            f"--delta-from {args.delta_from})\n"
        )
        print(f"Machine: {machine()}\n")
        headers = ["repository", "median ms per add", "KiB written", "vs empty", "spread"]
        print(table(headers, rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
