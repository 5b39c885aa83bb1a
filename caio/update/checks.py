"""The outcome of the last repository check, kept in ``state/check.json``.

Kept on disk so that it outlives a restart: ``/metrics`` reports when the
last check succeeded and what it found, and an alert on stale checks must not
fire just because the service restarted into a new version.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from caio.core.files import atomic_write_json
from caio.core.rollout import Withdrawal, iso

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckState:
    last_attempt: str | None = None
    last_success: str | None = None
    error: str | None = None  # the code of the last attempt, None when it succeeded
    consecutive_failures: int = 0
    newest: str | None = None
    newest_eligible: str | None = None
    running_withdrawn: bool = False
    # Every withdrawn release the last successful check saw: {version: {"reason", "at"}}.
    # Kept so that a process that starts on one of them (a restart, a rollback) says so
    # before it can check again.
    withdrawn: dict[str, dict[str, str]] = field(default_factory=dict)

    def withdrawal_of(self, version: str) -> Withdrawal | None:
        """Why and when ``version`` was withdrawn, as of the last successful check."""
        doc = self.withdrawn.get(version) if isinstance(self.withdrawn, dict) else None
        try:
            return Withdrawal.from_json(doc) if doc is not None else None
        except (ValueError, TypeError, KeyError):
            return None


class CheckRecord:
    """Reads and writes ``state/check.json`` (0600, atomic)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def read(self) -> CheckState:
        try:
            doc = json.loads(self.path.read_bytes())
            return CheckState(**{k: doc[k] for k in CheckState.__dataclass_fields__ if k in doc})
        except (OSError, ValueError, TypeError):
            return CheckState()

    def succeeded(
        self,
        at: datetime,
        *,
        newest: str | None,
        newest_eligible: str | None,
        running_withdrawn: bool,
        withdrawn: dict[str, Withdrawal] | None = None,
    ) -> None:
        self._save(
            CheckState(
                last_attempt=iso(at),
                last_success=iso(at),
                newest=newest,
                newest_eligible=newest_eligible,
                running_withdrawn=running_withdrawn,
                withdrawn={v: w.to_json() for v, w in sorted((withdrawn or {}).items())},
            )
        )

    def failed(self, at: datetime, code: str) -> None:
        with self._lock:
            previous = self.read()
            state = CheckState(
                **{
                    **asdict(previous),
                    "last_attempt": iso(at),
                    "error": code,
                    "consecutive_failures": previous.consecutive_failures + 1,
                }
            )
            self._write(state)

    def _save(self, state: CheckState) -> None:
        with self._lock:
            self._write(state)

    def _write(self, state: CheckState) -> None:
        try:
            atomic_write_json(self.path, asdict(state), mode=0o600)
        except OSError as e:  # a full disk must not turn a good check into a failure
            log.warning("could not record the check in %s: %s", self.path, e)
