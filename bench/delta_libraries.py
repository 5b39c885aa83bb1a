"""Benchmark 16: which delta library, on evidence: patch size, build time, memory to apply.

Two release pairs, as uncompressed tars:
(a) this source tree as 1.1.0 and 1.1.1 with a one-line change (the top
    directory's name differs too, as between any two releases);
(b) 2,000 files of 100 KB of random bytes (200 MB), 20 of them with 10 KB
    rewritten (1 % of the files).
Candidates: CAIO's format (``caio/core/delta.py``: member by member, zstd
with each changed run's old bytes as reference), zstd ``--patch-from`` over
the whole tar (``zstandard``, level 19, long-distance matching), and bsdiff
(``bsdiff4``, when installed; skipped on (b), where it takes hours). Each
builds and applies in a fresh process, so peak memory (VmHWM) is its own;
"apply peak" is above that process before it read anything.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from bench._common import HWM_SCRIPT, machine, table
from caio.core.settings import SOURCE_DIR
from tuf_repo import build_release

# Each runs in a fresh process, after HWM_SCRIPT.
BUILD = {
    "caio (per member, zstd)": """
import sys, time, json
from pathlib import Path
from caio.core.delta import build_delta
t = time.perf_counter()
with open(sys.argv[3], "wb") as f:
    build_delta(Path(sys.argv[1]), Path(sys.argv[2]), f)
print(json.dumps({"s": time.perf_counter() - t,
                  "rss": hwm()}))
""",
    "zstd --patch-from (whole tar)": """
import sys, time, json, zstandard as z
old = open(sys.argv[1], "rb").read(); new = open(sys.argv[2], "rb").read()
t = time.perf_counter()
window = min(31, max(10, (len(old) + len(new)).bit_length()))  # reference and new
params = z.ZstdCompressionParameters.from_level(19, window_log=window, enable_ldm=True)
d = z.ZstdCompressionDict(old, dict_type=z.DICT_TYPE_RAWCONTENT)
patch = z.ZstdCompressor(compression_params=params, dict_data=d).compress(new)
open(sys.argv[3], "wb").write(patch)
print(json.dumps({"s": time.perf_counter() - t,
                  "rss": hwm()}))
""",
    "bsdiff4": """
import sys, time, json, bsdiff4
old = open(sys.argv[1], "rb").read(); new = open(sys.argv[2], "rb").read()
t = time.perf_counter(); open(sys.argv[3], "wb").write(bsdiff4.diff(old, new))
print(json.dumps({"s": time.perf_counter() - t,
                  "rss": hwm()}))
""",
}
APPLY = {
    "caio (per member, zstd)": """
import sys, time, json, hashlib
from pathlib import Path
from caio.core.delta import DeltaInfo, TarDigest, apply_delta
base, result = Path(sys.argv[1]), Path(sys.argv[2])
info = DeltaInfo("a", "b", TarDigest.of_file(base), TarDigest.of_file(result))
idle = hwm()
t = time.perf_counter()
with open(sys.argv[3], "rb") as f, open(sys.argv[4], "wb") as out:
    apply_delta(f, base, info, out)
print(json.dumps({"s": time.perf_counter() - t, "idle": idle,
                  "rss": hwm()}))
""",
    "zstd --patch-from (whole tar)": """
import sys, time, json, zstandard as z
idle = hwm()
t = time.perf_counter()
old = open(sys.argv[1], "rb").read()
d = z.ZstdCompressionDict(old, dict_type=z.DICT_TYPE_RAWCONTENT)
with open(sys.argv[3], "rb") as f, open(sys.argv[4], "wb") as out:
    with z.ZstdDecompressor(dict_data=d, max_window_size=1 << 31).stream_reader(f) as r:
        while block := r.read(1 << 20):
            out.write(block)
print(json.dumps({"s": time.perf_counter() - t, "idle": idle,
                  "rss": hwm()}))
""",
    "bsdiff4": """
import sys, time, json, bsdiff4
idle = hwm()
t = time.perf_counter(); old = open(sys.argv[1], "rb").read()
open(sys.argv[4], "wb").write(bsdiff4.patch(old, open(sys.argv[3], "rb").read()))
print(json.dumps({"s": time.perf_counter() - t, "idle": idle,
                  "rss": hwm()}))
""",
}


def source_pair(work: Path) -> tuple[Path, Path]:
    src = work / "src"
    shutil.copytree(SOURCE_DIR / "caio", src / "caio", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(SOURCE_DIR / "manifest.json", src / "manifest.json")
    old = build_release(src, "1.1.0", work / "dist")
    changed = src / "caio" / "update" / "install.py"
    changed.write_text(changed.read_text().replace("preflight timed out", "preflight ran out"))
    new = build_release(src, "1.1.1", work / "dist")
    return _tar(old, work / "a.old.tar"), _tar(new, work / "a.new.tar")


def _tar(artifact: Path, tar: Path) -> Path:
    tar.write_bytes(gzip.decompress(artifact.read_bytes()))
    return tar


def files_pair(work: Path, files: int = 2000, size: int = 100_000) -> tuple[Path, Path]:
    rnd = random.Random(16)  # noqa: S311 (reproducible test data, not a secret)
    blobs = [rnd.randbytes(size) for _ in range(files)]
    paths = (work / "b.old.tar", work / "b.new.tar")
    for path, top, edit in ((paths[0], "caio-1.0.0", False), (paths[1], "caio-1.1.0", True)):
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            for i, blob in enumerate(blobs):
                data = blob
                if edit and i % 100 == 0:
                    at = rnd.randrange(0, size - 10_000)
                    data = blob[:at] + rnd.randbytes(10_000) + blob[at + 10_000 :]
                info = tarfile.TarInfo(f"{top}/caio/data/f{i:05}.bin")
                info.size, info.mtime = len(data), 0
                tar.addfile(info, io.BytesIO(data))
    return paths


def measure(name: str, old: Path, new: Path, work: Path) -> list[list[object]]:
    full = len(gzip.compress(new.read_bytes(), 6))
    rows: list[list[object]] = []
    for candidate, build in BUILD.items():
        if candidate == "bsdiff4" and (
            new.stat().st_size > 30_000_000 or not _importable("bsdiff4")
        ):
            rows.append([name, candidate, "-", "-", "-", "-", "-", "skipped"])
            continue
        patch, out = work / "patch", work / "out.tar"
        built = _run(build, old, new, patch)
        applied = _run(APPLY[candidate], old, new, patch, out)
        same = out.read_bytes() == new.read_bytes()
        size = patch.stat().st_size
        rows.append(
            [
                name,
                candidate,
                f"{size:,}",
                f"{100 * (1 - size / full):.2f} %",
                f"{built['s']:.2f}",
                f"{built['rss'] / 1024:.0f}",
                f"+{(applied['rss'] - applied['idle']) / 1024:.0f}",
                "same bytes" if same else "WRONG",
            ]
        )
    return rows


def _importable(module: str) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {module}"], check=False).returncode == 0


def _run(code: str, *args: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", HWM_SCRIPT + code, *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small-only", action="store_true", help="skip the 200 MB pair")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="caio-bench-delta-"))
    try:
        rows = measure("(a) this tree, one line", *source_pair(work), work)
        if not args.small_only:
            rows += measure("(b) 200 MB, 1 % of files", *files_pair(work), work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("## 16. Delta libraries: size, build time, memory\n")
    print(f"Machine: {machine()}\n")
    headers = [
        "pair",
        "candidate",
        "patch bytes",
        "fewer bytes than .tar.gz",
        "build s",
        "build peak MB",
        "apply peak MB",
        "result",
    ]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
