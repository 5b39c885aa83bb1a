"""Job status (``state/update.json``, atomic) and the audit log (``state/audit.jsonl``)."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from caio.core.files import atomic_write_bytes

log = logging.getLogger(__name__)

JobStatusName = Literal["idle", "updating", "complete", "failed"]
Stage = Literal["idle", "checking", "downloading", "verifying", "installing", "complete", "failed"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobError(BaseModel):
    code: str
    message: str


class JobStatus(BaseModel):
    """The current or last update job, as the API reports it."""

    status: JobStatusName = "idle"
    stage: Stage = "idle"
    progress: int = Field(default=0, ge=0, le=100)
    message: str = "no update has run"
    requires_restart: bool = False
    error: JobError | None = None
    from_version: str | None = None
    to_version: str | None = None
    bytes_done: int = 0
    bytes_total: int | None = None
    requested_by: str | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.status == "updating"


class StateStore:
    """``state/update.json``: written atomically on every change, read at start-up."""

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
        atomic_write_bytes(self.path, status.model_dump_json(indent=2).encode() + b"\n")


class AuditLog:
    """Append-only JSON lines, one per update, restart and rollback; each append is fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"ts": utcnow().isoformat(), "event": event, **fields}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record, default=str, sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        return record

    def records(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest last. A torn last line (crash during append) is skipped."""
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out[-limit:] if limit else out
