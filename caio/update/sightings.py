"""When this host first saw each release: its rollout plan runs from then (issue 20, medium 9).

A release's signed plan starts at its signed release time, which is when it
was staged; its signers may sign days later. Were the plan run from the
signed start, a 10/50/100 % plan over 72 hours signed four days late would
reach every host at once. So each host runs the plan from the moment it
first saw the release, never before the signed start: the delay is the
first sighting minus the signed start (the plan's start, or the release
time for a release that had no plan yet), kept for as long as the index
lists the release.

* Nobody can make a plan go faster this way: a delay only moves it later,
  and it is this host's own record.
* A pause stays at its signed moment: a host that first sees a release
  while its plan is paused waits for the resume.
* Both readings come from this host's clock, so a clock that is off by a
  constant does not change how far the plan has run here.
* The cost: a host that first sees a release long after it was published
  (new, or off for a while) runs the plan from its own start too, and so
  takes it up to the plan's length later than the rest of the fleet.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from caio.core.files import atomic_write_json
from caio.core.rollout import parse_time
from caio.update.repository import Release

log = logging.getLogger(__name__)

ZERO = timedelta(0)


class Sightings:
    """The delay of each listed release's plan on this host, kept in ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def delays(self, releases: Iterable[Release], now: datetime) -> dict[str, timedelta]:
        """By version, how much later than signed this host runs each plan.

        Releases seen for the first time are recorded at ``now``; releases no
        longer listed are forgotten. The file is written only when that
        changes something.
        """
        listed = {r.version: r for r in releases}
        with self._lock:
            known = self._load()
            kept = {v: d for v, d in known.items() if v in listed}
            for version, release in listed.items():
                if version not in kept:
                    kept[version] = _delay(release, now)
            if kept != known:
                self._save(kept)
        return kept

    def _load(self) -> dict[str, timedelta]:
        try:
            doc = json.loads(self.path.read_bytes())
            return {str(v): timedelta(seconds=int(s)) for v, s in doc["delay_seconds"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError) as e:
            # Lost delays only make plans run from now on: slower, never faster.
            log.warning("%s is unreadable (%s): first sightings start again now", self.path, e)
            return {}

    def _save(self, delays: dict[str, timedelta]) -> None:
        doc = {"delay_seconds": {v: int(d.total_seconds()) for v, d in sorted(delays.items())}}
        try:
            atomic_write_json(self.path, doc, mode=0o600)
        except OSError as e:  # a full disk must not stop a check; the delays hold in memory
            log.warning("cannot record first sightings in %s: %s", self.path, e)


def _delay(release: Release, now: datetime) -> timedelta:
    """How long after its signed start this host first sees ``release`` (never negative)."""
    signed = release.rollout.start if release.rollout is not None else None
    if signed is None and release.released_at:
        try:
            signed = parse_time(release.released_at)
        except ValueError:
            signed = None
    if signed is None:
        return ZERO
    return max(ZERO, now - signed)
