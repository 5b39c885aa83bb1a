"""Hostile load and faults against real processes: CAIO keeps serving and never wedges.

Every test runs a real `caio serve` (or `caio run`) against a repository
published by tuf_repo and served on 127.0.0.1 by a server that misbehaves on
demand (tests/update_fixtures.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from caio.core.settings import SOURCE_DIR
from caio.core.state import AuditLog
from tests.background import end, looping, spawn
from tests.helpers import free_port
from tests.served import Served, run
from tests.supervisor_fixtures import start_supervised, stop_supervised
from tests.update_fixtures import NEWER, RUNNING, UpdateEnv, trickle
from tuf_repo.server import RepoRequestHandler

pytestmark = pytest.mark.slow
GIB = 1024**3


def artifact_name(env: UpdateEnv, version: str) -> str:
    return next((env.repo.dir / "targets" / "caio" / version).glob("*.tar.gz")).name


def raw_request(url: str, head: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(head.encode())
    return sock


def read_status(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]), data


# --- 1. bodies: the token first, then at most CAIO_MAX_BODY_BYTES ----------------


def stream_until_refused(sock: socket.socket, total: int) -> int:
    """Send zeros until ``total`` bytes or until the server stops taking them."""
    chunk = b"0" * 65536
    sent = 0
    try:
        while sent < total:
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass  # refused, as it should be
    return sent


def test_a_gigabyte_body_is_refused_unread_with_or_without_a_token(
    update_env: UpdateEnv, started: list[Served]
) -> None:
    served = run(update_env, started)
    for _ in range(20):
        served.api("GET", "/api/v1/update")
    idle_peak = served.peak_rss_kb()

    # No token: 401 without reading the body, and the connection is dropped.
    sock = raw_request(
        served.url,
        f"POST /api/v1/update HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {GIB}\r\n\r\n",
    )
    sent = stream_until_refused(sock, GIB)
    status, _ = read_status(sock)
    sock.close()
    assert status == 401
    assert sent < GIB // 4

    # An admin token and a declared gigabyte: 413 before a byte of the body is read.
    sock = raw_request(
        served.url,
        f"POST /api/v1/update HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {update_env.admin}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {GIB}\r\n\r\n",
    )
    status, head = read_status(sock)
    sock.close()
    assert status == 413
    assert b"payload_too_large" in head or b"connection: close" in head.lower()

    # An admin token and a chunked body with no declared length: cut at the limit.
    sock = raw_request(
        served.url,
        f"POST /api/v1/restart HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {update_env.admin}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
    try:
        for _ in range(GIB // 0x10000):
            sock.sendall(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server hung up after answering 413
    status, _ = read_status(sock)
    sock.close()
    assert status == 413

    assert served.peak_rss_kb() - idle_peak < 16 * 1024, "the body was buffered"
    assert served.api("GET", "/health", role=None).status_code == 200


def test_bodies_that_are_not_the_expected_json_get_a_readable_422(
    update_env: UpdateEnv, started: list[Served]
) -> None:
    served = run(update_env, started)
    broken = served.api("POST", "/api/v1/update", content=b'{"target_version": ')
    assert broken.status_code == 422
    assert broken.json()["error"]["code"] == "validation_error"
    assert "not JSON" in broken.json()["error"]["message"]
    for value in ("yes", 1, "true", None):
        answer = served.api("POST", "/api/v1/update", json={"allow_downgrade": value})
        assert answer.status_code == 422, value
        assert "allow_downgrade" in answer.json()["error"]["message"]
    assert served.api("POST", "/api/v1/restart", json={"graceful": "no"}).status_code == 422
    viewer = served.api("POST", "/api/v1/update", role="viewer", content=b"garbage")
    assert viewer.status_code == 403  # the role is checked before the body is looked at


# --- 2. slow retrieval ---------------------------------------------------------------


def test_a_trickling_artifact_fails_with_slow_retrieval_and_restart_stays_possible(
    update_env: UpdateEnv, started: list[Served]
) -> None:
    update_env.publish(NEWER)
    update_env.behaviours[artifact_name(update_env, NEWER)] = trickle(0.5)
    served = run(
        update_env,
        started,
        CAIO_MIN_SPEED_BYTES="200",
        CAIO_SPEED_WINDOW_SECONDS="2",
        CAIO_RETRY_ATTEMPTS="2",
    )
    started_at = time.monotonic()
    assert served.api("POST", "/api/v1/update", json={}).status_code == 202
    status = served.wait_job(timeout=60)
    assert status["error"]["code"] == "slow_retrieval", status
    assert time.monotonic() - started_at < 30
    assert update_env.layout.current_version in (None, RUNNING)
    # Nothing is wedged: the service answers and accepts the next action.
    assert served.api("GET", "/health", role=None).status_code == 200
    assert served.api("POST", "/api/v1/rollback").status_code == 409  # nothing to roll back to


def test_trickling_metadata_meets_its_deadline(
    update_env: UpdateEnv, started: list[Served]
) -> None:
    update_env.publish(NEWER)
    update_env.behaviours["/timestamp.json"] = trickle(0.5)
    served = run(
        update_env,
        started,
        CAIO_MIN_SPEED_BYTES="0",
        CAIO_METADATA_DEADLINE_SECONDS="2",
        CAIO_RETRY_ATTEMPTS="1",
        CAIO_CHECK_WAIT_SECONDS="30",
    )
    answer = served.api("GET", "/api/v1/update/check", role="viewer")
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "slow_retrieval"
    assert "within 2s" in answer.json()["error"]["message"]


# --- 3. cancel -----------------------------------------------------------------------


def test_cancel_stops_the_job_at_once_and_the_next_update_resumes(
    update_env: UpdateEnv, started: list[Served], tmp_path: Path
) -> None:
    update_env.publish(NEWER)
    name = artifact_name(update_env, NEWER)
    update_env.behaviours[name] = trickle(0.05)
    served = run(update_env, started, CAIO_MIN_SPEED_BYTES="0")
    assert served.api("DELETE", "/api/v1/update").json()["error"]["code"] == "no_update_in_progress"
    assert served.api("POST", "/api/v1/update", json={}).status_code == 202
    served.wait_stage("downloading")
    time.sleep(1)  # some bytes arrive

    assert served.api("DELETE", "/api/v1/update", role=None).status_code == 401
    assert served.api("DELETE", "/api/v1/update", role="viewer").status_code == 403
    token_file = tmp_path / "admin.token"
    token_file.write_text(update_env.admin)
    cli = subprocess.run(  # the download trickles for minutes: a cancel that waited would hang
        [sys.executable, "-m", "caio", "remote", "cancel", "--url", served.url],
        env={**os.environ, "CAIO_TOKEN_FILE": str(token_file)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith("failed [cancelled]: "), cli.stdout
    status = served.api("GET", "/api/v1/update").json()  # ended when the answer came
    assert status["status"] == "failed"
    assert status["error"]["code"] == "cancelled"
    assert update_env.layout.current_version in (None, RUNNING)
    partial = list(update_env.layout.downloads.glob("*.part"))
    assert len(partial) == 1 and partial[0].stat().st_size > 0  # kept for the next job
    kept = partial[0].stat().st_size
    again = served.api("DELETE", "/api/v1/update")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "no_update_in_progress"

    # The next job resumes the partial download with a Range request and completes.
    del update_env.behaviours[name]
    assert served.api("POST", "/api/v1/update", json={}).status_code == 202
    final = served.wait_job()
    assert final["status"] == "complete", final
    assert update_env.layout.current_version == NEWER
    ranges = [r for path, r in update_env.requests if path.endswith(name) and r]
    assert ranges and int(ranges[-1].removeprefix("bytes=").rstrip("-")) >= kept
    assert list(update_env.layout.downloads.iterdir()) == []
    outcomes = [
        r.get("outcome") for r in AuditLog(update_env.layout.state_dir / "audit.jsonl").records()
    ]
    assert "cancelled" in outcomes and outcomes[-1] == "activated"


# --- 4. checks must not starve the service ----------------------------------------------


def test_concurrent_checks_share_one_refresh_and_local_endpoints_keep_answering(
    update_env: UpdateEnv, started: list[Served]
) -> None:
    update_env.publish(NEWER)
    update_env.behaviours["/timestamp.json"] = trickle(1.0, max_seconds=30)
    served = run(
        update_env,
        started,
        CAIO_CHECK_WAIT_SECONDS="3",
        CAIO_RETRY_ATTEMPTS="1",
        CAIO_MIN_SPEED_BYTES="0",
        CAIO_METADATA_DEADLINE_SECONDS="25",
    )
    timings: dict[str, list[float]] = {"/health": [], "/api/v1/version": [], "/api/v1/update": []}

    def check() -> int:
        return served.api("GET", "/api/v1/update/check", role="viewer").status_code

    with ThreadPoolExecutor(max_workers=45) as pool:
        checks = [pool.submit(check) for _ in range(45)]
        time.sleep(0.5)
        for _ in range(10):
            for path, samples in timings.items():
                began = time.perf_counter()
                answer = httpx.get(f"{served.url}{path}", headers=update_env.auth(), timeout=2)
                samples.append(time.perf_counter() - began)
                assert answer.status_code == 200, path
            time.sleep(0.1)
        codes = [f.result() for f in checks]
    assert set(codes) == {504}, codes  # each waited its bounded time
    timestamp_fetches = [p for p, _ in update_env.requests if p.endswith("/timestamp.json")]
    assert len(timestamp_fetches) == 1  # one shared refresh, not 45
    worst = {path: max(samples) for path, samples in timings.items()}
    print(f"slowest local answers during 45 stalled checks: {worst}")


# --- 5. connection floods ---------------------------------------------------------------


def _limit_files(soft: int, hard: int) -> Any:
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return preexec


def test_the_soft_open_file_limit_is_raised_to_the_hard_limit(
    update_env: UpdateEnv, started: list[Served]
) -> None:
    served = run(update_env, started, preexec=_limit_files(1024, 4096))
    limits = Path(f"/proc/{served.proc.pid}/limits").read_text()
    line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
    assert line.split()[3:5] == ["4096", "4096"], line


def test_a_flood_of_slow_connections_does_not_lock_out_health(
    update_env: UpdateEnv, started: list[Served]
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1300:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    served = run(
        update_env,
        started,
        preexec=_limit_files(1024, 1024),  # systemd's default, and no room to raise it
        CAIO_MAX_CONNECTIONS="512",
        CAIO_HEADER_TIMEOUT_SECONDS="10",
    )
    host, port = served.url.removeprefix("http://").split(":")
    flood: list[socket.socket] = []
    try:
        for _ in range(1100):
            try:
                s = socket.create_connection((host, int(port)), timeout=5)
                s.sendall(b"G")  # one byte of a request head, then nothing for a while
                flood.append(s)
            except OSError:
                break
        answers = 0
        for _ in range(10):
            if httpx.get(f"{served.url}/health", timeout=5).status_code == 200:
                answers += 1
            for s in flood[:50]:
                with contextlib.suppress(OSError):  # shed by the server: that is the point
                    s.sendall(b"E")
        assert answers == 10
    finally:
        for s in flood:
            s.close()
    time.sleep(0.5)
    emfile = sum("Too many open files" in line for line in served.log)
    assert emfile <= 30, f"{emfile} lines about open files"
    assert served.api("GET", "/health", role=None).status_code == 200


# --- 6. job ownership across a restart ------------------------------------------------


def test_a_restart_during_a_job_never_leaves_a_running_stage_with_nothing_running(
    update_env: UpdateEnv,
) -> None:
    update_env.publish(NEWER)
    name = artifact_name(update_env, NEWER)
    update_env.behaviours[name] = trickle(0.05)
    supervised = start_supervised(update_env, {"CAIO_MIN_SPEED_BYTES": "0"})

    def job() -> dict[str, Any]:
        status: dict[str, Any] = supervised.api("GET", "/api/v1/update").json()
        return status

    def replaced(pid: int) -> None:
        supervised.wait_for(lambda: supervised.state()["active"]["pid"] != pid)
        supervised.wait_for(lambda: not Path(f"/proc/{pid}").exists())

    try:
        # SIGHUP of the supervisor while the old child downloads.
        assert supervised.api("POST", "/api/v1/update", json={}).status_code == 202
        supervised.wait_for(lambda: job()["stage"] == "downloading")
        first = supervised.state()["active"]["pid"]
        supervised.proc.send_signal(signal.SIGHUP)
        replaced(first)
        status = job()
        assert status["status"] == "failed", status
        assert status["error"]["code"] in ("cancelled", "interrupted")
        assert "restart" in status["message"]

        # POST /restart, then an update 0.2 s later: it reaches the old child.
        second = supervised.state()["active"]["pid"]
        assert supervised.api("POST", "/api/v1/restart", json={}).status_code == 202
        time.sleep(0.2)
        supervised.api("POST", "/api/v1/update", json={})
        replaced(second)
        assert job()["status"] != "updating", job()
        del update_env.behaviours[name]
        accepted = supervised.api("POST", "/api/v1/update", json={})
        assert accepted.status_code == 202, accepted.text
        supervised.wait_for(lambda: job()["status"] == "complete")
        assert update_env.layout.current_version == NEWER
        assert supervised.api("POST", "/api/v1/rollback").status_code == 202
    finally:
        stop_supervised(supervised)


# --- 7. secrets ---------------------------------------------------------------------------


def test_repository_credentials_never_appear_in_bodies_logs_or_state(
    update_env: UpdateEnv, started: list[Served]
) -> None:
    update_env.publish(NEWER)
    seen: list[str | None] = []

    def record(handler: Any) -> None:
        seen.append(handler.headers.get("Authorization"))
        RepoRequestHandler.do_GET(handler)  # then serve as usual

    update_env.behaviours[".json"] = record
    good = update_env.repo.url.replace("http://", "http://deploy:s3cret-pw@")
    served = run(update_env, started, CAIO_UPDATE_URL=good)
    check = served.api("GET", "/api/v1/update/check", role="viewer")
    assert check.status_code == 200
    assert seen and all(h == "Basic ZGVwbG95OnMzY3JldC1wdw==" for h in seen)  # deploy:s3cret-pw

    served.proc.terminate()
    served.proc.wait(15)
    dead = f"http://deploy:s3cret-pw@127.0.0.1:{free_port()}"
    served = run(update_env, started, CAIO_UPDATE_URL=dead, CAIO_RETRY_ATTEMPTS="1")
    failed_check = served.api("GET", "/api/v1/update/check", role="viewer")
    assert failed_check.status_code == 502
    assert served.api("POST", "/api/v1/update", json={}).status_code == 202
    job = served.wait_job()
    assert job["error"]["code"] == "repository_unreachable"
    served.proc.terminate()
    served.proc.wait(15)
    state = update_env.layout.state_dir
    for text in (failed_check.text, json.dumps(job), "".join(served.log)):
        assert "s3cret-pw" not in text
    for path in state.iterdir():
        if path.is_file():
            assert b"s3cret-pw" not in path.read_bytes(), path
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"


# --- 9. tamper-evident audit ------------------------------------------------------------


def test_an_edited_audit_log_is_detected_by_history_and_the_cli(
    update_env: UpdateEnv, started: list[Served]
) -> None:
    update_env.publish(NEWER)
    served = run(update_env, started)
    for _ in range(2):
        assert served.api("POST", "/api/v1/update", json={}).status_code == 202
        assert served.wait_job()["status"] == "complete"
        assert served.api("POST", "/api/v1/rollback").status_code == 202
    history = served.api("GET", "/api/v1/update/history", role="viewer").json()
    assert history["integrity"]["ok"] is True
    verify = [sys.executable, "-m", "caio", "audit", "verify"]
    env = {**os.environ, "CAIO_HOME": str(update_env.settings.home)}
    assert subprocess.run(verify, env=env, capture_output=True).returncode == 0

    path = update_env.layout.state_dir / "audit.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"outcome": "', '"outcome": "x', 1)
    path.write_text("\n".join(lines) + "\n")
    history = served.api("GET", "/api/v1/update/history", role="viewer").json()
    assert history["integrity"]["ok"] is False
    assert history["integrity"]["first_bad"] == 2
    done = subprocess.run(verify, env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert "broken at record 2" in done.stdout

    del lines[1]
    path.write_text("\n".join(lines) + "\n")
    assert subprocess.run(verify, env=env, capture_output=True).returncode == 1


# --- 10, 12. archive limits and leftovers -------------------------------------------------


def test_a_huge_pax_header_is_refused_with_bounded_memory_and_leaves_nothing(
    update_env: UpdateEnv, started: list[Served]
) -> None:
    import gzip

    from tuf_repo.release import ReleaseInfo

    artifact = update_env.repo.work / f"caio-{NEWER}.tar.gz"
    size = 400 * 1024 * 1024
    header = bytearray(512)
    header[0:9] = b"PaxHeader"
    header[100:108] = b"0000644\0"
    header[124:136] = f"{size:011o}\0".encode()
    header[156:157] = b"x"
    header[257:263] = b"ustar\0"
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    with gzip.open(artifact, "wb", compresslevel=1) as gz:
        gz.write(bytes(header))
        zeros = b"\0" * (1024 * 1024)
        for _ in range(size // len(zeros)):
            gz.write(zeros)
        gz.write(b"\0" * 1024)
    assert artifact.stat().st_size < 2 * 1024 * 1024
    update_env.repo.publisher().publish_artifact(
        artifact, ReleaseInfo(NEWER, "2026-01-01T00:00:00Z", "abc", "stable"), ["stable"]
    )
    served = run(update_env, started)
    before = served.peak_rss_kb()
    assert served.api("POST", "/api/v1/update", json={}).status_code == 202
    status = served.wait_job()
    assert status["error"]["code"] == "package_invalid", status
    assert "extended header" in status["error"]["message"]
    assert served.peak_rss_kb() - before < 32 * 1024
    assert list(update_env.layout.downloads.iterdir()) == []  # the verified artifact is gone
    assert update_env.leftovers() == []


# --- 11. embedded: only the host that started CAIO is signalled -----------------------------

REAPER = r"""
import ctypes, os, signal, subprocess, sys, time
libc = ctypes.CDLL(None)
libc.prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans of the host come to us
got = []
signal.signal(signal.SIGUSR1, lambda *_: got.append(1))
host = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
host.wait()  # the host starts CAIO and dies; CAIO is now ours
open(sys.argv[2], "w").write("host gone\n")
deadline = time.monotonic() + 60
while time.monotonic() < deadline and not os.path.exists(sys.argv[3]):
    time.sleep(0.05)
open(sys.argv[2], "a").write(f"signals {len(got)}\n")
"""
HOST = r"""
import os, subprocess, sys, time, urllib.request
# The host registers itself: CAIO signals this pid, and only while it lives.
env = dict(os.environ, CAIO_RESTART_PID=str(os.getpid()))
subprocess.Popen([sys.executable, "-m", "caio", "serve"], env=env)
url = f"http://127.0.0.1:{os.environ['CAIO_PORT']}/health"
for _ in range(300):  # the host dies only once CAIO serves
    try:
        urllib.request.urlopen(url, timeout=1)
        break
    except OSError:
        time.sleep(0.1)
"""
LAUNCHER = r"""
import os, subprocess, sys
# A daemonising launcher: it starts CAIO and exits at once, before CAIO is up.
env = dict(os.environ, CAIO_RESTART_PID=str(os.getpid()))
subprocess.Popen([sys.executable, "-m", "caio", "serve"], env=env)
"""


@pytest.mark.parametrize("host", [HOST, LAUNCHER], ids=["host-died", "launcher-exited"])
def test_embedded_restart_never_signals_a_process_that_adopted_caio(
    update_env: UpdateEnv, tmp_path: Path, host: str
) -> None:
    port = free_port()
    report, done = tmp_path / "report", tmp_path / "done"
    env = update_env.process_env(
        port, CAIO_RESTART_STRATEGY="embedded", CAIO_RESTART_SIGNAL="SIGUSR1"
    )
    reaper = spawn([sys.executable, "-c", REAPER, host, str(report), str(done)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not (report.exists() and _healthy(url)):
            assert time.monotonic() < deadline, "caio did not come up under the reaper"
            time.sleep(0.1)
        answer = httpx.post(f"{url}/api/v1/restart", json={}, headers=update_env.auth())
        assert answer.status_code == 409
        assert answer.json()["error"]["code"] == "restart_failed"
        assert "is gone" in answer.json()["error"]["message"]
        done.touch()
        reaper.wait(30)
        assert "signals 0" in report.read_text()
    finally:
        done.touch()
        for pid in _caio_pids(port):
            os.kill(pid, signal.SIGTERM)
        end(reaper, grace=0, sig=signal.SIGKILL)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _caio_pids(port: int) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                environ = (proc / "environ").read_bytes()
            except OSError:
                continue
            if f"CAIO_PORT={port}".encode() in environ.split(b"\0"):
                pids.append(int(proc.name))
    return [p for p in pids if p != os.getpid()]


# --- 14, 15. explanations and the effective configuration ------------------------------------


def test_expired_metadata_explains_itself(update_env: UpdateEnv, started: list[Served]) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.test_update_attacks import forge_timestamp, latest

    update_env.publish(NEWER)
    served = run(update_env, started)
    trusted = served.api("GET", "/api/v1/update/check", role="viewer").json()["metadata"]
    forge_timestamp(
        update_env,
        latest(update_env, "snapshot"),
        expires=datetime.now(UTC).replace(microsecond=0) - timedelta(days=1),
    )
    answer = served.api("GET", "/api/v1/update/check", role="viewer")
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["code"] == "metadata_expired"
    assert error["details"]["metadata"]["versions"] == trusted["versions"]
    assert set(error["details"]["metadata"]["expires"]) == set(trusted["expires"])
    assert f"timestamp v{trusted['versions']['timestamp']} (expires" in error["message"]


def test_the_effective_channel_is_reported_and_a_bad_update_url_is_refused(
    update_env: UpdateEnv, started: list[Served]
) -> None:
    served = run(update_env, started, CAIO_CHANNEL="beta")
    assert served.api("GET", "/api/v1/version", role=None).json()["channel"] == "beta"
    assert served.api("GET", "/api/v1/update/check", role="viewer").json()["channel"] == "beta"
    bad = subprocess.run(
        [sys.executable, "-m", "caio", "serve"],
        env=update_env.process_env(free_port(), CAIO_UPDATE_URL="ftp://mirror.invalid/"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2
    assert "CAIO_UPDATE_URL" in bad.stderr


# --- no secret on disk, no loose state (issue 21, items 5 and 6) ------------------------------


def test_a_tree_without_a_manifest_stores_no_url_password_anywhere_under_home(
    update_env: UpdateEnv, tmp_path: Path
) -> None:
    """Installed with pip (no manifest.json beside the package), credentials in the URL:
    no file under CAIO_HOME holds them, and the state is 0700/0600 whatever made it."""
    update_env.publish(NEWER)
    tree = tmp_path / "site-packages"  # the package alone, as pip installs it
    shutil.copytree(
        SOURCE_DIR / "caio", tree / "caio", ignore=shutil.ignore_patterns("__pycache__")
    )
    home = update_env.settings.home
    state = home / "state"
    state.mkdir(mode=0o755)  # made by something else first, with a loose umask
    (state / "audit.jsonl").write_text("")
    (state / "audit.jsonl").chmod(0o644)
    port = free_port()
    url = update_env.repo.url.replace("http://", "http://deploy:s3cret-pw@")
    env = update_env.process_env(port, CAIO_UPDATE_URL=url, PYTHONPATH=str(tree))
    env.pop("CAIO_MANIFEST")
    proc = spawn(
        [sys.executable, "-m", "caio", "serve"],
        env=env,
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            assert proc.poll() is None, "caio serve exited"
            time.sleep(0.05)
        auth = update_env.auth()
        assert httpx.post(f"{base}/api/v1/update", json={}, headers=auth).status_code == 202
        deadline = time.monotonic() + 60
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            job = httpx.get(f"{base}/api/v1/update", headers=auth, timeout=10).json()
            if job["status"] != "updating":
                break
            time.sleep(0.1)
        assert job["status"] == "complete" and job["to_version"] == NEWER, job
    finally:
        end(proc)
    holding = [p for p in home.rglob("*") if p.is_file() and b"s3cret-pw" in p.read_bytes()]
    assert holding == []
    seeded = json.loads(next((home / "releases").glob("*/manifest.json")).read_text())
    assert "s3cret" not in seeded["update_url"]
    assert state.stat().st_mode & 0o777 == 0o700
    loose = [p for p in state.iterdir() if p.is_file() and p.stat().st_mode & 0o077]
    assert loose == []


# --- no stranger holds the connection slots (issue 21, items 1 and 2) -----------------------

FLOOD_LIMITS = {
    "CAIO_MAX_CONNECTIONS": "128",
    "CAIO_IDLE_TIMEOUT_SECONDS": "2",
    "CAIO_HEADER_TIMEOUT_SECONDS": "10",
}


def answered_then_one_byte(host: str, port: int) -> socket.socket:
    """A request that promises 100 MB of body, its answer read, then one byte of body."""
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(b"POST /nope HTTP/1.1\r\nHost: caio\r\nContent-Length: 100000000\r\n\r\n")
    s.recv(65536)
    s.sendall(b"x")
    return s


def pipelined_unread(host: str, port: int) -> socket.socket:
    """Thousands of pipelined requests whose answers are never read."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # answers back up at once
    s.settimeout(5)
    s.connect((host, port))
    s.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        s.send(b"GET /health HTTP/1.1\r\nHost: caio\r\n\r\n" * 3000)
    return s


def flood_while_probing(url: str, seconds: float) -> tuple[list[float], int, int]:
    """Hold connections both ways for ``seconds`` while /health is asked every 0.1 s.

    Returns (each probe's seconds, or inf for a failure), connections opened, and
    connections the server had closed by the end.
    """
    host, port = url.removeprefix("http://").split(":")
    held: list[socket.socket] = []
    opened = [0]

    def flood(stop: threading.Event) -> None:
        kind = answered_then_one_byte if opened[0] % 3 else pipelined_unread
        try:
            held.append(kind(host, int(port)))
            opened[0] += 1
        except OSError:
            stop.wait(0.05)  # shed or refused at the cap: that is the server's right

    probes: list[float] = []
    try:
        with looping(flood, threads=4, name="flood"):
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    ok = httpx.get(f"{url}/health", timeout=5).status_code == 200
                except httpx.HTTPError as e:
                    print("probe failed:", repr(e))
                    ok = False
                probes.append(time.monotonic() - started if ok else float("inf"))
                time.sleep(0.1)
        closed = sum(closed_by_server(s) for s in held)
    finally:
        for s in held:
            s.close()
    return probes, opened[0], closed


def closed_by_server(s: socket.socket) -> bool:
    """Read what is pending; True once the server's end of the stream (or a reset) shows."""
    s.setblocking(False)
    try:
        while s.recv(1 << 20):
            pass
    except BlockingIOError:
        return False  # open, nothing more to read
    except OSError:
        return True  # reset
    return True


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1])


@pytest.mark.parametrize("command", ["serve", "run"])
def test_connections_that_stop_making_progress_cannot_lock_out_health(
    update_env: UpdateEnv, started: list[Served], command: str
) -> None:
    if command == "serve":
        served = run(update_env, started, **FLOOD_LIMITS)
        url, server_pid = served.url, served.proc.pid
        supervised = None
    else:
        supervised = start_supervised(update_env, FLOOD_LIMITS)
        url, server_pid = supervised.url, supervised.state()["active"]["pid"]
    try:
        before = rss_kb(server_pid)
        probes, opened, closed = flood_while_probing(url, seconds=8)
        grown = rss_kb(server_pid) - before
    finally:
        if supervised is not None:
            stop_supervised(supervised)
    assert opened > 250, opened  # well past the cap of 128: slots were freed all along
    assert len(probes) > 20 and max(probes) < 2.0, sorted(probes)[-5:]
    print(
        f"{command}: {opened} held connections, {closed} closed by the server, "
        f"{len(probes)} probes, slowest {max(probes):.2f} s, RSS +{grown} kB"
    )
    assert closed > opened // 2  # the server closed them; the client never let go
    assert grown < 64 * 1024, f"RSS grew by {grown} kB"


def test_event_streams_are_bounded_and_an_ended_one_frees_its_place(
    update_env: UpdateEnv, started: list[Served]
) -> None:
    update_env.publish(NEWER)
    update_env.behaviours[artifact_name(update_env, NEWER)] = trickle(0.05)
    served = run(update_env, started, CAIO_MAX_EVENT_STREAMS="2", CAIO_MIN_SPEED_BYTES="0")
    assert served.api("POST", "/api/v1/update", json={}).status_code == 202
    served.wait_stage("downloading")  # streams stay open while a job runs
    head = (
        "GET /api/v1/update/events HTTP/1.1\r\nHost: caio\r\n"
        f"Authorization: Bearer {update_env.viewer}\r\n\r\n"
    )
    streams = [raw_request(served.url, head) for _ in range(2)]
    try:
        assert [read_status(s)[0] for s in streams] == [200, 200]  # then never read again
        third = served.api("GET", "/api/v1/update/events", role="viewer")
        assert third.status_code == 503 and third.json()["error"]["code"] == "too_many_streams"
        assert served.api("GET", "/health", role=None).status_code == 200
        streams.pop().close()
        deadline = time.monotonic() + 10
        while True:  # its place is free once the server sees it gone (the next event or ping)
            again = raw_request(served.url, head)
            streams.append(again)
            if read_status(again)[0] == 200:
                break
            assert time.monotonic() < deadline, "a closed stream kept its place"
            time.sleep(0.5)
    finally:
        for s in streams:
            s.close()
        served.api("DELETE", "/api/v1/update")


def test_a_damaged_check_record_never_fails_a_scrape(
    update_env: UpdateEnv, started: list[Served]
) -> None:
    """Issue 21, item 14: a damaged state/check.json made every /metrics scrape 500."""
    served = run(update_env, started)
    check = update_env.layout.state_dir / "check.json"
    damaged = {
        "last_attempt": "2026-12-06T10:00:00Z",
        "last_success": "yesterday-ish",
        "consecutive_failures": "many",
        "newest": 5,
        "withdrawn": [1, 2],
    }
    for content in (json.dumps(damaged), "[1, 2, 3]", "{not json", "[" * 100_000):
        check.write_text(content)
        scrape = served.api("GET", "/metrics", role="viewer")
        assert scrape.status_code == 200, (content[:40], scrape.text[:300])
        assert "caio_build_info" in scrape.text
    check.write_text(json.dumps(damaged))
    text = served.api("GET", "/metrics", role="viewer").text
    assert "caio_last_check_timestamp_seconds 1.7965512e+09" in text  # the readable field
    damage = next(x for x in text.splitlines() if x.startswith("caio_state_damaged_total"))
    assert float(damage.split()[1]) >= 7


# --- 15. maintenance windows across clock changes, in a real process ------------------------


@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        ("2027-03-28 01:30:00", "1.0"),  # 03:30 CEST on the spring day: open from the jump
        ("2027-10-31 00:30:00", "1.0"),  # 02:30 CEST, the first of two on the autumn day
        ("2027-10-31 01:30:00", "0.0"),  # 02:30 CET, the second: a window opens once a day
    ],
)
def test_a_running_service_keeps_its_window_across_clock_changes(
    update_env: UpdateEnv, started: list[Served], instant: str, inside: str
) -> None:
    from tests.test_trust_lifecycle import _libfaketime

    served = run(
        update_env,
        started,
        LD_PRELOAD=_libfaketime(),
        FAKETIME=f"@{instant}",  # this process's clock starts there, and runs
        DONT_FAKE_MONOTONIC="1",
        CAIO_AUTO_UPDATE="check",
        CAIO_CHECK_INTERVAL="86400",
        CAIO_MAINTENANCE_WINDOW="daily 02:00-03:00 Europe/Berlin",
    )
    text = served.api("GET", "/metrics", role="viewer").text
    line = next(
        x for x in text.splitlines() if x.startswith("caio_scheduler_in_maintenance_window")
    )
    assert line.split()[1] == inside, (instant, line)


def test_a_running_service_reports_an_unreadable_index_entry_and_updates(
    update_env: UpdateEnv, started: list[Served]
) -> None:
    """Issue 21, item 12, with a real `caio serve`: the good releases still update."""
    from tests.test_index_review import sign_index_with_junk_entries

    sign_index_with_junk_entries(update_env)
    served = run(update_env, started)
    check = served.api("GET", "/api/v1/update/check", role="viewer").json()
    assert check["update_available"]["version"] == NEWER
    assert check["skipped_entries"] == [
        "entry 2: 9.9.9: its channels must be a list of names",
        "entry 3: not an object but str",
    ]
    assert served.api("POST", "/api/v1/update", json={}).status_code == 202
    assert served.wait_job()["to_version"] == NEWER
