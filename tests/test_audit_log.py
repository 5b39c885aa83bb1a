"""The audit log survives crashes, cannot be downgraded, and reads consistently (issue 21).

Real processes append and are killed with SIGKILL at random moments; the real
`caio audit verify` judges the log after each kill, and the next append (or
start) repairs what the crash left, with a record saying so. Readers in other
processes never see a break while several writers append.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from caio.core.audit import AuditLog
from tests.background import end, looping, spawn

pytestmark = pytest.mark.slow  # real processes, killed

APPENDER = """
import sys
from pathlib import Path
from caio.core.audit import AuditLog
log = AuditLog(Path(sys.argv[1]))
for n in range(int(sys.argv[2])):
    log.append("job", outcome="activated", n=n, who=sys.argv[3], pad="x" * 300)
"""


def appender(path: Path, count: int, who: str) -> subprocess.Popen[bytes]:
    return spawn(
        [sys.executable, "-c", APPENDER, str(path), str(count), who],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def caio_verify(home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caio", "audit", "verify"],
        env={**os.environ, "CAIO_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sigkill_at_random_moments_never_looks_like_tampering(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = home / "state" / "audit.jsonl"
    rng = random.Random(21)  # noqa: S311 (reproducible moments, not a secret)
    repaired = 0
    for trial in range(25):
        proc = appender(path, 100_000, f"trial-{trial}")
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        end(proc)
        judged = caio_verify(home)
        assert judged.returncode == 0, (trial, judged.stdout)
        # Killed before its first record, the appender leaves no log at all.
        assert "hash chain intact" in judged.stdout or "no audit log yet" in judged.stdout
        before = path.read_bytes()
        AuditLog(path).append("after", trial=trial)  # what the next start or append does
        clean = caio_verify(home)
        assert clean.returncode == 0 and "cut short" not in clean.stdout, clean.stdout
        if b"audit_repaired" in path.read_bytes()[len(before) - 1 :]:
            repaired += 1
    records = AuditLog(path).records()
    assert len(records) > 25
    print(f"25 kills, {repaired} left something to repair, {len(records)} records")


def test_a_torn_or_uncounted_last_line_is_repaired_with_a_record_saying_so(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for n in range(3):
        log.append("job", n=n)
    head = path.with_suffix(".head").read_bytes()
    log.append("job", n=3)
    path.with_suffix(".head").write_bytes(head)  # as if the crash came before the head
    integrity = AuditLog(path).verify()
    assert integrity.ok and integrity.note and "cut short" in integrity.note
    assert AuditLog(path).settle() == [
        "the last record was written but not counted: an append was cut"
    ]
    with path.open("ab") as f:
        f.write(b'{"ts": "2026-12-06T10:00:00", "event": "job", "pr')  # cut mid-write
    assert AuditLog(path).verify().ok
    assert AuditLog(path).settle()[0].startswith("dropped a torn last line")
    integrity = AuditLog(path).verify()
    assert integrity.ok and integrity.note is None and integrity.records == 6
    events = [r["event"] for r in AuditLog(path).records()]
    assert events == ["job"] * 4 + ["audit_repaired"] * 2


def test_a_chain_stripped_away_or_a_missing_head_is_a_break(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = home / "state" / "audit.jsonl"
    log = AuditLog(path)
    for n in range(5):
        log.append("job", n=n)
    path.with_suffix(".head").unlink()
    missing = caio_verify(home)
    assert missing.returncode == 1 and "the head file is missing" in missing.stdout
    legacy = [json.loads(line) for line in path.read_text().splitlines()]
    for record in legacy:
        del record["prev"]
    path.write_text("".join(json.dumps(r) + "\n" for r in legacy))  # a "pre-chain" log
    stripped = caio_verify(home)
    assert stripped.returncode == 1 and "no record carries a chain hash" in stripped.stdout


def test_no_log_is_said_plainly_and_a_deleted_log_is_a_break(tmp_path: Path) -> None:
    home = tmp_path / "home"
    fresh = caio_verify(home)
    assert fresh.returncode == 0, fresh.stdout
    assert "no audit log yet" in fresh.stdout and "intact" not in fresh.stdout
    path = home / "state" / "audit.jsonl"
    log = AuditLog(path)
    for n in range(3):
        log.append("job", n=n)
    path.unlink()  # the whole log removed, its head file left behind
    deleted = caio_verify(home)
    assert deleted.returncode == 1
    assert "the log is missing, but its head file counts 3 records" in deleted.stdout


def test_an_edit_stays_visible_after_later_appends(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for n in range(4):
        log.append("job", n=n)
    lines = path.read_text().splitlines()
    lines[-1] = lines[-1].replace('"n": 3', '"n": 9')  # the last record: only the head knew it
    path.write_text("\n".join(lines) + "\n")
    for n in range(3):
        AuditLog(path).append("job", n=10 + n)
    integrity = AuditLog(path).verify()
    assert not integrity.ok and integrity.first_bad == 4, integrity


def test_history_never_sees_a_break_while_several_processes_append(tmp_path: Path) -> None:
    """Issue 26, item 1: reads raced appends and reported false breaks."""
    path = tmp_path / "audit.jsonl"
    AuditLog(path).append("start")
    reads: list[bool] = []
    reader = AuditLog(path)
    lock = threading.Lock()

    def read(_stop: threading.Event) -> None:
        _, integrity = reader.read(50)
        with lock:
            reads.append(integrity.ok)

    writers = [appender(path, 150, f"w{n}") for n in range(3)]
    try:
        with looping(read, threads=1, name="history"):
            for proc in writers:
                proc.wait(120)
    finally:
        for proc in writers:
            end(proc)
    assert len(reads) > 20 and all(reads), f"{reads.count(False)} of {len(reads)} reads broken"
    assert AuditLog(path).verify().records == 451


def test_audit_show_reads_the_log_without_the_service_and_fails_on_a_break(
    tmp_path: Path,
) -> None:
    """`caio audit show`: what happened, readable when the API does not answer."""
    home = tmp_path / "home"
    path = home / "state" / "audit.jsonl"

    def show(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "caio", "audit", "show", *args],
            env={**os.environ, "CAIO_HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert show().stdout.splitlines() == [
        "no audit records",
        "audit log: 0 records, hash chain intact",
    ]
    log = AuditLog(path)
    log.append("update", outcome="activated", by="ops", **{"from": "1.0.0", "to": "1.1.0"})
    log.append("child_exit", version="1.1.0", code=-9, during="start")
    log.append(
        "restart",
        outcome="rolled_back",
        kind="exited",
        reason="it exited with code 1",
        **{"from": "1.0.0", "to": "1.1.0"},
    )
    shown = show("--limit", "2")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[1].endswith("exit code -9 while starting")
    assert lines[2].endswith("exited: it exited with code 1")
    assert lines[-1] == "audit log: 3 records, hash chain intact (the newest 2 shown)"
    assert json.loads(show("--json").stdout)["records"][0]["by"] == "ops"

    path.write_text(path.read_text().replace('"by": "ops"', '"by": "eve"'))
    tampered = show()
    assert tampered.returncode == 1
    last = tampered.stdout.splitlines()[-1]
    assert last.startswith("AUDIT LOG BROKEN at record 1: record 1 was changed")
