"""Shared helpers for the benchmarks: a repository server in its own process, tables, stats."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from caio.core.tokens import Role, TokenStore
from tuf_repo import Keyring, Publisher, RepoStore

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


# Put before a script run in a fresh process: hwm() is that process's own peak memory
# in kB (VmHWM; ru_maxrss carries the parent's peak over exec).
HWM_SCRIPT = """
def hwm():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def repo_server(repo: Path) -> Iterator[str]:
    """`tuf-repo serve` in a separate process (no GIL shared with the client measured)."""
    port = free_port()
    proc = subprocess.Popen(
        [BIN / "tuf-repo", "serve", "--repo", str(repo), "--port", str(port)],
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/metadata/1.root.json")
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer")


def best_of(
    runs: int, func: Callable[[], object], setup: Callable[[], object] = lambda: None
) -> float:
    """Fastest wall time of ``runs`` calls (the least disturbed by the machine).

    ``setup`` runs before each call, outside the timing.
    """
    times = []
    for _ in range(runs):
        setup()
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return min(times)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    mem = ""
    with open("/proc/meminfo") as f:
        mem = f.readline().split()[1]
    cpu = "unknown cpu"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores ({cpu}), {int(mem) // 1024 // 1024} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def write_random(path: Path, size: int) -> Path:
    """An incompressible file of ``size`` bytes (written in 8 MiB blocks)."""
    block = 8 * 1024 * 1024
    with path.open("wb") as f:
        left = size
        while left:
            n = min(block, left)
            f.write(os.urandom(n))
            left -= n
    return path


def new_repository(repo: Path, keys: Path) -> Publisher:
    """`tuf-repo init` into ``repo``; the publisher holding every key of ``keys``."""
    Publisher(RepoStore(repo), Keyring([])).init(keys)
    return Publisher(RepoStore(repo), Keyring.from_dir(keys))


def caio_home(home: Path, repo: Path) -> dict[str, str]:
    """A CAIO home trusting ``repo``'s root, with an admin token; returns its auth header."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(repo / "metadata" / "1.root.json", home / "trusted_root.json")
    token = TokenStore(home / "tokens.json").create("bench", Role.ADMIN)
    return {"Authorization": f"Bearer {token}"}


def caio_env(home: Path, port: int, repo_url: str, **extra: str) -> dict[str, str]:
    """Environment for a CAIO process under test: only our CAIO_* settings, quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIO_")}
    env.update(
        CAIO_HOME=str(home),
        CAIO_PORT=str(port),
        CAIO_UPDATE_URL=repo_url,
        CAIO_LOG_LEVEL="warning",
        **extra,
    )
    return env
