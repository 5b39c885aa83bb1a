"""Benchmark 4: install (checked extraction, preflight, activation) vs `tar -xzf`.

Two releases: CAIO as built from this tree (small), and the same with 50 MB of
extra files (so extraction, not the preflight's interpreter start, dominates).
CAIO's extraction is timed separately (to its first progress report).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench._common import machine, table, write_random
from caio.core.layout import InstallLayout, remove_tree
from caio.core.settings import SOURCE_DIR
from caio.update.install import InstallLimits, ReleaseInstaller
from tuf_repo import build_release


def build(work: Path, version: str, extra_mb: int) -> Path:
    src = work / f"src-{version}"
    shutil.copytree(SOURCE_DIR / "caio", src / "caio", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(SOURCE_DIR / "manifest.json", src / "manifest.json")
    if extra_mb:
        data = src / "caio" / "data"
        data.mkdir()
        for i in range(500):
            write_random(data / f"blob{i:03}.bin", extra_mb * 1024 * 1024 // 500)
    return build_release(src, version, work / "dist")


def measure(work: Path, artifact: Path, version: str, runs: int) -> tuple[float, float, float]:
    tar_times, extract_times, install_times = [], [], []
    for n in range(runs):
        out = work / f"tar-{n}"
        out.mkdir()
        started = time.perf_counter()
        subprocess.run(["tar", "-xzf", str(artifact), "-C", str(out)], check=True)
        tar_times.append(time.perf_counter() - started)
        shutil.rmtree(out)

        layout = InstallLayout(work / f"home-{n}")
        layout.ensure()
        installer = ReleaseInstaller(layout, InstallLimits())
        marks: list[float] = []
        started = time.perf_counter()
        installer.install(artifact, version, lambda _f, m=marks: m.append(time.perf_counter()))
        layout.activate(version)
        install_times.append(time.perf_counter() - started)
        extract_times.append(marks[0] - started)
        remove_tree(layout.home)
    return min(tar_times), min(extract_times), min(install_times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="caio-bench-install-"))
    try:
        rows = []
        for label, version, extra in (
            ("CAIO release", "3.0.0", 0),
            ("+50 MB in 500 files", "3.0.1", 50),
        ):
            artifact = build(work, version, extra)
            tar, extract, install = measure(work, artifact, version, args.runs)
            rows.append(
                (
                    label,
                    f"{artifact.stat().st_size / 1e6:.1f}",
                    f"{tar * 1000:.0f}",
                    f"{extract * 1000:.0f}",
                    f"{extract / tar:.2f}",
                    f"{install * 1000:.0f}",
                    f"{install / tar:.1f}",
                )
            )
        print(f"## 4. Install vs `tar -xzf` (best of {args.runs})\n")
        print(f"Machine: {machine()}\n")
        print(
            table(
                [
                    "archive",
                    "MB",
                    "tar -xzf ms",
                    "CAIO extract ms",
                    "extract / tar",
                    "CAIO install ms",
                    "install / tar",
                ],
                rows,
            )
        )
        print(
            "\nInstall = checked extraction + manifest check + preflight subprocess "
            "(imports the whole app) + read-only + rename + atomic symlink switch."
        )
    finally:
        for home in work.glob("home-*"):
            remove_tree(home)
        shutil.rmtree(work, ignore_errors=True)
        os.sync()


if __name__ == "__main__":
    main()
