"""The heartbeat's margin: when refresh last ran, and whether this machine's clock holds.

``refresh`` records each run in ``DIR/heartbeat.json`` (not served). From it
and the published timestamp it can tell two things a cron job cannot:

* the clock looks wrong: it is behind the previous run, or behind the time
  the published timestamp was signed (its expiry less its lifetime). A
  refresh on a clock that runs behind re-signs nothing ("not due") or
  publishes expiries that have already passed, while every host fails;
* the cadence leaves no margin: the timestamp now published would not
  outlive ``MARGIN_RUNS`` more intervals like the one since the previous
  run. A daily cron with a one-day timestamp leaves hosts with an expired
  timestamp whenever a run is a minute late; the shipped hourly timer
  (``deploy/publisher/tuf-repo-refresh.timer``) leaves eighteen hours.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

from tuf.api.metadata import Timestamp

from caio.core.files import atomic_write_bytes
from tuf_repo.commit import TRUST_CLOCK_ENV
from tuf_repo.context import RepoContext
from tuf_repo.errors import ClockError
from tuf_repo.store import RepoPolicy

#: How far behind the record the clock may be before it is called wrong (clock skew).
CLOCK_TOLERANCE = timedelta(minutes=5)
#: Runs at the observed interval the published timestamp must outlive.
MARGIN_RUNS = 3
_TIME = "%Y-%m-%dT%H:%M:%SZ"


def check_clock(ctx: RepoContext, policy: RepoPolicy, now: datetime) -> None:
    """Refuse to run on a clock that is behind the repository's own record.

    Raises:
        ClockError: the clock is behind the previous refresh, or behind the
            time the published timestamp was signed (``TUF_REPO_TRUST_CLOCK=1``
            overrides, after a timestamp lifetime was shortened on purpose).
    """
    if os.environ.get(TRUST_CLOCK_ENV) == "1":
        return
    last = last_run(ctx)
    if last is not None and now + CLOCK_TOLERANCE < last:
        raise ClockError(
            f"this machine's clock ({now:%Y-%m-%d %H:%M} UTC) is behind the previous "
            f"refresh ({last:%Y-%m-%d %H:%M} UTC): it looks wrong. Nothing was published; "
            "fix the clock (timedatectl) and run again."
        )
    if not ctx.store.published_version(Timestamp.type):
        return
    lifetime = timedelta(days=policy.expiry_days[Timestamp.type])
    signed_at = ctx.store.load(Timestamp.type).signed.expires - lifetime
    if now + CLOCK_TOLERANCE < signed_at:
        raise ClockError(
            f"this machine's clock ({now:%Y-%m-%d %H:%M} UTC) is behind the time the "
            f"published timestamp was signed (about {signed_at:%Y-%m-%d %H:%M} UTC): it looks "
            "wrong. Nothing was published; fix the clock (timedatectl) and run again, or set "
            f"{TRUST_CLOCK_ENV}=1 if the timestamp's lifetime was shortened on purpose."
        )


def margin_warning(ctx: RepoContext, now: datetime) -> str | None:
    """A warning when the published timestamp would not outlive a few runs at this cadence."""
    last = last_run(ctx)
    if last is None or now <= last or not ctx.store.published_version(Timestamp.type):
        return None
    interval = now - last
    left = ctx.store.load(Timestamp.type).signed.expires - now
    if left >= interval * MARGIN_RUNS:
        return None
    return (
        f"WARNING: no margin: refresh last ran {_hours(interval)} ago and the timestamp it "
        f"keeps expires in {_hours(left)}, so a run that is late or missed takes hosts down. "
        "Run refresh hourly (deploy/publisher/tuf-repo-refresh.timer, or `0 * * * *` in "
        "cron), or give the timestamp a longer lifetime."
    )


def last_run(ctx: RepoContext) -> datetime | None:
    """When refresh last ran here, by the clock it ran on (None: never, or unreadable)."""
    try:
        data = json.loads(ctx.store.heartbeat_path.read_bytes())
        return datetime.strptime(data["last_run"], _TIME).replace(tzinfo=UTC)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_run(ctx: RepoContext, now: datetime) -> None:
    data = {"last_run": now.strftime(_TIME)}
    atomic_write_bytes(ctx.store.heartbeat_path, (json.dumps(data) + "\n").encode())


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"
