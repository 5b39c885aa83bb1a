"""Counts over the audit log, read incrementally: what ``/metrics`` reports as counters.

The audit log is the one record that every CAIO process writes (the service,
its supervisor, the CLI), and it survives restarts, so counters derived from
it never reset when the service restarts into a new version. Each read
parses only the lines appended since the last one; a log that shrank or was
replaced is counted again from its start.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caio.core.errors import ErrorCode

# Job duration buckets (seconds): an up-to-date check takes a second, a large
# download over a slow link many minutes.
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
JOB_OUTCOMES = frozenset(
    {
        "activated",
        "up_to_date",
        "not_eligible",
        "downloaded",
        "failed",
        "cancelled",
        "interrupted",
    }
)
RESTART_OUTCOMES = frozenset({"requested", "succeeded", "rolled_back", "interrupted"})
ROLLBACK_KINDS = frozenset(
    {"exited", "unhealthy", "wrong_version", "crash_loop", "did_not_start", "stopped"}
)
_CODES = frozenset(code.value for code in ErrorCode)
MAX_READ = 8 * 1024 * 1024  # per scrape: a huge backlog is counted over several scrapes


@dataclass
class AuditCounts:
    jobs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (outcome, code)
    duration_buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    duration_count: int = 0
    duration_sum: float = 0.0
    artifact_bytes: int = 0
    restarts: Counter[str] = field(default_factory=Counter)  # by outcome
    automatic_rollbacks: Counter[str] = field(default_factory=Counter)  # by reason
    manual_rollbacks: int = 0
    child_exits: int = 0
    deltas: Counter[str] = field(default_factory=Counter)  # applied, fallback


class AuditTally:
    """Keeps :class:`AuditCounts` up to date with an audit log file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._offset = 0
        self._inode: int | None = None
        self._counts = AuditCounts()

    def read(self) -> AuditCounts:
        """The counts up to the last complete line (a copy, safe to use after the call)."""
        with self._lock:
            self._catch_up()
            c = self._counts
            return AuditCounts(
                Counter(c.jobs),
                list(c.duration_buckets),
                c.duration_count,
                c.duration_sum,
                c.artifact_bytes,
                Counter(c.restarts),
                Counter(c.automatic_rollbacks),
                c.manual_rollbacks,
                c.child_exits,
                Counter(c.deltas),
            )

    def _catch_up(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._reset(None)
            return
        try:
            st = os.fstat(fd)
            if st.st_ino != self._inode or st.st_size < self._offset:
                self._reset(st.st_ino)
            data = os.pread(fd, min(MAX_READ, st.st_size - self._offset), self._offset)
        finally:
            os.close(fd)
        end = data.rfind(b"\n") + 1  # a line being written is counted next time
        for line in data[:end].split(b"\n"):
            if line.strip():
                self._count(line)
        self._offset += end

    def _reset(self, inode: int | None) -> None:
        self._inode, self._offset, self._counts = inode, 0, AuditCounts()

    def _count(self, line: bytes) -> None:
        try:
            record: Any = json.loads(line)
        except ValueError:
            return
        if not isinstance(record, dict):
            return
        c = self._counts
        event, outcome = record.get("event"), record.get("outcome")
        if event == "update":
            outcome = outcome if outcome in JOB_OUTCOMES else "other"
            code = record.get("code") if outcome == "failed" else ""
            c.jobs[(outcome, code if code in _CODES or code == "" else "other")] += 1
            seconds = record.get("seconds")
            if isinstance(seconds, int | float) and seconds >= 0:
                c.duration_count += 1
                c.duration_sum += seconds
                for i, bound in enumerate(DURATION_BUCKETS):
                    if seconds <= bound:
                        c.duration_buckets[i] += 1
            c.deltas.update(_delta_outcome(record, outcome))
            size = record.get("bytes")
            if outcome in ("activated", "downloaded") and isinstance(size, int) and size > 0:
                c.artifact_bytes += size
        elif event == "restart":
            c.restarts[outcome if outcome in RESTART_OUTCOMES else "other"] += 1
            if outcome == "rolled_back":
                kind = record.get("kind")
                c.automatic_rollbacks[kind if kind in ROLLBACK_KINDS else "other"] += 1
        elif event == "rollback":
            c.manual_rollbacks += 1
        elif event == "child_exit":
            c.child_exits += 1


def _delta_outcome(record: dict[str, Any], outcome: str) -> list[str]:
    """ "applied" for an update made from a delta, "fallback" for one that could not be."""
    if outcome not in ("activated", "downloaded"):
        return []
    if isinstance(record.get("delta"), dict):
        return ["applied"]
    return ["fallback"] if "delta_fallback" in record else []
