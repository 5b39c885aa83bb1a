"""Benchmark 8: how fast the commands start (issue 11, "fast start").

Median wall time of 20 runs each, interleaved, of:

* `caio-tuf-client --metadata-dir D init ROOT` against a minimal python-tuf
  client doing the same (`import tuf.ngclient`, copy the root into place):
  target at most 1.3x;
* `caio --help` and `tuf-repo --help`: target under 0.3 s each.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import BIN, machine, median, new_repository, table

MINIMAL_CLIENT = """
import shutil, sys
from pathlib import Path
import tuf.ngclient  # what any python-tuf client imports
Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
shutil.copyfile(sys.argv[2], Path(sys.argv[1]) / "root.json")
"""


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="caio-bench-start-"))
    try:
        new_repository(work / "repo", work / "keys")
        root = str(work / "repo" / "metadata" / "1.root.json")
        commands = {
            "minimal python-tuf client init (baseline)": [
                sys.executable,
                "-c",
                MINIMAL_CLIENT,
                str(work / "plain"),
                root,
            ],
            "caio-tuf-client init": [
                str(BIN / "caio-tuf-client"),
                "--metadata-dir",
                str(work / "caio"),
                "init",
                root,
            ],
            "caio --help": [str(BIN / "caio"), "--help"],
            "tuf-repo --help": [str(BIN / "tuf-repo"), "--help"],
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                samples[name].append(timed(command))
        medians = {name: median(values) for name, values in samples.items()}
        base = medians["minimal python-tuf client init (baseline)"]
        print(f"## 8. Command start-up (median of {args.runs}, interleaved)\n")
        print(f"Machine: {machine()}\n")
        print(
            table(
                ["command", "median s", "vs minimal client"],
                [(n, f"{m:.3f}", f"{m / base:.2f}x") for n, m in medians.items()],
            )
        )
        ratio = medians["caio-tuf-client init"] / base
        helps = max(medians["caio --help"], medians["tuf-repo --help"])
        print(
            f"\ncaio-tuf-client init / minimal client: **{ratio:.2f}x** (target <= 1.3x: "
            f"{'met' if ratio <= 1.3 else 'MISSED'}); slowest --help **{helps:.3f} s** "
            f"(target < 0.3 s: {'met' if helps < 0.3 else 'MISSED'})"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
