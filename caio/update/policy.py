"""Which release to install: pure policy, no I/O, testable without a network.

Automatic choices follow the signed rollout plans and withdrawals (each host
decides for itself); naming a version is an admin's explicit choice and
overrides the plan, and a withdrawn version needs ``allow_withdrawn`` too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from packaging.version import Version

from caio.core.errors import ErrorCode, UpdateError
from caio.core.rollout import host_position
from caio.update.repository import Release

ZERO = timedelta(0)


@dataclass(frozen=True)
class Eligibility:
    """Where this host stands in a release's rollout plan."""

    percent_now: int
    eligible: bool
    eligible_at: datetime | None
    paused: bool


@dataclass(frozen=True)
class Choice:
    """What to install (None: nothing), and the newer release this host waits for."""

    release: Release | None
    waiting: Release | None = None
    waiting_until: datetime | None = None


def eligibility(
    release: Release, host_id: str, now: datetime, delay: timedelta = timedelta(0)
) -> Eligibility:
    """This host's place in ``release``'s plan (a release without one reaches every host).

    ``delay``: how much later than its signed start this host runs the plan
    (see :mod:`caio.update.sightings`).
    """
    if release.rollout is None:
        return Eligibility(100, True, None, False)
    plan = release.rollout.delayed(delay)
    position = host_position(host_id, release.version)
    return Eligibility(
        percent_now=plan.percent_at(now),
        eligible=plan.eligible(position, now),
        eligible_at=plan.eligible_at(position, now),
        paused=plan.paused,
    )


def releases_for_channel(releases: Iterable[Release], channel: str) -> list[Release]:
    """Releases published to ``channel``, oldest first."""
    return sorted((r for r in releases if channel in r.channels), key=lambda r: r.parsed_version)


def choose_release(
    releases: list[Release],
    *,
    running: str,
    channel: str,
    host_id: str,
    now: datetime,
    target_version: str | None = None,
    allow_downgrade: bool = False,
    allow_withdrawn: bool = False,
    bad_versions: frozenset[str] = frozenset(),
    delays: Mapping[str, timedelta] | None = None,
) -> Choice:
    """The release to install, or none when nothing newer is due for this host.

    * no ``target_version``: the newest release of ``channel`` above
      ``running`` that is not withdrawn, not recorded as bad, and whose
      rollout has reached this host; a newer one the plan has not reached
      yet is reported as ``waiting``;
    * ``target_version``: exactly that release (any channel, any plan, even
      if bad); lower than ``running`` only with ``allow_downgrade``, withdrawn
      only with ``allow_withdrawn``.

    ``delays``: by version, how much later than its signed start this host
    runs each plan (see :func:`eligibility`).

    Raises:
        UpdateError: target_not_found (not in the signed index),
            downgrade_refused, release_withdrawn.
    """
    current = Version(running)
    if target_version is not None:
        return Choice(
            _explicit(releases, current, target_version, allow_downgrade, allow_withdrawn)
        )
    candidates = [
        r
        for r in releases_for_channel(releases, channel)
        if r.parsed_version > current and r.version not in bad_versions and r.withdrawn is None
    ]
    chosen: Release | None = None
    waiting: tuple[Release, Eligibility] | None = None
    for release in reversed(candidates):
        place = eligibility(release, host_id, now, (delays or {}).get(release.version, ZERO))
        if place.eligible:
            chosen = release
            break
        if waiting is None:
            waiting = (release, place)
    if waiting is None:
        return Choice(chosen)
    return Choice(chosen, waiting[0], waiting[1].eligible_at)


def _explicit(
    releases: list[Release],
    current: Version,
    target_version: str,
    allow_downgrade: bool,
    allow_withdrawn: bool,
) -> Release | None:
    wanted = Version(target_version)
    match = next((r for r in releases if r.parsed_version == wanted), None)
    if match is None:
        raise UpdateError(
            ErrorCode.TARGET_NOT_FOUND, f"version {target_version} is not in the signed index"
        )
    if match.parsed_version < current and not allow_downgrade:
        raise UpdateError(
            ErrorCode.DOWNGRADE_REFUSED,
            f"{target_version} is older than the running {current}; "
            "set allow_downgrade to install it",
        )
    if match.withdrawn is not None and not allow_withdrawn and match.parsed_version != current:
        reason = f" ({match.withdrawn.reason})" if match.withdrawn.reason else ""
        raise UpdateError(
            ErrorCode.RELEASE_WITHDRAWN,
            f"{target_version} was withdrawn{reason}; set allow_withdrawn to install it anyway",
        )
    return None if match.parsed_version == current else match
