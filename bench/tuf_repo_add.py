"""Benchmark 6: `tuf-repo add` of one release into a repository holding 10,000 targets.

Without hash bins every add re-signs one targets.json listing every target;
with bins (TAP 15 succinct delegation) it re-signs one small bin. The
baseline is the same add into an empty repository, in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from tuf.api.metadata import TargetFile

from bench._common import best_of, machine, table
from caio.core.settings import SOURCE_DIR
from tuf_repo import Keyring, Publisher, RepoStore, build_release


def fake_targets(count: int) -> list[TargetFile]:
    return [
        TargetFile(1024, {"sha256": hashlib.sha256(os.urandom(16)).hexdigest()}, f"other/{i}.bin")
        for i in range(count)
    ]


def timed_add(work: Path, bins: int, existing: int, runs: int) -> tuple[float, int]:
    """Best time of adding one release; returns (seconds, bytes of metadata re-signed)."""
    repo, keys = work / f"repo-{bins}-{existing}", work / f"keys-{bins}-{existing}"
    Publisher(RepoStore(repo), Keyring([])).init(keys, bins=bins)
    publisher = Publisher(RepoStore(repo), Keyring.from_dir(keys))
    if existing:
        publisher.import_target_files(fake_targets(existing))
    artifacts = [build_release(SOURCE_DIR, f"2.0.{n}", work / "dist") for n in range(runs)]
    pending = iter(artifacts)
    before = {p.name for p in (repo / "metadata").iterdir()}
    seconds = best_of(runs, lambda: publisher.add_release(next(pending), ["stable"]))
    written = [p for p in (repo / "metadata").iterdir() if p.name not in before]
    per_add = sum(p.stat().st_size for p in written) // runs
    return seconds, per_add


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--bins", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="caio-bench-add-"))
    try:
        rows = []
        results = {}
        for label, bins, existing in (
            ("empty repository (baseline)", 0, 0),
            (f"{args.targets} targets, no bins", 0, args.targets),
            (f"{args.targets} targets, {args.bins} hash bins", args.bins, args.targets),
        ):
            seconds, written = timed_add(work, bins, existing, args.runs)
            results[label] = seconds
            rows.append((label, f"{seconds * 1000:.0f}", f"{written // 1024}"))
        base = results["empty repository (baseline)"]
        rows = [(*row, f"{results[row[0]] / base:.1f}") for row in rows]
        print(f"## 6. `tuf-repo add` of one release (best of {args.runs})\n")
        print(f"Machine: {machine()}\n")
        print(table(["repository", "ms per add", "KiB metadata written", "vs empty"], rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
