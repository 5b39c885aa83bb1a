"""What `caio remote status` and `history` print for a person (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime

from caio.remote_view import history_lines, status_lines
from caio.schemas import HistoryOut, IntegrityOut, JobError, JobStatus

AT = "2026-12-06T21:18:32.1+00:00"


def history(*records: dict[str, object], ok: bool = True, total: int | None = None) -> HistoryOut:
    count = len(records) if total is None else total
    integrity = IntegrityOut(
        ok=ok,
        records=count,
        first_bad=None if ok else 2,
        reason=None if ok else "record 2 does not chain to record 1",
    )
    return HistoryOut(
        records=[{"ts": AT, "prev": "0" * 64, **r} for r in records], integrity=integrity
    )


def test_each_kind_of_record_reads_as_one_line_with_what_it_says() -> None:
    lines = history_lines(
        history(
            {
                "event": "update",
                "outcome": "failed",
                "code": "hash_mismatch",
                "from": "1.0.0",
                "to": "1.1.0",
                "by": "ops",
                "seconds": 1.25,
            },
            {
                "event": "update",
                "outcome": "activated",
                "from": "1.0.0",
                "to": "1.1.0",
                "by": "scheduler",
                "bytes": 1123,
                "delta": {"from": "1.0.0", "bytes": 1123},
            },
            {"event": "update", "outcome": "up_to_date", "from": "1.1.0", "by": "ops"},
            {
                "event": "restart",
                "outcome": "requested",
                "running": "1.0.0",
                "current": "1.1.0",
                "by": "ops",
                "strategy": "supervisor",
                "graceful": False,
            },
            {"event": "child_exit", "version": "1.1.0", "code": -9, "during": "start"},
            {"event": "child_exit", "version": "1.1.0", "during": "serving"},
            {
                "event": "restart",
                "outcome": "rolled_back",
                "from": "1.0.0",
                "to": "1.1.0",
                "kind": "exited",
                "reason": "the new process exited with code 1",
            },
            {"event": "audit_repaired", "repairs": ["dropped a torn last line (12 bytes)"]},
            {"event": "host_id", "outcome": "reset", "previous": "abc"},
        )
    )
    assert lines[0].split() == ["time", "(UTC)", "event", "outcome", "versions", "by", "detail"]
    rows = lines[1:-1]
    assert rows[0].startswith("2026-12-06 21:18:32  update")
    assert "1.0.0 -> 1.1.0" in rows[0] and rows[0].endswith("[hash_mismatch], 1.2 s")
    assert rows[1].endswith("1,123 bytes, delta from 1.0.0")
    assert " 1.1.0 " in rows[2] and "->" not in rows[2]
    assert "1.0.0 -> 1.1.0" in rows[3] and rows[3].endswith("supervisor, not graceful")
    assert rows[4].endswith("exit code -9 while starting")
    assert rows[5].endswith("ended while serving")  # under systemd: no code is known
    assert rows[6].endswith("exited: the new process exited with code 1")
    assert rows[7].endswith("dropped a torn last line (12 bytes)")
    assert rows[8].endswith("previous=abc")  # an event without its own words: its fields
    assert lines[-1] == "audit log: 9 records, hash chain intact"


def test_a_broken_chain_is_said_last_and_loudly() -> None:
    lines = history_lines(history({"event": "rollback", "outcome": "activated"}, ok=False, total=5))
    assert lines[-1].startswith("AUDIT LOG BROKEN at record 2: record 2 does not chain")


def test_a_window_of_the_log_says_so_and_an_empty_log_too() -> None:
    assert history_lines(history({"event": "rollback"}, total=40))[-1].endswith(
        "40 records, hash chain intact (the newest 1 shown)"
    )
    assert history_lines(history()) == [
        "no audit records",
        "audit log: 0 records, hash chain intact",
    ]


def test_the_job_reads_as_a_sentence_with_who_and_when() -> None:
    started = datetime(2026, 12, 6, 21, 0, 0, tzinfo=UTC)
    failed = JobStatus(
        status="failed",
        stage="failed",
        message="sha256 of the download does not match",
        error=JobError(code="hash_mismatch", message="..."),
        from_version="1.0.0",
        to_version="1.1.0",
        requested_by="ops",
        started_at=started,
        finished_at=started.replace(second=3),
    )
    assert status_lines(failed) == [
        "failed [hash_mismatch]: sha256 of the download does not match",
        "  1.0.0 -> 1.1.0, asked by ops, started 2026-12-06 21:00:00 UTC, took 3.0 s",
    ]
    running = JobStatus(
        status="updating",
        stage="downloading",
        progress=40,
        message="downloading 1.1.0",
        from_version="1.0.0",
        to_version="1.1.0",
        bytes_done=400,
        bytes_total=1000,
    )
    assert status_lines(running) == [
        "updating (downloading, 40%): downloading 1.1.0",
        "  1.0.0 -> 1.1.0, 400 of 1,000 bytes",
    ]
    assert status_lines(JobStatus()) == ["idle: no update has run"]
