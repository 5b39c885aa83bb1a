"""Maintenance windows: ``Mon-Fri 02:00-04:00 UTC``, when scheduled installs may run.

Grammar: ``[DAYS] HH:MM-HH:MM [ZONE]``. DAYS is ``daily`` (the default) or a
comma list of days and ranges (``Mon-Fri``, ``Sat,Sun``, ``Fri-Mon``); ZONE
is ``UTC`` (the default) or an IANA name (``Europe/Berlin``). A window that
ends before it starts runs past midnight (``22:00-02:00``), and belongs to
the day it starts on. Day names are the week's (``Mon`` or ``Monday``, any
case); anything else is refused.

Clock changes: a window opens once a day, when the zone's wall clock first
reads its start (the earlier of two 02:30s in autumn), and stays open for
its length in real time: ``02:00-03:00`` is open 60 minutes on every day of
the year. A start that falls in the spring-forward gap opens that much
later on the clock (``02:30`` in a 02:00-03:00 gap opens at 03:30), for
the same length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME_RE = re.compile(r"^(?P<h1>\d{1,2}):(?P<m1>\d{2})-(?P<h2>\d{1,2}):(?P<m2>\d{2})$")


@dataclass(frozen=True)
class MaintenanceWindow:
    days: frozenset[int]  # 0 = Monday
    start: int  # minutes after midnight
    length: int  # minutes, up to a day
    zone: tzinfo
    spec: str

    @classmethod
    def parse(cls, spec: str) -> MaintenanceWindow:
        """Raises: ValueError saying what is wrong and what is expected."""
        parts = spec.split()
        times = [i for i, p in enumerate(parts) if _TIME_RE.match(p)]
        if len(times) != 1 or times[0] > 1 or len(parts) > times[0] + 2:
            raise ValueError(
                f"maintenance window {spec!r}: expected [DAYS] HH:MM-HH:MM [ZONE], "
                "e.g. 'Mon-Fri 02:00-04:00 UTC'"
            )
        at = times[0]
        days = _days(parts[0]) if at == 1 else frozenset(range(7))
        match = _TIME_RE.match(parts[at])
        if match is None:  # found above; kept for the type checker
            raise ValueError(f"maintenance window {spec!r}: no HH:MM-HH:MM")
        start, end = _minutes(match["h1"], match["m1"]), _minutes(match["h2"], match["m2"])
        if start in (24 * 60, end):
            raise ValueError(f"maintenance window {spec!r} is empty: it starts when it ends")
        length = end - start if end > start else end + 24 * 60 - start
        zone = _zone(parts[at + 1] if len(parts) > at + 1 else "UTC")
        return cls(days, start, length, zone, spec)

    def contains(self, now: datetime) -> bool:
        instant = now.astimezone(UTC)
        local = now.astimezone(self.zone)
        for back in (0, 1):  # today's window, or yesterday's running past midnight
            opens, closes = self._bounds(local.date() - timedelta(days=back))
            if opens is not None and closes is not None and opens <= instant < closes:
                return True
        return False

    def next_open(self, now: datetime) -> datetime:
        """``now`` if inside the window, else when it next opens (UTC)."""
        if self.contains(now):
            return now
        local = now.astimezone(self.zone)
        for ahead in range(8):
            opens, _ = self._bounds(local.date() + timedelta(days=ahead))
            if opens is not None and opens > now.astimezone(UTC):
                return opens
        raise AssertionError("a window with at least one day opens within a week")

    def _bounds(self, day: date) -> tuple[datetime | None, datetime | None]:
        """When ``day``'s window opens and closes, as UTC instants (see the module)."""
        if day.weekday() not in self.days:
            return None, None
        wall = time(self.start // 60, self.start % 60, fold=0)  # fold=0: the first of two
        opens = datetime.combine(day, wall, self.zone).astimezone(UTC)
        return opens, opens + timedelta(minutes=self.length)


def _days(text: str) -> frozenset[int]:
    if text.lower() == "daily":
        return frozenset(range(7))
    chosen: set[int] = set()
    for part in text.lower().split(","):
        first, _, last = part.partition("-")
        a = _day(first, part)
        b = _day(last, part) if last else a
        chosen.update(d % 7 for d in range(a, (b if b >= a else b + 7) + 1))
    return frozenset(chosen)


def _day(name: str, part: str) -> int:
    """0 for ``mon`` or ``monday``, ...; a ValueError for anything else (``monkey``)."""
    if name in DAYS:
        return DAYS.index(name)
    if name in _FULL_DAYS:
        return _FULL_DAYS.index(name)
    raise ValueError(f"{part!r} is not a day or day range (Mon..Sun, e.g. Mon-Fri)")


def _minutes(hours: str, minutes: str) -> int:
    """Minutes after midnight; ``24:00`` is the end of the day."""
    h, m = int(hours), int(minutes)
    if not (0 <= h < 24 and 0 <= m < 60) and (h, m) != (24, 0):
        raise ValueError(f"{hours}:{minutes} is not a time of day")
    return h * 60 + m


def _zone(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {name!r} (use UTC or an IANA name)") from e
