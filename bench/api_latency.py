"""Benchmark 12: `GET /api/v1/version` over one keep-alive connection, `caio serve` vs bare.

The baseline, measured in the same run: a bare FastAPI app with the same route
on uvicorn (what CAIO is built on), one process each, on loopback. Each client
is one `http.client` connection kept alive; the two servers are sampled in
interleaved rounds. Target (issue 23): p50 at most 3x and p99 at most 2x the
bare app's.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import caio_env, free_port, machine, percentile, table, wait_http

BARE_APP = """
import sys
import uvicorn
from fastapi import FastAPI

app = FastAPI()

@app.get("/api/v1/version")
async def version() -> dict[str, object]:
    return {"version": "1.0.0", "build_date": "2026-01-01T00:00:00Z", "commit": "abc",
            "channel": "stable", "started_at": "2026-01-01T00:00:00Z", "withdrawn": False}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def sample(port: int, count: int) -> list[float]:
    """Milliseconds per request, ``count`` requests on one kept-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies = []
    try:
        for _ in range(count):
            began = time.perf_counter()
            connection.request("GET", "/api/v1/version")
            response = connection.getresponse()
            response.read()
            latencies.append((time.perf_counter() - began) * 1000)
            if response.status != 200:
                raise SystemExit(f"port {port} answered {response.status}")
    finally:
        connection.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500, help="per round and server")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="caio-bench-api-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        bare_port, caio_port = free_port(), free_port()
        procs.append(subprocess.Popen([sys.executable, "-c", BARE_APP, str(bare_port)]))
        env = caio_env(work / "home", caio_port, "http://127.0.0.1:9")
        procs.append(subprocess.Popen([sys.executable, "-m", "caio", "serve"], env=env))
        for port in (bare_port, caio_port):
            wait_http(f"http://127.0.0.1:{port}/api/v1/version")
        servers = {"bare FastAPI on uvicorn (baseline)": bare_port, "caio serve": caio_port}
        found: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(args.rounds):  # interleaved: both see the same machine
            for name, port in servers.items():
                sample(port, 50)  # warm the connection path
                found[name] += sample(port, args.requests)
        bare = found["bare FastAPI on uvicorn (baseline)"]
        rows = []
        for name, values in found.items():
            p50, p99 = percentile(values, 50), percentile(values, 99)
            rows.append(
                (
                    name,
                    len(values),
                    f"{p50:.2f}",
                    f"{p99:.2f}",
                    f"{p50 / percentile(bare, 50):.2f}x",
                    f"{p99 / percentile(bare, 99):.2f}x",
                )
            )
        print("## 12. `/api/v1/version` over a kept-alive connection\n")
        print(f"Machine: {machine()}\n")
        print(table(["server", "requests", "p50 ms", "p99 ms", "p50 vs bare", "p99 vs bare"], rows))
        caio = found["caio serve"]
        p50 = percentile(caio, 50) / percentile(bare, 50)
        p99 = percentile(caio, 99) / percentile(bare, 99)
        verdict = "met" if p50 <= 3 and p99 <= 2 else "MISSED"
        print(
            f"\nTarget p50 <= 3x and p99 <= 2x the bare app: **{verdict}** ({p50:.2f}x, {p99:.2f}x)"
        )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
