"""Benchmark 5: restart under load through the supervisor.

`caio run` on 1.0.0, updated to 1.1.0, then restarted while 8 threads send
requests (one fresh connection each). Reports failed requests (target 0) and
p50/p99 latency during the restart window vs the steady state before it.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench._common import (
    caio_env,
    caio_home,
    free_port,
    machine,
    new_repository,
    percentile,
    repo_server,
    table,
    wait_http,
)
from caio.core.settings import SOURCE_DIR
from tuf_repo import build_release

Sample = tuple[float, float, int | str]  # (start, latency, status or error)


def load(url: str, stop: threading.Event, out: list[Sample]) -> None:
    """One client per thread, no keep-alive: every request opens a fresh connection."""
    client = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))
    while not stop.is_set():
        started = time.perf_counter()
        try:
            r = client.get(f"{url}/api/v1/version")
            out.append((started, time.perf_counter() - started, r.status_code))
        except httpx.HTTPError as e:
            out.append((started, time.perf_counter() - started, type(e).__name__))
    client.close()


def main() -> None:  # noqa: PLR0915 (one linear script)
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--steady", type=float, default=5.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="caio-bench-restart-"))
    supervisor = None
    try:
        repo = work / "repo"
        publisher = new_repository(repo, work / "keys")
        publisher.add_release(build_release(SOURCE_DIR, "1.1.0", work / "dist"), ["stable"])
        home = work / "home"
        auth = caio_home(home, repo)
        with repo_server(repo) as repo_url:
            port = free_port()
            env = caio_env(home, port, repo_url)
            supervisor = subprocess.Popen([sys.executable, "-m", "caio", "run"], env=env)
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/health")
            httpx.post(f"{url}/api/v1/update", json={}, headers=auth, timeout=30)
            while httpx.get(f"{url}/api/v1/update", headers=auth).json()["status"] == "updating":
                time.sleep(0.2)

            samples: list[Sample] = []
            stop = threading.Event()
            threads = [
                threading.Thread(target=load, args=(url, stop, samples))
                for _ in range(args.threads)
            ]
            for t in threads:
                t.start()
            time.sleep(args.steady)
            restart_at = time.perf_counter()
            httpx.post(f"{url}/api/v1/restart", json={"graceful": True}, headers=auth)
            while httpx.get(f"{url}/api/v1/version").json()["version"] != "1.1.0":
                time.sleep(0.05)
            switched_at = time.perf_counter()
            time.sleep(1.0)  # the old child drains
            settled_at = time.perf_counter()
            stop.set()
            for t in threads:
                t.join()

        steady = [s for s in samples if s[0] < restart_at]
        during = [s for s in samples if restart_at <= s[0] < settled_at]
        failed = [s for s in samples if s[2] != 200]
        rows = []
        for label, group in (("steady state", steady), ("during restart", during)):
            latencies = [s[1] * 1000 for s in group]
            rows.append(
                (
                    label,
                    len(group),
                    sum(1 for s in group if s[2] != 200),
                    f"{percentile(latencies, 50):.1f}",
                    f"{percentile(latencies, 99):.1f}",
                )
            )
        print(f"## 5. Restart under load through the supervisor ({args.threads} threads)\n")
        print(f"Machine: {machine()}\n")
        print(table(["window", "requests", "failed", "p50 ms", "p99 ms"], rows))
        print(
            f"\nRestart to new version serving: {switched_at - restart_at:.2f}s; "
            f"failed requests in total: **{len(failed)}** (target 0: "
            f"{'met' if not failed else 'MISSED'})"
        )
    finally:
        if supervisor is not None and supervisor.poll() is None:
            supervisor.send_signal(signal.SIGTERM)
            supervisor.wait(60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
