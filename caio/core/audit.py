"""The audit log: append-only JSON lines in a hash chain, safe against crashes and cheap to read.

Each record carries ``prev``, the hash of the line before (``GENESIS`` for the
first), so editing, deleting, reordering or garbling a line breaks the chain
at that point. The head file (``audit.head``: the number of records and the
hash of the last one) covers the last line, which no later record vouches
for. Every process (the service, its supervisor, the CLI) appends under one
``flock``; readers take the same lock shared, so they never see half an
append.

Crashes: a record is written, then the head. A crash in between leaves a
last line the head does not count yet, and a crash mid-write a torn last
line. Neither is tampering: the next append (and every start, through
:meth:`AuditLog.settle`) repairs them and records an ``audit_repaired``
record saying what it did, and :meth:`AuditLog.verify` names them as an
interrupted append, not as a break. Anything else that does not match is a
break, and stays one: a record appended after an unexplained mismatch
chains to what the head vouched for, so the evidence is kept in the chain.

Lines written before the chain existed (no ``prev``) are accepted only as a
prefix followed by chained records; a non-empty log with no chained record
at all (a chain stripped away, or a log never appended to since CAIO began
chaining) is not intact, and neither is a chained log without its head.

Cost: an append reads the head and the last line, never the log. A read
verifies only what was appended since the last read of the same process
(after checking, by its hash, that what was verified before is unchanged),
and parses only the records it returns.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from caio.core.files import atomic_write_bytes

GENESIS = "0" * 64
STATE_FILE_MODE = 0o600
_BLOCK = 64 * 1024


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
    note: str | None = None  # something benign to say (an interrupted append)

    def describe(self) -> str:
        if self.ok:
            note = f"; {self.note}" if self.note else ""
            return f"ok: {self.records} records, hash chain intact{note}"
        return f"broken at record {self.first_bad}: {self.reason}"


@dataclass(frozen=True)
class _Head:
    records: int
    last: str | None  # hash of the last line; None for an empty log


@dataclass
class _Verified:
    """How far one process has verified the log: the prefix, its digest, the chain state."""

    inode: int
    offset: int
    digest: Any  # hashlib sha256 object over the first ``offset`` bytes
    lines: int
    prev: str | None  # hash of the last line verified
    chained: bool
    penultimate: str | None = None  # hash of the line before it


def _utcnow() -> str:
    return datetime.now(UTC).isoformat()


class AuditLog:
    """Append-only JSON lines in a hash chain, with a head file (see the module)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.head_path = path.with_suffix(".head")
        self._verified: _Verified | None = None

    # --- writing --------------------------------------------------------------------
    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        with self._locked(exclusive=True) as fd:
            head = self._settle(fd)
            return self._write(fd, head, event, fields)[1]

    def settle(self) -> list[str]:
        """Repair what a crash left (a torn or uncounted last line); what was repaired."""
        if not self.path.exists():
            return []
        with self._locked(exclusive=True) as fd:
            repairs = self._repairs(fd)
            if repairs[0]:
                self._apply(fd, *repairs)
            return repairs[0]

    def _settle(self, fd: int) -> _Head:
        repaired, head = self._repairs(fd)
        return self._apply(fd, repaired, head) if repaired else head

    def _apply(self, fd: int, repaired: list[str], head: _Head) -> _Head:
        head, _ = self._write(fd, head, "audit_repaired", {"repairs": repaired})
        return head

    def _repairs(self, fd: int) -> tuple[list[str], _Head]:
        """What a crash left to repair (truncating a torn line here), and the head to go on from.

        A head that disagrees with the log for any other reason is kept as it
        is: the next record chains to what it vouched for, so the break stays
        visible.
        """
        repaired: list[str] = []
        tail = _last_line(fd)
        if tail and not tail.endswith(b"\n"):
            end = os.lseek(fd, 0, os.SEEK_END)
            os.ftruncate(fd, end - len(tail))
            os.fsync(fd)
            repaired.append(f"dropped a torn last line ({len(tail)} bytes): an append was cut")
            tail = _last_line(fd)
        head = self._read_head()
        if head is not None and head.records < 0:  # replaced by something unreadable
            head = _Head(len(_all_lines(fd)), head.last)  # kept: the next record breaks
        if head is None:
            lines = _all_lines(fd)
            if any(_chained(line) for line in lines):
                repaired.append(f"the head file was missing; it now counts {len(lines)} records")
            return repaired, _Head(len(lines), record_hash(lines[-1]) if lines else None)
        if tail and head.last != record_hash(tail) and _prev_of(tail) == head.last:
            repaired.append("the last record was written but not counted: an append was cut")
            head = _Head(head.records + 1, record_hash(tail))
        return repaired, head

    def _write(
        self, fd: int, head: _Head, event: str, fields: dict[str, Any]
    ) -> tuple[_Head, dict[str, Any]]:
        record = {"ts": _utcnow(), "event": event, **fields}
        record["prev"] = head.last or GENESIS
        line = (json.dumps(record, default=str, sort_keys=True) + "\n").encode()
        os.write(fd, line)
        os.fsync(fd)
        new = _Head(head.records + 1, record_hash(line))
        body = json.dumps({"records": new.records, "last": new.last}).encode()
        atomic_write_bytes(self.head_path, body, mode=STATE_FILE_MODE)
        return new, record

    def _read_head(self) -> _Head | None:
        try:
            doc = json.loads(self.head_path.read_bytes())
            return _Head(int(doc["records"]), str(doc["last"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return _Head(-1, "unreadable")

    @contextlib.contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[int]:
        if exclusive:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        else:
            flags = os.O_RDONLY | os.O_CLOEXEC
        fd = os.open(self.path, flags, STATE_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield fd
        finally:
            os.close(fd)

    # --- reading ----------------------------------------------------------------------
    def records(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest last. Unparseable lines are skipped here; :meth:`verify` reports them."""
        return self.read(limit)[0]

    def verify(self) -> AuditIntegrity:
        """Check the hash chain from the first line to the last."""
        return self.read(1)[1]

    def read(
        self, limit: int | None = None, skip: int = 0
    ) -> tuple[list[dict[str, Any]], AuditIntegrity]:
        """The chain's integrity and, consistently with it, records newest last.

        ``limit`` records (all when None) before the newest ``skip`` (a page further back).
        """
        try:
            with self._locked(exclusive=False) as fd:
                integrity = self._check(fd)
                lines = _tail_lines(fd, limit + skip) if limit else _all_lines(fd)
        except FileNotFoundError:
            return [], self._missing()
        if skip:
            lines = lines[:-skip]
        return _parse(lines[-limit:] if limit else lines), integrity

    def _missing(self) -> AuditIntegrity:
        """No log: nothing recorded yet, or a log deleted behind its head file's back."""
        head = self._read_head()
        if head is not None and head.records != 0:
            counted = "an unreadable count of" if head.records < 0 else str(head.records)
            reason = f"the log is missing, but its head file counts {counted} records"
            return AuditIntegrity(False, 0, 1, reason)
        return AuditIntegrity(True, 0, note="no log yet: nothing has been recorded")

    def _check(self, fd: int) -> AuditIntegrity:
        """Verify the chain, resuming after what this process verified before if unchanged."""
        stat = os.fstat(fd)
        state = self._resume(fd, stat.st_ino, stat.st_size)
        data = os.pread(fd, stat.st_size - state.offset, state.offset)
        complete = data[: data.rfind(b"\n") + 1]
        torn = data[len(complete) :]
        state.digest.update(complete)
        for line in complete.split(b"\n")[:-1]:
            if not line.strip():
                continue
            state.lines += 1
            problem = _link_problem(line, state)
            if problem is not None:
                self._verified = None
                return AuditIntegrity(False, state.lines, *problem)
            state.penultimate, state.prev = state.prev, record_hash(line)
        state.offset += len(complete)
        self._verified = state
        return self._check_head(state, torn)

    def _resume(self, fd: int, inode: int, size: int) -> _Verified:
        known = self._verified
        if known is not None and known.inode == inode and known.offset <= size:
            digest = hashlib.sha256()
            pos = 0
            while pos < known.offset:
                chunk = os.pread(fd, min(_BLOCK * 16, known.offset - pos), pos)
                if not chunk:
                    break
                digest.update(chunk)
                pos += len(chunk)
            if digest.digest() == known.digest.digest():
                return _Verified(
                    inode,
                    known.offset,
                    digest,
                    known.lines,
                    known.prev,
                    known.chained,
                    known.penultimate,
                )
        return _Verified(inode, 0, hashlib.sha256(), 0, None, False)

    def _check_head(  # noqa: PLR0911 (one answer per case, in the order they are judged)
        self, state: _Verified, torn: bytes
    ) -> AuditIntegrity:
        count, last = state.lines, state.prev
        cut = "an append was cut short by a crash; the next start repairs it"
        if count and not state.chained:
            return AuditIntegrity(
                False,
                count,
                1,
                "no record carries a chain hash: the chain was stripped, or the log was "
                "never appended to since CAIO began chaining it",
            )
        head = self._read_head()
        uncounted = state.chained and (  # the last record written, the head not yet
            (head is None and count == 1)
            or (head is not None and head.records == count - 1 and head.last == state.penultimate)
        )
        if uncounted:
            return AuditIntegrity(True, count, note=cut)
        if head is None:
            if count == 0:
                return AuditIntegrity(True, 0)
            return AuditIntegrity(False, count, count, "the head file is missing")
        if head.records < 0:
            return AuditIntegrity(False, count, count, "the head file is unreadable")
        if head.records != count:
            return AuditIntegrity(
                False,
                count,
                min(head.records, count) or 1,
                f"the head file counts {head.records} records, the log holds {count}",
            )
        if head.last != last:
            return AuditIntegrity(
                False, count, count, "the last record was changed after it was written"
            )
        return AuditIntegrity(True, count, note=cut if torn else None)


def _link_problem(line: bytes, state: _Verified) -> tuple[int, str] | None:
    """Why ``line`` does not continue the chain in ``state`` (None if it does)."""
    number = state.lines
    try:
        record = json.loads(line)
        if not isinstance(record, dict):
            raise ValueError("not an object")
    except ValueError:
        return number, "the line is not a JSON record"
    link = record.get("prev")
    if link is None:
        if state.chained:
            return number, "the record has no chain hash"
        return None
    expected = GENESIS if state.prev is None else state.prev
    if link != expected:
        return max(1, number - 1), (
            f"record {number - 1} was changed, or records before record {number} "
            "were removed or reordered (its chain hash does not match)"
        )
    state.chained = True
    return None


def _chained(line: bytes) -> bool:
    return _prev_of(line) is not None


def _prev_of(line: bytes) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    prev = record.get("prev") if isinstance(record, dict) else None
    return prev if isinstance(prev, str) else None


def _parse(lines: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def _all_lines(fd: int) -> list[bytes]:
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0)
    return [line for line in data.split(b"\n") if line.strip()]


def _tail_lines(fd: int, count: int) -> list[bytes]:
    """The last ``count`` complete lines, reading backwards from the end."""
    end = os.fstat(fd).st_size
    data = b""
    pos = end
    while pos > 0:
        step = min(_BLOCK, pos)
        pos -= step
        data = os.pread(fd, step, pos) + data
        if data.count(b"\n") > count:
            break
    lines = [line for line in data.split(b"\n") if line.strip()]
    if pos > 0:
        lines = lines[1:]  # the first may be cut
    return lines[-count:]


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
