"""Staged rollouts and withdrawals: signed data, decided by each host on its own.

A release may carry a rollout plan: the percentage of hosts reached at
offsets from the plan's start (the release's signed release time), e.g.
``10%@0h,50%@24h,100%@72h``. A host's position in a release's rollout is a
hash of its host id and the version, uniform in [0, 1); the host is eligible
once the plan's percentage at the current time is above its position. A
paused plan stands where it was when paused; resuming shifts the start by the
pause, so the plan goes on from where it stood rather than jumping ahead.
Each host runs a plan from its first sight of the release, never earlier than
the signed start (:meth:`Rollout.delayed`, :mod:`caio.update.sightings`).

A withdrawn release stays a signed target (hosts running it can still verify
it) but no host chooses it by itself.

Both the publisher (``tuf_repo``) and the client read and write these
through the functions here: the wire form is part of the release contract.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

HOST_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MAX_STEPS = 32
MAX_OFFSET_SECONDS = 3650 * 86400  # ten years: a plan longer than that is a mistake
MAX_REASON = 500
_STEP_RE = re.compile(r"^\s*(?P<pct>\d{1,3})%@(?P<num>\d+(?:\.\d+)?)(?P<unit>[smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def iso(moment: datetime) -> str:
    """``2026-11-27T22:00:00Z``: the one time format of the contract (UTC, seconds)."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with a zone (``Z`` allowed), as UTC.

    Raises:
        ValueError: not an ISO time, or no zone.
    """
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    if not 1970 <= moment.year <= 9000:  # room for offsets and pauses without overflow
        raise ValueError(f"{text!r} is not a plausible time")
    return moment.astimezone(UTC)


def host_position(host_id: str, version: str) -> float:
    """Where a host stands in a release's rollout: uniform in [0, 1), fixed per host and version.

    Hashing the version in gives each release a different order of hosts, so the
    same hosts are not always the first to take a new release.
    """
    digest = hashlib.sha256(f"{host_id}\0{version}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Step:
    after_seconds: int
    percent: int  # whole percents: signed metadata is canonical JSON, which has no floats


@dataclass(frozen=True)
class Rollout:
    """A plan: ``steps`` (offsets from ``start``, non-decreasing percentages), maybe paused."""

    start: datetime
    steps: tuple[Step, ...]
    paused_at: datetime | None = None

    def __post_init__(self) -> None:
        _check_steps(self.steps)

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    def percent_at(self, now: datetime) -> int:
        """The percentage of hosts the plan reaches at ``now`` (where it stood, if paused)."""
        at = now if self.paused_at is None else min(self.paused_at, now)
        elapsed = (at - self.start).total_seconds()
        reached = [s.percent for s in self.steps if s.after_seconds <= elapsed]
        return max(reached, default=0)

    def eligible(self, position: float, now: datetime) -> bool:
        return position * 100 < self.percent_at(now)

    def eligible_at(self, position: float, now: datetime) -> datetime | None:
        """When a host at ``position`` becomes eligible: ``now`` or earlier if it is,
        None if the plan never reaches it, or only after the moment it was paused."""
        step = next((s for s in self.steps if position * 100 < s.percent), None)
        if step is None:
            return None
        when = self.start + timedelta(seconds=step.after_seconds)
        if self.paused_at is not None and when > self.paused_at:
            return None
        return when

    def delayed(self, delay: timedelta) -> Rollout:
        """The plan started ``delay`` later; a pause stays at its moment.

        A host runs a plan from when it first saw the release (see
        :mod:`caio.update.sightings`): a release that waited days for its
        signers does not reach every host at once when it is published.
        """
        if delay <= timedelta(0):
            return self
        return replace(self, start=self.start + delay)

    def pause(self, now: datetime) -> Rollout:
        return self if self.paused else replace(self, paused_at=now)

    def resume(self, now: datetime) -> Rollout:
        """Go on from where the plan stood: the start moves by the time spent paused."""
        if self.paused_at is None:
            return self
        return replace(self, start=self.start + (now - self.paused_at), paused_at=None)

    def with_steps(self, steps: tuple[Step, ...]) -> Rollout:
        return replace(self, steps=steps)

    def describe(self, now: datetime) -> str:
        plan = ",".join(f"{_pct(s.percent)}%@{_offset(s.after_seconds)}" for s in self.steps)
        state = "paused" if self.paused else "running"
        return f"{plan} ({state}, at {_pct(self.percent_at(now))}% now)"

    def to_json(self) -> dict[str, Any]:
        return {
            "start": iso(self.start),
            "steps": [{"after_seconds": s.after_seconds, "percent": s.percent} for s in self.steps],
            "paused_at": iso(self.paused_at) if self.paused_at is not None else None,
        }

    @classmethod
    def from_json(cls, doc: Any) -> Rollout:
        """Raises: ValueError (or TypeError, KeyError) when ``doc`` is not a plan."""
        if not isinstance(doc, dict) or not isinstance(doc.get("steps"), list):
            raise ValueError("a rollout is an object with steps")
        steps = tuple(
            Step(_integer(s["after_seconds"]), _integer(s["percent"]))
            for s in doc["steps"][: MAX_STEPS + 1]
        )
        paused = doc.get("paused_at")
        return cls(
            start=parse_time(str(doc["start"])),
            steps=steps,
            paused_at=parse_time(str(paused)) if paused is not None else None,
        )


@dataclass(frozen=True)
class Withdrawal:
    reason: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "at": iso(self.at)}

    @classmethod
    def from_json(cls, doc: Any) -> Withdrawal:
        """Raises: ValueError (or TypeError, KeyError) when ``doc`` is not a withdrawal."""
        if not isinstance(doc, dict):
            raise ValueError("a withdrawal is an object")
        reason = str(doc.get("reason", ""))
        if len(reason) > MAX_REASON:
            raise ValueError(f"a withdrawal reason has at most {MAX_REASON} characters")
        return cls(reason=reason, at=parse_time(str(doc["at"])))


def parse_plan(spec: str) -> tuple[Step, ...]:
    """``"10%@0h,50%@24h,100%@72h"`` as steps (units s, m, h, d).

    Raises:
        ValueError: a step is not ``P%@N<unit>``, or the plan breaks a rule.
    """
    steps = []
    for part in spec.split(","):
        match = _STEP_RE.match(part)
        if match is None:
            raise ValueError(
                f"rollout step {part.strip()!r} is not PERCENT%@OFFSET with an offset unit "
                "of s, m, h or d (e.g. 10%@0h,50%@24h,100%@72h)"
            )
        seconds = float(match["num"]) * _UNIT_SECONDS[match["unit"]]
        steps.append(Step(int(seconds), int(match["pct"])))
    result = tuple(steps)
    _check_steps(result)
    return result


def _check_steps(steps: tuple[Step, ...]) -> None:
    if not steps or len(steps) > MAX_STEPS:
        raise ValueError(f"a rollout plan has 1 to {MAX_STEPS} steps")
    for earlier, later in pairwise(steps):
        if later.after_seconds <= earlier.after_seconds:
            raise ValueError("rollout offsets must increase from step to step")
        if later.percent < earlier.percent:
            raise ValueError("rollout percentages must not decrease from step to step")
    for step in steps:
        if step.after_seconds < 0 or not 0 < step.percent <= 100:
            raise ValueError("rollout percentages are in (0, 100] and offsets are not negative")
        if step.after_seconds > MAX_OFFSET_SECONDS:
            raise ValueError("a rollout step is at most ten years after the release")


def _integer(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a whole number")
    return value


def _pct(value: float) -> str:
    return f"{value:g}"


def _offset(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds / 3600:g}h" if seconds else "0h"
