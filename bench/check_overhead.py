"""Benchmark 3: a check that finds nothing new, CAIO vs a bare ngclient refresh (warm caches).

CAIO's check = TrustedRepository.refresh(): a fresh ngclient Updater on CAIO's
httpx transport, a refresh, and the signed release index (served from its
verified local copy when unchanged). Baseline: a fresh ngclient Updater with
its default urllib3 fetcher and a refresh, on its own warm cache. Requests and
bytes are counted by wrapping each client's fetcher.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tuf.ngclient import Updater
from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher

from bench._common import machine, median, repo_server, table
from caio.core.settings import SOURCE_DIR
from caio.update.repository import RetryPolicy, TrustedRepository
from caio.update.transport import HttpTransport
from tuf_repo import Keyring, Publisher, RepoStore, build_release


class Counting:
    requests = 0
    bytes = 0


class CountingFetch:
    """Mixed into a fetcher: counts requests and body bytes of ``_fetch``."""

    counter: Counting

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.counter.requests += 1
        for chunk in super()._fetch(url):  # type: ignore[misc]
            self.counter.bytes += len(chunk)
            yield chunk


class CountingHttp(CountingFetch, HttpTransport):
    counter = Counting()


class CountingUrllib3(CountingFetch, Urllib3Fetcher):
    counter = Counting()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="caio-bench-check-"))
    try:
        repo = work / "repo"
        Publisher(RepoStore(repo), Keyring([])).init(work / "keys")
        publisher = Publisher(RepoStore(repo), Keyring.from_dir(work / "keys"))
        for version in ("1.0.0", "1.1.0"):
            publisher.add_release(build_release(SOURCE_DIR, version, work / "dist"), ["stable"])
        root = (repo / "metadata" / "1.root.json").read_bytes()
        with repo_server(repo) as url:
            transport = CountingHttp(url, user_agent="bench", timeout=30)
            caio_repo = TrustedRepository(
                metadata_url=f"{url}/metadata/",
                targets_url=f"{url}/targets/",
                metadata_dir=work / "caio" / "tuf",
                trusted_root=root,
                transport=transport,
                retry=RetryPolicy(attempts=1),
                user_agent="bench",
            )
            fetcher = CountingUrllib3()
            (work / "bare").mkdir()

            def bare() -> None:
                Updater(
                    str(work / "bare"), f"{url}/metadata/", fetcher=fetcher, bootstrap=root
                ).refresh()

            caio_repo.refresh()  # warm both caches
            bare()
            # Interleaved, one check of each per round, so drift hits both alike.
            clients = (
                ("bare ngclient refresh()", bare, fetcher.counter),
                ("CAIO check (refresh + index)", caio_repo.refresh, transport.counter),
            )
            times: dict[str, list[float]] = {name: [] for name, _, _ in clients}
            for _, _, counter in clients:
                counter.requests = counter.bytes = 0
            for _ in range(args.checks):
                for name, func, _ in clients:
                    started = time.perf_counter()
                    func()
                    times[name].append(time.perf_counter() - started)
            results = {
                name: (median(times[name]), c.requests / args.checks, c.bytes / args.checks)
                for name, _, c in clients
            }
            transport.close()
        base = results["bare ngclient refresh()"]
        rows = [
            (name, f"{t * 1000:.1f}", f"{req:.1f}", f"{b:.0f}", f"{t / base[0]:.2f}")
            for name, (t, req, b) in results.items()
        ]
        caio = results["CAIO check (refresh + index)"]
        print(f"## 3. A check that finds nothing new (median of {args.checks}, interleaved)\n")
        print(f"Machine: {machine()}\n")
        print(table(["client", "ms per check", "requests", "bytes", "time vs bare"], rows))
        ratio = caio[0] / base[0]
        print(
            f"\nCAIO / bare ngclient: **{ratio:.2f}x** time, {caio[1]:.0f} vs {base[1]:.0f} "
            f"requests (target <= 1.2x: {'met' if ratio <= 1.2 else 'MISSED'})"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
