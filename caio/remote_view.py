"""What ``caio remote check`` prints for a person: a table, as ``tuf-repo status`` does.

``--json`` prints the API's answer as it is, for machines.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from packaging.version import Version

from caio.schemas import CheckOut, DeltaOut, ReleaseOut


def check_lines(check: CheckOut, now: datetime) -> list[str]:
    """The summary, the releases newest first, and the trusted metadata's expiry."""
    lines = [
        f"running {check.running_version} on channel {check.channel}, host id {check.host_id}",
        _summary(check),
        "",
    ]
    rows: list[tuple[str, ...]] = [("version", "channels", "released (UTC)", "rollout", "state")]
    rows += [_release_row(release, check) for release in reversed(check.releases)]
    if len(rows) == 1:
        lines.append("no releases on this channel")
    else:
        lines += _columns(rows)
    lines.append("")
    lines += _columns(
        [("role", "version", "expires (UTC)", "left")]
        + [
            (
                role,
                f"v{version}",
                f"{check.metadata.expires[role]:%Y-%m-%d %H:%M}",
                _left(check.metadata.expires[role], now),
            )
            for role, version in check.metadata.versions.items()
        ]
    )
    lines += [f"skipped index entry: {entry}" for entry in check.skipped_entries]
    lines += [
        f"NOT OFFERED {held.version} ({held.code}): {held.message}" for held in check.unapproved
    ]
    return lines


def _summary(check: CheckOut) -> str:
    if check.update_available:
        text = f"an update installs {check.update_available.version}"
    elif check.waiting_for:
        text = f"{check.waiting_for.version} has not reached this host yet"
    else:
        text = f"up to date: {check.running_version} is the newest for this host"
        running = Version(check.running_version)
        held = [h.version for h in check.unapproved if Version(h.version) > running]
        if held:
            text += f"; {', '.join(held)} held back (NOT OFFERED, below)"
    if check.running_withdrawn:
        text += f"; the running version was WITHDRAWN: {check.running_withdrawn.reason}"
    if check.running_version not in [r.version for r in check.releases]:
        text += f"; {check.running_version} is not listed on this channel"  # or removed
    return text


def _release_row(release: ReleaseOut, check: CheckOut) -> tuple[str, ...]:
    tags = []
    if release.version == check.running_version:
        tags.append("running")
    if check.latest and release.version == check.latest.version:
        tags.append("newest")
    if check.update_available and release.version == check.update_available.version:
        tags.append("an update installs this")
    if release.withdrawn:
        tags.append(f"WITHDRAWN: {release.withdrawn.reason}")
    if release.signed_by:
        tags.append(f"signed by {' + '.join(release.signed_by)}")
    if release.delta:
        tags.append(_delta(release.delta))
    released = (release.released_at or release.build_date).replace("T", " ")[:16]
    return (
        release.version,
        ",".join(release.channels),
        released,
        _rollout(release),
        ", ".join(tags),
    )


def _delta(delta: DeltaOut) -> str:
    text = f"delta from {delta.from_version}: {delta.bytes:,} bytes"
    return text if delta.applies else text + ", no kept base (downloads whole)"


def _rollout(release: ReleaseOut) -> str:
    place = release.rollout
    if place is None or not place.staged:
        return "every host"
    text = f"{place.percent_now}% now"
    if place.paused:
        text += ", paused"
    if place.eligible:
        return text + ", this host: eligible"
    if place.eligible_at:
        return text + f", this host from {place.eligible_at:%Y-%m-%d %H:%M}"
    return text + ", not this host"


def _left(expires: datetime, now: datetime) -> str:
    seconds = (expires - now).total_seconds()
    if seconds <= 0:
        return "EXPIRED"
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f}d"
    return f"{seconds / 3600:.1f}h"


def _columns(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
