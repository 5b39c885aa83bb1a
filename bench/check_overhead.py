"""Benchmark 3: a check that finds nothing new, CAIO vs a bare ngclient refresh (warm caches).

CAIO's check = TrustedRepository.refresh(): a fresh ngclient Updater on CAIO's
httpx transport, a refresh, and the signed release index (served from its
verified local copy when unchanged). Baseline: a fresh ngclient Updater with
its default urllib3 fetcher and a refresh, on its own warm cache. Requests and
bytes are counted by wrapping each client's fetcher.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from tuf.ngclient import Updater
from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher

from bench._common import caio_env, free_port, machine, median, repo_server, table, wait_http
from caio.api import create_app
from caio.core.settings import SOURCE_DIR, Settings
from caio.core.tokens import Role, TokenStore
from caio.update import UpdateService
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
        repo, root = _published(work)
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

            service = _service(work / "service", url, root)
            api_url, api_auth, api_proc = _served(work / "served", url, root)
            api = httpx.Client(headers=api_auth, timeout=30)

            def over_http() -> None:
                answer = api.get(f"{api_url}/api/v1/update/check")
                if answer.status_code != 200:
                    raise SystemExit(f"check answered {answer.status_code}: {answer.text}")

            caio_repo.refresh()  # warm every cache
            bare()
            service.checker.check()
            over_http()
            uncounted = Counting()
            # Interleaved, one check of each per round, so drift hits all alike.
            clients = (
                ("bare ngclient refresh()", bare, fetcher.counter),
                ("CAIO check (refresh + index)", caio_repo.refresh, transport.counter),
                ("Checker.check()", service.checker.check, uncounted),
                ("GET /api/v1/update/check (caio serve)", over_http, uncounted),
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
            api.close()
            api_proc.terminate()
            api_proc.wait(30)
        base = results["bare ngclient refresh()"]
        rows = [
            (
                name,
                f"{t * 1000:.1f}",
                f"{req:.1f}" if req else "-",
                f"{b:.0f}" if b else "-",
                f"{t / base[0]:.2f}",
            )
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
        _verdicts(results, base[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _published(work: Path) -> tuple[Path, bytes]:
    """A repository with two releases, and its root."""
    repo = work / "repo"
    Publisher(RepoStore(repo), Keyring([])).init(work / "keys")
    publisher = Publisher(RepoStore(repo), Keyring.from_dir(work / "keys"))
    for version in ("1.0.0", "1.1.0"):
        publisher.add_release(build_release(SOURCE_DIR, version, work / "dist"), ["stable"])
    return repo, (repo / "metadata" / "1.root.json").read_bytes()


def _verdicts(results: dict[str, tuple[float, float, float]], bare: float) -> None:
    for name, target in (
        ("Checker.check()", 1.2),
        ("GET /api/v1/update/check (caio serve)", 1.5),
    ):
        ratio = results[name][0] / bare
        verdict = "met" if ratio <= target else "MISSED"
        print(f"{name} / bare: **{ratio:.2f}x** (target <= {target}x: {verdict})")


def _service(home: Path, url: str, root: bytes) -> UpdateService:
    """CAIO's update service for a repository at ``url``, as the app wires it."""
    home.mkdir(parents=True)
    (home / "trusted_root.json").write_bytes(root)
    manifest = home / "manifest.json"
    manifest.write_text(
        json.dumps({"name": "caio", "version": "1.0.0", "update_url": url, "channel": "stable"})
    )
    service: UpdateService = create_app(Settings(home=home, manifest=manifest)).state.update_service
    return service


def _served(
    home: Path, url: str, root: bytes
) -> tuple[str, dict[str, str], subprocess.Popen[bytes]]:
    """A real `caio serve` on loopback: its URL, an auth header, the process."""
    home.mkdir(parents=True)
    (home / "trusted_root.json").write_bytes(root)
    token = TokenStore(home / "tokens.json").create("bench", Role.VIEWER)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "caio", "serve"], env=caio_env(home, port, url))
    api = f"http://127.0.0.1:{port}"
    wait_http(f"{api}/health")
    return api, {"Authorization": f"Bearer {token}"}, proc


if __name__ == "__main__":
    main()
