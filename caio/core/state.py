"""Job status (``state/update.json``) and the job lock (the audit log: :mod:`caio.core.audit`).

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
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from caio.core.audit import GENESIS, AuditIntegrity, AuditLog, record_hash
from caio.core.files import atomic_write_bytes
from caio.schemas import JobError, JobStatus

# Re-exported: the models live in caio.schemas, the audit log in caio.core.audit.
__all__ = ["GENESIS", "AuditIntegrity", "AuditLog", "JobError", "JobStatus", "record_hash"]

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
