"""The outcome of the last repository check, kept in ``state/check.json``.

Kept on disk so that it outlives a restart: ``/metrics`` reports when the
last check succeeded and what it found, and an alert on stale checks must not
fire just because the service restarted into a new version.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from caio.core.files import atomic_write_json
from caio.core.rollout import Withdrawal, iso, parse_time
from caio.update.agreement import Agreement

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
    # With a repository map: who signed each listed version at the last successful check,
    # {version: {"signed_by": [...], "missing": [...], "code": None or why it is not offered}}.
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)

    def withdrawal_of(self, version: str) -> Withdrawal | None:
        """Why and when ``version`` was withdrawn, as of the last successful check."""
        doc = self.withdrawn.get(version) if isinstance(self.withdrawn, dict) else None
        try:
            return Withdrawal.from_json(doc) if doc is not None else None
        except (ValueError, TypeError, KeyError):
            return None


def _time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse_time(value)
    except ValueError:
        return False
    return True


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_withdrawn(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, dict) for k, v in value.items()
    )


# What each field of check.json must be; a field that is not is left out (and counted).
_FIELDS: dict[str, Callable[[Any], bool]] = {
    "last_attempt": _optional(_time),
    "last_success": _optional(_time),
    "error": _optional(_is_str),
    "consecutive_failures": _is_count,
    "newest": _optional(_is_str),
    "newest_eligible": _optional(_is_str),
    "running_withdrawn": lambda value: isinstance(value, bool),
    "withdrawn": _is_withdrawn,
    "approvals": lambda value: (
        isinstance(value, dict) and all(_is_approval(v) for v in value.values())
    ),
}


def _is_approval(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and all(
            isinstance(value.get(k), list) and all(isinstance(n, str) for n in value[k])
            for k in ("signed_by", "missing")
        )
        and (value.get("code") is None or isinstance(value.get("code"), str))
    )


class CheckRecord:
    """Reads and writes ``state/check.json`` (0600, atomic).

    A check that finds what the last one found changes only the times; the
    file is then rewritten at most every ``REWRITE_SECONDS`` (a rename costs
    more than the rest of a check's bookkeeping), and this process reads the
    newer times from memory as long as the file is the one it wrote. Any
    other change is written at once.
    """

    REWRITE_SECONDS = 30.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.damaged = 0  # reads that found the file, or a field of it, unreadable
        self._written: tuple[CheckState, tuple[int, int], float] | None = None  # what, file, when
        self._pending: CheckState | None = None  # newer times, not written yet

    def read(self) -> CheckState:
        """The last check as recorded; what is damaged is left out and counted (``damaged``)."""
        pending, written = self._pending, self._written
        if pending is not None and written is not None and self._mtime() == written[1]:
            return pending
        try:
            doc = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return CheckState()
        except (OSError, ValueError, RecursionError):
            self._count_damage()
            return CheckState()
        if not isinstance(doc, dict):
            self._count_damage()
            return CheckState()
        fields: dict[str, Any] = {}
        for name, valid in _FIELDS.items():
            if name in doc:
                if valid(doc[name]):
                    fields[name] = doc[name]
                else:
                    self._count_damage()
        return CheckState(**fields)

    def _count_damage(self) -> None:
        with self._lock:
            self.damaged += 1

    def succeeded(
        self,
        at: datetime,
        *,
        newest: str | None,
        newest_eligible: str | None,
        running_withdrawn: bool,
        withdrawn: dict[str, Withdrawal] | None = None,
        approvals: list[Agreement] | None = None,
    ) -> None:
        self._save(
            CheckState(
                last_attempt=iso(at),
                last_success=iso(at),
                newest=newest,
                newest_eligible=newest_eligible,
                running_withdrawn=running_withdrawn,
                withdrawn={v: w.to_json() for v, w in sorted((withdrawn or {}).items())},
                approvals={
                    a.version: {
                        "signed_by": list(a.signed_by),
                        "missing": list(a.missing),
                        "code": a.problem.code if a.problem is not None else None,
                    }
                    for a in approvals or []
                },
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
        written = self._written
        if (
            written is not None
            and _untimed(state) == _untimed(written[0])
            and time.monotonic() - written[2] < self.REWRITE_SECONDS
            and self._mtime() == written[1]
        ):
            self._pending = state
            return
        try:
            # A cache of the last check: atomic (never half a file), not fsynced (a power cut
            # loses at most a check, which the next one redoes).
            atomic_write_json(self.path, asdict(state), mode=0o600, durable=False)
        except OSError as e:  # a full disk must not turn a good check into a failure
            log.warning("could not record the check in %s: %s", self.path, e)
            self._written = self._pending = None
            return
        self._written, self._pending = (state, self._mtime(), time.monotonic()), None

    def _mtime(self) -> tuple[int, int]:
        """Which file is there: (inode, modification time); atomic writes change both."""
        try:
            found = self.path.stat()
        except OSError:
            return (-1, -1)
        return (found.st_ino, found.st_mtime_ns)


def _untimed(state: CheckState) -> dict[str, Any]:
    return {**asdict(state), "last_attempt": None, "last_success": None}
