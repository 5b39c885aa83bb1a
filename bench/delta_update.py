"""Benchmark 17: delta updates against full downloads, on a slow link and on loopback.

The repository is served by nginx with the shipped server block, on a link
held to ``--rate`` by nginx's ``limit_rate`` (and with no limit, loopback).
A host runs release A, installed by an update (so it kept A's tar), and
updates to B: once through the delta `tuf-repo add` signed from A, once
with ``CAIO_DELTA=off`` (the full download). Each measured update runs in a
fresh process: the time from the job's start to "complete" (B installed and
active), the bytes it downloaded, and its peak memory above where it began
(VmHWM). Pairs: (a) this source tree with a one-line change; (b) 2,000 files
of 100 KB (200 MB) with 10 KB rewritten in 1 % of them.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._common import HWM_SCRIPT, caio_home, machine, new_repository, table
from caio.core.settings import SOURCE_DIR
from tests.nginx_fixtures import start_nginx
from tuf_repo import build_release

A, B = "1.1.0", "1.2.0"

# Runs in a fresh process (after HWM_SCRIPT): one update of the host at HOME to VERSION, timed.
ONE_UPDATE = """
import json, sys, time
from pathlib import Path
from caio.api import create_app
from caio.core.settings import Settings
from caio.update import UpdateRequest

home, url, version, delta = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
settings = Settings(home=home, manifest=home / "manifest.json", update_url=url, delta=delta)
service = create_app(settings).state.update_service
before = hwm()
started = time.perf_counter()
service.start(UpdateRequest(target_version=version), "bench")
while service.status().running:
    time.sleep(0.01)
seconds = time.perf_counter() - started
status = service.status()
record = json.loads((home / "state" / "audit.jsonl").read_text().splitlines()[-1])
print(json.dumps({"seconds": seconds, "status": status.status, "bytes": record.get("bytes"),
                  "delta": record.get("delta"), "fallback": record.get("delta_fallback"),
                  "peak_kb": hwm() - before}))
"""


def source_tree(work: Path, name: str, edit: bool) -> Path:
    src = work / name
    shutil.copytree(SOURCE_DIR / "caio", src / "caio", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(SOURCE_DIR / "manifest.json", src / "manifest.json")
    if edit:
        changed = src / "caio" / "update" / "install.py"
        changed.write_text(changed.read_text().replace("preflight timed out", "preflight ran out"))
    return src


def data_tree(work: Path, name: str, edit: bool, files: int = 2000, size: int = 100_000) -> Path:
    src = source_tree(work, name, edit=False)
    # Reproducible test data, not secrets; the edits draw from their own generator, so
    # both trees get the same files but for the edited ones.
    files_rnd, edits_rnd = random.Random(17), random.Random(18)  # noqa: S311
    data = src / "caio" / "data"
    data.mkdir()
    for i in range(files):
        blob = files_rnd.randbytes(size)
        if edit and i % 100 == 0:
            at = edits_rnd.randrange(0, size - 10_000)
            blob = blob[:at] + edits_rnd.randbytes(10_000) + blob[at + 10_000 :]
        (data / f"f{i:05}.bin").write_bytes(blob)
    return src


def host_update(home: Path, url: str, version: str, delta: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", HWM_SCRIPT + ONE_UPDATE, str(home), url, version, delta],
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["status"] != "complete":
        raise SystemExit(f"the update failed: {result}")
    return result


def fresh_host(work: Path, repo: Path, url: str) -> Path:
    """A host that runs 1.0.0 and installed A by an update (so it kept A's tar)."""
    home = work / "host"
    shutil.rmtree(home, ignore_errors=True)
    caio_home(home, repo)
    (home / "manifest.json").write_text(
        json.dumps({"name": "caio", "version": "1.0.0", "update_url": url, "channel": "stable"})
    )
    host_update(home, url, A, "auto")
    return home


def measure(
    label: str, old: Path, new: Path, work: Path, links: list[tuple[str, str]]
) -> list[list[object]]:
    repo = work / "repo"
    shutil.rmtree(repo, ignore_errors=True)
    publisher = new_repository(repo, work / "keys")
    shutil.rmtree(work / "dist", ignore_errors=True)
    publisher.add_release(build_release(old, A, work / "dist"), ["stable"])
    publisher.add_release(build_release(new, B, work / "dist"), ["stable"])  # + the delta
    rows: list[list[object]] = []
    fast = start_nginx(work / "nginx-fast", repo)  # hosts install A through it, unmetered
    try:
        for link, extra in links:
            nginx = start_nginx(work / f"nginx-{link.replace('/', '')}", repo, http_extra=extra)
            try:
                runs = {}
                for delta in ("auto", "off"):
                    home = fresh_host(work, repo, fast.url)
                    runs[delta] = host_update(home, nginx.url, B, delta)
            finally:
                nginx.stop()
                shutil.rmtree(work / f"nginx-{link.replace('/', '')}", ignore_errors=True)
            rows.append(_row(label, link, runs["auto"], runs["off"]))
    finally:
        fast.stop()
        shutil.rmtree(work / "nginx-fast", ignore_errors=True)
    return rows


def _row(label: str, link: str, patch: dict[str, Any], full: dict[str, Any]) -> list[object]:
    if patch["delta"] is None:
        raise SystemExit(f"the delta was not used: {patch['fallback']}")
    return [
        label,
        link,
        f"{patch['bytes']:,} vs {full['bytes']:,}",
        f"{100 * (1 - patch['bytes'] / full['bytes']):.2f} %",
        f"{patch['seconds']:.2f} vs {full['seconds']:.2f}",
        f"**{patch['seconds'] / full['seconds']:.2f}x**",
        f"+{patch['peak_kb'] / 1024:.0f} vs +{full['peak_kb'] / 1024:.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", default="1m", help="nginx limit_rate of the slow link")
    parser.add_argument("--small-only", action="store_true", help="skip the 200 MB pair")
    parser.add_argument("--links", choices=["both", "loopback", "slow"], default="both")
    args = parser.parse_args()
    links = [("loopback", ""), (f"{args.rate}/s", f"    limit_rate {args.rate};")]
    links = {"both": links, "loopback": links[:1], "slow": links[1:]}[args.links]
    work = Path(tempfile.mkdtemp(prefix="caio-bench-delta-update-"))
    try:
        rows = measure(
            "(a) this tree, one line",
            source_tree(work, "a-old", edit=False),
            source_tree(work, "a-new", edit=True),
            work,
            links,
        )
        if not args.small_only:
            rows += measure(
                "(b) 200 MB, 1 % of files",
                data_tree(work, "b-old", edit=False),
                data_tree(work, "b-new", edit=True),
                work,
                links,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("## 17. Delta updates vs full downloads (nginx, loopback and a slow link)\n")
    print(f"Machine: {machine()}\n")
    headers = [
        "pair",
        "link",
        "bytes: delta vs full",
        "fewer bytes",
        "s to installed: delta vs full",
        "delta / full",
        "peak MB: delta vs full",
    ]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
