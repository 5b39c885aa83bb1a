"""Scheduled updates: maintenance windows, each mode's turn, backoff, and never a bad version.

The scheduler drives the real update service against a repository published
by `tuf_repo` and served over loopback; its turns are run one at a time
(``run_once``) with a chosen clock, so a test reads like a timeline.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

import pytest

from caio.api import create_app
from caio.core.errors import ConfigError
from caio.core.schedule import MaintenanceWindow
from caio.core.settings import load_settings
from caio.update import Scheduler, UpdateService
from tests.update_fixtures import NEWER, RUNNING, UpdateEnv
from tuf_repo.server import RepoRequestHandler

MONDAY_3AM = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)  # a Monday
WINDOW = MaintenanceWindow.parse("Mon-Fri 02:00-04:00 UTC")


# --- maintenance windows ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "moment", "inside"),
    [
        ("Mon-Fri 02:00-04:00 UTC", MONDAY_3AM, True),
        ("Mon-Fri 02:00-04:00 UTC", MONDAY_3AM + timedelta(hours=1), False),  # 04:00: closed
        ("Mon-Fri 02:00-04:00 UTC", MONDAY_3AM - timedelta(days=1), False),  # Sunday
        ("Sat,Sun 02:00-04:00", MONDAY_3AM - timedelta(days=1), True),
        ("22:00-02:00", MONDAY_3AM - timedelta(hours=2), True),  # past midnight
        ("Sun 22:00-02:00", MONDAY_3AM - timedelta(hours=2), True),  # Sunday's window, on Monday
        ("Mon 22:00-02:00", MONDAY_3AM - timedelta(hours=2), False),
        ("Fri-Mon 02:00-04:00", MONDAY_3AM, True),  # a range through the weekend
        ("Mon-Fri 04:00-05:00 Europe/Berlin", MONDAY_3AM, True),  # 04:00 in Berlin
        ("daily 00:00-24:00", MONDAY_3AM, True),
    ],
)
def test_a_window_contains_its_hours(spec: str, moment: datetime, inside: bool) -> None:
    assert MaintenanceWindow.parse(spec).contains(moment) is inside


def minutes_open(spec: str, start: datetime, hours: int) -> int:
    """How many of the ``hours`` minutes after ``start`` the window is open."""
    window = MaintenanceWindow.parse(spec)
    return sum(window.contains(start + timedelta(minutes=m)) for m in range(hours * 60))


def test_a_window_across_clock_changes_opens_once_for_its_length() -> None:
    """Issue 21, item 15: 02:00-03:00 Europe/Berlin was open 0 minutes in spring, 120 in autumn."""
    berlin = ZoneInfo("Europe/Berlin")
    for day in (date(2027, 3, 28), date(2027, 10, 31), date(2027, 6, 9)):  # spring, autumn
        midnight = datetime.combine(day, clock_time(0, 0), berlin).astimezone(UTC)
        next_midnight = datetime.combine(day + timedelta(days=1), clock_time(0, 0), berlin)
        hours = round((next_midnight.astimezone(UTC) - midnight).total_seconds() / 3600)
        assert hours in (23, 24, 25)
        assert minutes_open("daily 02:00-03:00 Europe/Berlin", midnight, hours) == 60, day
    window = MaintenanceWindow.parse("daily 02:00-03:00 Europe/Berlin")
    spring = datetime(2027, 3, 28, 0, 0, tzinfo=UTC)  # 01:00 CET; at 02:00 the clock jumps
    # Spring: the wall clock never reads 02:00; the window opens as it jumps (03:00 CEST).
    assert window.next_open(spring) == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)
    # Autumn: the first of the two 02:00s (CEST, 00:00 UTC); not again at the second.
    autumn = datetime(2027, 10, 31, 0, 0, tzinfo=UTC)
    assert window.next_open(autumn - timedelta(hours=1)) == autumn
    assert not window.contains(datetime(2027, 10, 31, 1, 30, tzinfo=UTC))  # 02:30 CET
    evening = datetime(2027, 10, 30, 20, 0, tzinfo=UTC)  # 22:00 CEST, the night the clock falls
    assert minutes_open("daily 22:00-02:00 Europe/Berlin", evening, 8) == 240


def test_a_closed_window_says_when_it_opens_next() -> None:
    friday_noon = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    assert WINDOW.next_open(friday_noon) == datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
    assert WINDOW.next_open(MONDAY_3AM) == MONDAY_3AM


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("02:00", "expected [DAYS] HH:MM-HH:MM [ZONE]"),
        ("Mon-Fri", "expected [DAYS] HH:MM-HH:MM [ZONE]"),
        ("Moonday 02:00-04:00", "not a day"),
        ("Monkey-Frisbee 02:00-04:00", "not a day"),  # was taken as Mon-Fri
        ("Mondays 02:00-04:00", "not a day"),
        ("02:00-02:00", "is empty"),
        ("25:00-02:00", "not a time of day"),
        ("02:00-04:00 Mars/Olympus", "unknown time zone"),
    ],
)
def test_a_bad_window_is_a_startup_error_naming_the_setting(spec: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(maintenance_window=spec)
    assert "CAIO_MAINTENANCE_WINDOW" in caught.value.message and says in caught.value.message


# --- turns --------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def scheduler(env: UpdateEnv, mode: str, clock: Clock, **options: object) -> Scheduler:
    service: UpdateService = create_app(env.settings).state.update_service
    return Scheduler(
        service,
        mode=mode,  # type: ignore[arg-type]
        interval=60,
        window=WINDOW,
        clock=clock,
        rng=random.Random(7),  # noqa: S311 (jitter, not a secret)
        **options,  # type: ignore[arg-type]
    )


def audit(env: UpdateEnv) -> list[dict[str, object]]:
    lines = (env.settings.home / "state" / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_check_mode_records_the_check_and_starts_no_job(update_env: UpdateEnv) -> None:
    update_env.publish(NEWER)
    turn = scheduler(update_env, "check", Clock(MONDAY_3AM))
    assert turn.run_once() == "checked"
    record = json.loads((update_env.settings.home / "state" / "check.json").read_text())
    assert record["newest"] == NEWER and record["newest_eligible"] == NEWER
    assert not (update_env.settings.home / "state" / "audit.jsonl").exists()
    assert update_env.layout.current_version is None


def test_outside_the_window_the_release_is_downloaded_once_and_installed_inside(
    update_env: UpdateEnv,
) -> None:
    update_env.publish(NEWER)
    clock = Clock(MONDAY_3AM - timedelta(hours=12))  # Sunday afternoon: closed
    turn = scheduler(update_env, "install", clock)
    assert turn.run_once() == "downloaded"
    kept = [p.name for p in update_env.layout.downloads.iterdir()]
    assert kept == [n for n in kept if n.endswith(f"caio-{NEWER}.tar.gz")] and len(kept) == 1
    assert update_env.layout.current_version is None
    assert turn.run_once() == "downloaded"  # kept: no second job
    records = [r for r in audit(update_env) if r["event"] == "update"]
    assert [(r["outcome"], r["by"]) for r in records] == [("downloaded", "scheduler")]

    clock.now = MONDAY_3AM
    assert turn.run_once() == "installed"
    assert update_env.layout.current_version == NEWER
    last = audit(update_env)[-1]
    assert (last["outcome"], last["by"], last["from"]) == ("activated", "scheduler", RUNNING)
    status = update_env.client().get("/api/v1/update", headers=update_env.auth()).json()
    assert status["requested_by"] == "scheduler" and status["to_version"] == NEWER


def test_restart_mode_restarts_into_what_it_installed(update_env: UpdateEnv) -> None:
    update_env.publish(NEWER)
    restarts: list[str] = []
    turn = scheduler(
        update_env, "restart", Clock(MONDAY_3AM), restart=lambda: restarts.append("go")
    )
    assert turn.run_once() == "restarted" and restarts == ["go"]


def test_a_version_that_failed_its_health_check_is_never_retried(update_env: UpdateEnv) -> None:
    update_env.publish(NEWER)
    update_env.layout.mark_bad(NEWER)
    turn = scheduler(update_env, "install", Clock(MONDAY_3AM))
    assert turn.run_once() == "up_to_date"
    assert update_env.layout.current_version is None


def test_failures_back_off_and_a_success_resets(update_env: UpdateEnv) -> None:
    update_env.publish(NEWER)
    turn = scheduler(update_env, "install", Clock(MONDAY_3AM))
    update_env.repo.server.stop()  # the repository is gone
    delays = []
    for _ in range(3):
        assert turn.run_once() == "check_failed:repository_unreachable"
        delays.append(turn._next_delay())
    assert turn.state().consecutive_failures == 3
    # 2, 4 and 8 intervals, each with up to 10 % jitter
    for factor, delay in zip((2, 4, 8), delays, strict=True):
        assert 0.9 * 60 * factor <= delay <= 1.1 * 60 * factor


def test_an_admins_job_wins_the_turn(update_env: UpdateEnv) -> None:
    update_env.publish(NEWER)
    client = update_env.client()
    service: UpdateService = client.app.state.update_service  # type: ignore[attr-defined]
    gate = threading.Event()

    def held(handler: RepoRequestHandler) -> None:  # the artifact waits for the gate
        gate.wait(30)
        RepoRequestHandler.do_GET(handler)

    update_env.behaviours[f"caio-{NEWER}.tar.gz"] = held
    started = client.post("/api/v1/update", json={}, headers=update_env.auth())
    assert started.status_code == 202
    turn = Scheduler(service, mode="install", interval=60, window=None, clock=Clock(MONDAY_3AM))
    assert turn.run_once() == "busy"
    gate.set()
    assert update_env.wait(client)["requested_by"] == "ops"


def test_the_service_runs_its_scheduler_and_metrics_show_it(update_env: UpdateEnv) -> None:
    update_env.publish(NEWER)
    settings = update_env.settings.model_copy(update={"auto_update": "check", "check_interval": 1})
    from fastapi.testclient import TestClient

    with TestClient(create_app(settings)) as client:  # the lifespan starts the scheduler
        check = settings.home / "state" / "check.json"
        deadline = time.monotonic() + 20
        while not check.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert json.loads(check.read_text())["newest"] == NEWER
        text = client.get("/metrics", headers=update_env.auth("viewer")).text
        assert 'caio_scheduler_mode{mode="check"} 1.0' in text
        assert "caio_scheduler_next_run_timestamp_seconds " in text
    assert update_env.layout.current_version is None  # check mode installs nothing


def test_restart_mode_goes_through_the_services_restart_strategy(update_env: UpdateEnv) -> None:
    update_env.publish(NEWER)
    asked: list[bool] = []
    settings = update_env.settings.model_copy(
        update={"auto_update": "restart", "restart_strategy": "embedded"}
    )
    app = create_app(settings, on_restart=asked.append)
    scheduler: Scheduler = app.state.scheduler
    assert scheduler.run_once() == "restarted"
    assert asked == [True]  # graceful, through the embedded strategy's callback
    requested = [r for r in audit(update_env) if r["event"] == "restart"]
    assert [(r["outcome"], r["by"], r["current"]) for r in requested] == [
        ("requested", "scheduler", NEWER)
    ]
