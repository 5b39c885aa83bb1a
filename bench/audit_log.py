"""Benchmark 11: the audit log at 50,000 records (issue 21, item 11).

A log of N chained records (about 290 bytes each, like CAIO's) is written
once; then, in this process:

* append: the mean of 50 ``AuditLog.append`` calls (fsync included);
  baseline: 50 plain ``O_APPEND`` writes of the same line with an fsync;
* history page: ``AuditLog.read(100)`` as ``GET /api/v1/update/history``
  does it (the last 100 records and the chain's integrity), the first read
  of a process (the whole chain verified) and then the median of 20 later
  reads (only what was appended since, after checking by its hash that the
  rest is unchanged); baseline: reading the last 100 lines of the file.

Targets: append < 5 ms and a history page < 50 ms at 50,000 records.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench._common import machine, median, table
from caio.core.audit import GENESIS, AuditLog, record_hash


def write_log(path: Path, records: int) -> None:
    """``records`` chained records and their head, written directly (no fsync per line)."""
    prev = GENESIS
    with path.open("wb") as f:
        for n in range(records):
            record = {
                "ts": "2026-12-06T10:00:00+00:00",
                "event": "job",
                "outcome": "up_to_date",
                "actor": "scheduler",
                "job_id": f"{n:032x}",
                "from": "1.4.0",
                "duration_seconds": 1.25,
                "prev": prev,
            }
            line = (json.dumps(record, sort_keys=True) + "\n").encode()
            f.write(line)
            prev = record_hash(line)
    head = {"records": records, "last": prev}
    path.with_suffix(".head").write_text(json.dumps(head))


def plain_append(path: Path, line: bytes) -> float:
    started = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - started


def plain_tail(path: Path, count: int) -> float:
    started = time.perf_counter()
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 64 * 1024))
        lines = f.read().split(b"\n")[-count - 1 :]
        [json.loads(line) for line in lines if line.strip()]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        path = Path(tmp, "audit.jsonl")
        write_log(path, args.records)
        size_mb = path.stat().st_size / 1e6
        log = AuditLog(path)

        appends = []
        for n in range(50):
            started = time.perf_counter()
            log.append("job", outcome="up_to_date", actor="bench", n=n)
            appends.append(time.perf_counter() - started)
        line = path.read_bytes().rsplit(b"\n", 2)[-2] + b"\n"
        baseline_appends = [plain_append(Path(tmp, "plain.jsonl"), line) for _ in range(50)]

        reader = AuditLog(path)
        started = time.perf_counter()
        records, integrity = reader.read(100)
        first = time.perf_counter() - started
        if not integrity.ok or len(records) != 100:
            raise SystemExit(f"the log did not verify: {integrity}")
        later = []
        for n in range(20):
            log.append("job", outcome="up_to_date", actor="bench", n=n)
            started = time.perf_counter()
            records, integrity = reader.read(100)
            later.append(time.perf_counter() - started)
            if not integrity.ok:
                raise SystemExit(f"the log did not verify: {integrity}")
        baseline_tail = median([plain_tail(path, 100) for _ in range(20)])

    ms = 1000.0
    print(f"# {machine()}")
    print(f"# {args.records} records, {size_mb:.1f} MB\n")
    print(
        table(
            ["measure", "plain baseline (same run)", "AuditLog", "ratio", "target"],
            [
                [
                    "append (mean of 50)",
                    f"{sum(baseline_appends) / 50 * ms:.2f} ms",
                    f"{sum(appends) / 50 * ms:.2f} ms",
                    f"{sum(appends) / sum(baseline_appends):.2f}x",
                    "< 5 ms",
                ],
                [
                    "history page, later reads (median of 20)",
                    f"{baseline_tail * ms:.2f} ms",
                    f"{median(later) * ms:.2f} ms",
                    f"{median(later) / baseline_tail:.2f}x",
                    "< 50 ms",
                ],
                [
                    "history page, first read of a process",
                    f"{baseline_tail * ms:.2f} ms",
                    f"{first * ms:.1f} ms",
                    f"{first / baseline_tail:.0f}x",
                    "(once per process)",
                ],
            ],
        )
    )


if __name__ == "__main__":
    main()
