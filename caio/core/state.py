"""Job status (``state/update.json``), the job lock, and the hash-chained audit log.

Only the process that owns the running job writes its status: ownership is
an ``flock`` on ``state/job.lock`` held for the job's lifetime (the kernel
drops it when the process dies), and within a process a generation number
fences out a job thread that was cancelled. A status file that says
"updating" while nobody holds the lock is a job that died with its process,
and is reported as interrupted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from caio.core.files import atomic_write_bytes
from caio.schemas import JobError, JobStatus

__all__ = ["JobError", "JobStatus"]  # re-exported: the models live in caio.schemas

log = logging.getLogger(__name__)

STATE_FILE_MODE = 0o600


def utcnow() -> datetime:
    return datetime.now(UTC)


class StateStore:
    """``state/update.json``: written atomically (mode 0600) on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> JobStatus:
        """The last saved job; a missing or unreadable file gives an idle status."""
        try:
            return JobStatus.model_validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return JobStatus()
        except (OSError, ValidationError) as e:
            log.warning("ignoring unreadable job state %s: %s", self.path, e)
            return JobStatus()

    def save(self, status: JobStatus) -> None:
        atomic_write_bytes(
            self.path, status.model_dump_json(indent=2).encode() + b"\n", mode=STATE_FILE_MODE
        )


class JobLock:
    """``state/job.lock``: held (``flock``) by the one process that runs a job."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock without waiting; False when another process holds it."""
        if self._fd is not None:
            return True
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    @contextlib.contextmanager
    def probe(self) -> Iterator[bool]:
        """Yields True, holding the lock, when no process runs a job; else yields False."""
        if self._fd is not None:
            yield False
            return
        acquired = self.try_acquire()
        try:
            yield acquired
        finally:
            if acquired:
                self.release()

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, STATE_FILE_MODE)


GENESIS = "0" * 64


def record_hash(line: bytes) -> str:
    """The chain hash of one audit line (its bytes without the newline)."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


@dataclass(frozen=True)
class AuditIntegrity:
    """The result of checking the audit log's hash chain."""

    ok: bool
    records: int
    first_bad: int | None = None  # 1-based line number
    reason: str | None = None

    def describe(self) -> str:
        if self.ok:
            return f"ok: {self.records} records, hash chain intact"
        return f"broken at record {self.first_bad}: {self.reason}"


class AuditLog:
    """Append-only JSON lines; each record carries ``prev``, the hash of the line before.

    Editing, deleting, reordering or garbling a line breaks the chain at that
    point, and :meth:`verify` names it; the head file (``audit.head``: the
    number of records and the hash of the last one) covers the last line,
    which no later record vouches for. Appends from several processes (the
    supervisor and its children) are serialised with an ``flock``. Lines
    written before the chain existed (no ``prev``) are accepted only as a
    prefix of the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.head_path = path.with_suffix(".head")

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            last = _last_line(fd)
            prefix = b"" if not last or last.endswith(b"\n") else b"\n"
            record = {"ts": utcnow().isoformat(), "event": event, **fields}
            record["prev"] = record_hash(last) if last.strip() else GENESIS
            line = (json.dumps(record, default=str, sort_keys=True) + "\n").encode()
            os.write(fd, prefix + line)
            os.fsync(fd)
            count = len(self._lines())
            head = {"records": count, "last": record_hash(line)}
            atomic_write_bytes(self.head_path, json.dumps(head).encode(), mode=STATE_FILE_MODE)
        finally:
            os.close(fd)
        return record

    def records(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest last. Unparseable lines are skipped here; :meth:`verify` reports them."""
        return self._records(self._lines(), limit)

    def read(self, limit: int | None = None) -> tuple[list[dict[str, Any]], AuditIntegrity]:
        """The records and the chain's integrity from one read of the file."""
        lines = self._lines()
        return self._records(lines, limit), self._verify(lines)

    @staticmethod
    def _records(lines: list[bytes], limit: int | None) -> list[dict[str, Any]]:
        out = []
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out[-limit:] if limit else out

    def verify(self) -> AuditIntegrity:
        """Check the hash chain from the first line to the last."""
        return self._verify(self._lines())

    def _verify(self, lines: list[bytes]) -> AuditIntegrity:
        prev: str | None = None
        chained = False
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
            except ValueError:
                return AuditIntegrity(False, len(lines), number, "the line is not a JSON record")
            link = record.get("prev")
            if link is None:
                if chained:
                    return AuditIntegrity(False, len(lines), number, "the record has no chain hash")
            else:
                expected = GENESIS if prev is None else prev
                if link != expected:
                    return AuditIntegrity(
                        False,
                        len(lines),
                        max(1, number - 1),
                        f"record {number - 1} was changed, or records before record {number} "
                        "were removed or reordered (its chain hash does not match)",
                    )
                chained = True
            prev = record_hash(line)
        return self._check_head(lines, prev)

    def _check_head(self, lines: list[bytes], last: str | None) -> AuditIntegrity:
        try:
            head = json.loads(self.head_path.read_bytes())
            records, head_last = int(head["records"]), str(head["last"])
        except FileNotFoundError:
            if last is None or not any(b'"prev"' in line for line in lines):
                return AuditIntegrity(True, len(lines))  # empty, or written before the chain
            return AuditIntegrity(False, len(lines), len(lines), "the head file is missing")
        except (OSError, ValueError, KeyError, TypeError):
            return AuditIntegrity(False, len(lines), len(lines), "the head file is unreadable")
        if records != len(lines):
            return AuditIntegrity(
                False,
                len(lines),
                min(records, len(lines)) or 1,
                f"the head file counts {records} records, the log holds {len(lines)}",
            )
        if head_last != last:
            return AuditIntegrity(
                False, len(lines), len(lines), "the last record was changed after it was written"
            )
        return AuditIntegrity(True, len(lines))

    def _lines(self) -> list[bytes]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        return [line for line in data.split(b"\n") if line.strip()]


def _last_line(fd: int, block: int = 4096) -> bytes:
    """The last line of the open file (with its newline if it has one)."""
    end = os.lseek(fd, 0, os.SEEK_END)
    data = b""
    pos = end
    while pos > 0:
        step = min(block, pos)
        pos -= step
        data = os.pread(fd, step, pos) + data
        body = data[:-1] if data.endswith(b"\n") else data
        if b"\n" in body:
            break
    body = data[:-1] if data.endswith(b"\n") else data
    start = body.rfind(b"\n") + 1
    return data[start:]
