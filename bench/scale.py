"""Benchmark 14: a repository's size against what a publication costs, and what a host pays.

For repositories holding N targets (with 256 hash bins, and without bins up to
100,000): the time of `tuf-repo add` of one release, then the bytes a host that
was up to date downloads on its first check after that publication, and that
check's time. The theoretical minimum a host must download is the timestamp,
the snapshot, the role that lists the release index, and the index itself; the
table gives the measured bytes against it. The repository is served by
`tuf-repo serve` in its own process; the host is CAIO's TUF client.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from tuf.api.metadata import TargetFile

from bench._common import machine, repo_server, table
from bench.check_overhead import CountingHttp
from caio.core.release_format import INDEX_PATH
from caio.core.settings import SOURCE_DIR
from caio.update.repository import RetryPolicy, TrustedRepository
from tuf_repo import Keyring, Publisher, RepoStore, build_release


def fake_targets(count: int) -> list[TargetFile]:
    return [
        TargetFile(1024, {"sha256": hashlib.sha256(os.urandom(16)).hexdigest()}, f"other/{i}.bin")
        for i in range(count)
    ]


def newest(repo: Path, role: str) -> Path:
    if role == "timestamp":
        return repo / "metadata" / "timestamp.json"
    return max((repo / "metadata").glob(f"*.{role}.json"), key=lambda p: int(p.name.split(".")[0]))


def minimum_bytes(repo: Path) -> int:
    """Timestamp + snapshot + the role listing the index + the index (all a host must fetch)."""
    store = RepoStore(repo)
    top = store.load("targets").signed
    role = "targets"
    if top.delegations is not None and top.delegations.succinct_roles is not None:
        role = top.delegations.succinct_roles.get_role_for_target(INDEX_PATH)
    holder = json.loads(newest(repo, role).read_text())["signed"]["targets"][INDEX_PATH]
    return sum(newest(repo, r).stat().st_size for r in ("timestamp", "snapshot", role)) + int(
        holder["length"]
    )


def measure(work: Path, count: int, bins: int) -> tuple[float, int, int, float]:
    """(add seconds, bytes of the first check after it, minimum bytes, check seconds)."""
    repo, keys = work / f"repo-{count}-{bins}", work / f"keys-{count}-{bins}"
    Publisher(RepoStore(repo), Keyring([])).init(keys, bins=bins)
    publisher = Publisher(RepoStore(repo), Keyring.from_dir(keys))
    publisher.import_target_files(fake_targets(count))
    publisher.add_release(build_release(SOURCE_DIR, "1.0.0", work / "dist"), ["stable"])
    with repo_server(repo) as url:
        transport = CountingHttp(url, user_agent="bench", timeout=60)
        host = TrustedRepository(
            metadata_url=f"{url}/metadata/",
            targets_url=f"{url}/targets/",
            metadata_dir=work / f"host-{count}-{bins}" / "tuf",
            trusted_root=(repo / "metadata" / "1.root.json").read_bytes(),
            transport=transport,
            retry=RetryPolicy(attempts=1),
            user_agent="bench",
        )
        host.refresh()  # up to date before the publication
        artifact = build_release(SOURCE_DIR, "1.1.0", work / "dist")
        started = time.perf_counter()
        publisher.add_release(artifact, ["stable"])
        add_seconds = time.perf_counter() - started
        transport.counter.bytes = 0
        started = time.perf_counter()
        view = host.refresh()
        check_seconds = time.perf_counter() - started
        if [r.version for r in view.releases] != ["1.0.0", "1.1.0"]:
            raise SystemExit(f"the host did not see the publication: {view.releases}")
        fetched = transport.counter.bytes
        transport.close()
    return add_seconds, fetched, minimum_bytes(repo), check_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000", help="targets, comma-separated")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="caio-bench-scale-"))
    try:
        rows = []
        for count in sizes:
            for bins in (0, 256):
                if bins == 0 and count > 100_000:
                    continue  # one targets.json of 150 MB: not a configuration anyone runs
                add, fetched, minimum, check = measure(work, count, bins)
                rows.append(
                    (
                        f"{count:,}",
                        str(bins) if bins else "none",
                        f"{add * 1000:.0f}",
                        f"{fetched:,}",
                        f"{minimum:,}",
                        f"{fetched / minimum:.2f}",
                        f"{check * 1000:.0f}",
                    )
                )
        print("## 14. Repository size: a publication's cost, and a host's first check after it\n")
        print(f"Machine: {machine()}\n")
        headers = [
            "targets",
            "bins",
            "add ms",
            "host downloads (bytes)",
            "minimum (bytes)",
            "vs minimum",
            "check ms",
        ]
        print(table(headers, rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
