"""What ``caio remote check``, ``status`` and ``history`` print for a person: tables and
sentences, as ``tuf-repo status`` does.

``--json`` prints the API's answer as it is, for machines.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from packaging.version import Version

from caio.schemas import CheckOut, DeltaOut, HistoryOut, JobStatus, ReleaseOut

# Fields every audit record has, or that the history table shows in its own columns.
_SHOWN = frozenset({"ts", "prev", "event", "outcome", "by", "from", "to", "version"})


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


# --- the job --------------------------------------------------------------------------------
def status_lines(status: JobStatus) -> list[str]:
    """The job in a sentence, then who asked and when; the error code when it failed."""
    head: str = status.status
    if status.status == "updating":
        head += f" ({status.stage}, {status.progress}%)"
    if status.error is not None:
        head += f" [{status.error.code}]"
    lines = [f"{head}: {status.message}"]
    facts = []
    if status.to_version:
        facts.append(f"{status.from_version or '?'} -> {status.to_version}")
    elif status.from_version:
        facts.append(f"on {status.from_version}")
    if status.status == "updating" and status.bytes_total:
        facts.append(f"{status.bytes_done:,} of {status.bytes_total:,} bytes")
    if status.requested_by:
        facts.append(f"asked by {status.requested_by}")
    if status.started_at:
        facts.append(f"started {status.started_at:%Y-%m-%d %H:%M:%S} UTC")
    if status.finished_at and status.started_at:
        seconds = (status.finished_at - status.started_at).total_seconds()
        facts.append(f"took {seconds:.1f} s")
    if facts:
        lines.append("  " + ", ".join(facts))
    return lines


# --- the audit log --------------------------------------------------------------------------
def history_lines(history: HistoryOut) -> list[str]:
    """The records oldest first, one a line, then whether their hash chain holds."""
    rows: list[tuple[str, ...]] = [("time (UTC)", "event", "outcome", "versions", "by", "detail")]
    rows += [_record_row(record) for record in history.records]
    lines = _columns(rows) if history.records else ["no audit records"]
    integrity = history.integrity
    if integrity.ok:
        shown = len(history.records)
        newest = f" (the newest {shown} shown)" if shown < integrity.records else ""
        lines.append(f"audit log: {integrity.records} records, hash chain intact{newest}")
    else:
        lines.append(
            f"AUDIT LOG BROKEN at record {integrity.first_bad}: "
            f"{integrity.reason} (`caio audit verify` on the host says more)"
        )
    return lines


def _record_row(record: dict[str, Any]) -> tuple[str, ...]:
    when = str(record.get("ts", ""))[:19].replace("T", " ")
    if "from" in record or "to" in record:
        versions = f"{record.get('from') or '?'} -> {record.get('to') or '?'}"
        if record.get("to") is None and record.get("outcome") in ("up_to_date", "not_eligible"):
            versions = str(record.get("from") or "")
    elif record.get("event") == "restart" and "running" in record:
        versions = f"{record['running']} -> {record.get('current') or '?'}"
    else:
        versions = str(record.get("version") or "")
    return (
        when,
        str(record.get("event", "?")),
        str(record.get("outcome") or ""),
        versions,
        str(record.get("by") or ""),
        _detail(record),
    )


def _detail(record: dict[str, Any]) -> str:
    """What the record says beyond its columns: an error code, a reason, bytes, a delta."""
    event = record.get("event")
    if event == "child_exit":
        code = f"exit code {record['code']}" if record.get("code") is not None else "ended"
        during = {"start": " while starting", "serving": " while serving"}
        return code + during.get(str(record.get("during")), "")
    if event == "audit_repaired":
        return "; ".join(map(str, record.get("repairs", [])))
    parts = [f"[{record['code']}]"] if record.get("code") is not None else []
    if event == "update":
        parts += _update_detail(record)
    elif event == "restart":
        parts += _restart_detail(record)
    else:
        rest = {k: v for k, v in record.items() if k not in _SHOWN and k != "code"}
        parts += [f"{k}={v}" for k, v in sorted(rest.items())]
    return ", ".join(parts)


def _update_detail(record: dict[str, Any]) -> list[str]:
    parts = []
    if isinstance(record.get("bytes"), int):
        parts.append(f"{record['bytes']:,} bytes")
    delta = record.get("delta")
    if isinstance(delta, dict):
        parts.append(f"delta from {delta.get('from')}")
    elif record.get("delta_fallback"):
        parts.append(f"whole (delta not used: {record['delta_fallback']})")
    if isinstance(record.get("seconds"), int | float):
        parts.append(f"{record['seconds']:.1f} s")
    if record.get("signed_by"):
        parts.append("signed by " + " + ".join(map(str, record["signed_by"])))
    return parts


def _restart_detail(record: dict[str, Any]) -> list[str]:
    parts = []
    if record.get("strategy"):
        graceful = "" if record.get("graceful", True) else ", not graceful"
        parts.append(f"{record['strategy']}{graceful}")
    if record.get("kind"):
        parts.append(f"{record['kind']}: {record.get('reason', '')}".rstrip(": "))
    elif record.get("reason"):
        parts.append(str(record["reason"]))
    return parts
