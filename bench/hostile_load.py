"""Benchmark 7: local endpoints under hostile load (issue: checks starving the service).

A real `caio serve` against a repository that sends `timestamp.json` at one
byte a second. Latency of `/health`, `/api/v1/version` and `GET /api/v1/update`
is measured idle (the baseline), then while 45 clients hold
`GET /api/v1/update/check` open, then while 1,100 connections trickle a
request head (the soft open-file limit of the server at 1,024). Target: p99
under 100 ms in both hostile scenarios, no request failed.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench._common import (
    caio_env,
    caio_home,
    free_port,
    machine,
    new_repository,
    percentile,
    table,
    wait_http,
)
from caio.core.settings import SOURCE_DIR
from tuf_repo import RepoServer, build_release
from tuf_repo.server import RepoRequestHandler

PATHS = ("/health", "/api/v1/version", "/api/v1/update")


class TricklingHandler(RepoRequestHandler):
    """Serves timestamp.json one byte a second (for at most 60 s); the rest normally."""

    def do_GET(self) -> None:
        if not self.path.endswith("/timestamp.json"):
            super().do_GET()
            return
        path = self._resolve()
        data = path.read_bytes() if path else b""
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(OSError):
            for i in range(min(len(data), 60)):
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                time.sleep(1.0)
        self.close_connection = True


def sample(url: str, auth: dict[str, str], count: int) -> tuple[list[float], int]:
    """Latencies (ms) of ``count`` rounds over the local endpoints, and the failures."""
    latencies: list[float] = []
    failures = 0
    with httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        for _ in range(count):
            for path in PATHS:
                began = time.perf_counter()
                try:
                    ok = client.get(f"{url}{path}", headers=auth).status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append((time.perf_counter() - began) * 1000)
                failures += not ok
            time.sleep(0.02)
    return latencies, failures


Row = tuple[str, list[float], int]


def scenarios(url: str, port: int, auth: dict[str, str], rounds: int) -> list[Row]:
    rows: list[Row] = [("idle (baseline)", *sample(url, auth, rounds))]
    with ThreadPoolExecutor(max_workers=45) as pool:
        for _ in range(45):
            pool.submit(httpx.get, f"{url}/api/v1/update/check", headers=auth, timeout=60)
        time.sleep(1.0)
        rows.append(("45 stalled checks", *sample(url, auth, rounds)))
    flood: list[socket.socket] = []
    try:
        for _ in range(1100):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"G")  # one byte of a request head, then silence
                flood.append(s)
            except OSError:
                break
        rows.append((f"{len(flood)} trickling connections", *sample(url, auth, rounds)))
    finally:
        for s in flood:
            s.close()
    return rows


def limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    work = Path(tempfile.mkdtemp(prefix="caio-bench-hostile-"))
    server = proc = None
    try:
        repo = work / "repo"
        publisher = new_repository(repo, work / "keys")
        publisher.add_release(build_release(SOURCE_DIR, "1.1.0", work / "dist"), ["stable"])
        home = work / "home"
        auth = caio_home(home, repo)
        server = RepoServer(repo, quiet=True, handler_class=TricklingHandler).start()
        port = free_port()
        env = caio_env(
            home, port, server.url, CAIO_CHECK_WAIT_SECONDS="30", CAIO_RETRY_ATTEMPTS="1"
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "caio", "serve"],
            env=env,
            preexec_fn=limit_files,  # noqa: PLW1509 (setrlimit only)
        )
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health")
        rows = scenarios(url, port, auth, args.rounds)
        base99 = percentile(rows[0][1], 99)
        print("## 7. Local endpoints under hostile load\n")
        print(f"Machine: {machine()}\n")
        print(
            table(
                ["scenario", "requests", "failed", "p50 ms", "p99 ms", "p99 vs idle"],
                [
                    (
                        label,
                        len(lat),
                        failed,
                        f"{percentile(lat, 50):.1f}",
                        f"{percentile(lat, 99):.1f}",
                        f"{percentile(lat, 99) / base99:.2f}x",
                    )
                    for label, lat, failed in rows
                ],
            )
        )
        worst = max(percentile(lat, 99) for _, lat, _ in rows[1:])
        failed = sum(f for *_, f in rows)
        verdict = "met" if worst < 100 and failed == 0 else "MISSED"
        print(f"\nTarget p99 < 100 ms and 0 failed under load: **{verdict}** ({worst:.1f} ms)")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        if server is not None:
            threading.Thread(target=server.stop, daemon=True).start()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
