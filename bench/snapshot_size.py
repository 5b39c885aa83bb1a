"""Benchmark 13: the snapshot every host downloads after a publication, by number of hash bins.

One release added to a repository made by `tuf-repo init --bins N`; the size of
the newest `N.snapshot.json`. The baseline is the same without bins.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from bench._common import machine, table
from caio.core.settings import SOURCE_DIR
from tuf_repo import Keyring, Publisher, RepoStore, build_release


def snapshot_bytes(work: Path, bins: int) -> int:
    repo, keys = work / f"repo-{bins}", work / f"keys-{bins}"
    Publisher(RepoStore(repo), Keyring([])).init(keys, bins=bins)
    publisher = Publisher(RepoStore(repo), Keyring.from_dir(keys))
    publisher.add_release(build_release(SOURCE_DIR, "1.0.0", work / "dist"), ["stable"])
    newest = max(
        (repo / "metadata").glob("*.snapshot.json"), key=lambda p: int(p.name.split(".")[0])
    )
    return newest.stat().st_size


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="caio-bench-snapshot-"))
    try:
        base = snapshot_bytes(work, 0)
        rows = [("none (baseline)", f"{base:,}", "-", "1.0")]
        for bins in (16, 256, 1024):
            size = snapshot_bytes(work, bins)
            rows.append(
                (str(bins), f"{size:,}", f"{(size - base) / bins:.0f}", f"{size / base:.1f}")
            )
        print("## 13. The snapshot a host downloads after a publication\n")
        print(f"Machine: {machine()}\n")
        print(table(["hash bins", "snapshot bytes", "bytes per bin", "vs no bins"], rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
