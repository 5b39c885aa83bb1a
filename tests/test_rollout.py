"""Staged rollouts and withdrawals as pure data: plans, host positions, the release choice."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from caio.core.errors import UpdateError
from caio.core.release_format import IndexEntry, parse_index, render_index, target_path
from caio.core.rollout import Rollout, Step, Withdrawal, host_position, iso, parse_plan
from caio.update.policy import choose_release, eligibility
from caio.update.sightings import Sightings
from tests.helpers import host_at

START = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def plan(spec: str, **options: datetime) -> Rollout:
    return Rollout(START, parse_plan(spec), **options)


def test_a_plan_spec_reads_as_steps_in_seconds() -> None:
    assert parse_plan("10%@0h,50%@24h,100%@3d") == (Step(0, 10), Step(86400, 50), Step(259200, 100))
    assert parse_plan(" 34%@0s ") == (Step(0, 34),)
    assert parse_plan("5%@30m,100%@1.5h") == (Step(1800, 5), Step(5400, 100))


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("10%", "PERCENT%@OFFSET"),
        ("10%@1w", "PERCENT%@OFFSET"),
        ("2.5%@0h", "PERCENT%@OFFSET"),  # whole percents: signed JSON has no floats
        ("50%@0h,10%@1h", "must not decrease"),
        ("10%@2h,50%@1h", "must increase"),
        ("10%@1h,50%@1h", "must increase"),
        ("0%@0h", "(0, 100]"),
        ("101%@0h", "(0, 100]"),
        (",".join(f"{n + 1}%@{n}h" for n in range(40)), "1 to 32 steps"),
        ("5%@0h,10%@4000d", "at most ten years"),
    ],
)
def test_a_bad_plan_is_refused_saying_why(spec: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_plan(spec)


def test_the_percentage_steps_up_at_each_offset() -> None:
    p = plan("10%@0h,50%@24h,100%@72h")
    assert p.percent_at(START - HOUR) == 0
    assert p.percent_at(START) == 10
    assert p.percent_at(START + 23 * HOUR) == 10
    assert p.percent_at(START + 24 * HOUR) == 50
    assert p.percent_at(START + 1000 * HOUR) == 100


def test_a_host_is_eligible_once_the_percentage_passes_its_position() -> None:
    p = plan("10%@0h,50%@24h,100%@72h")
    now = START + HOUR
    assert p.eligible(0.05, now) and not p.eligible(0.10, now)
    assert p.eligible_at(0.30, now) == START + 24 * HOUR
    assert p.eligible_at(0.99, now) == START + 72 * HOUR
    assert p.eligible_at(0.05, now) == START  # already: since the first step
    assert plan("50%@0h").eligible_at(0.7, now) is None  # the plan never reaches it


def test_a_paused_plan_stands_still_and_resumes_where_it_stood() -> None:
    p = plan("10%@0h,50%@24h,100%@72h").pause(START + 2 * HOUR)
    later = START + 100 * HOUR
    assert p.percent_at(later) == 10 and p.eligible_at(0.5, later) is None
    resumed = p.resume(later)
    assert resumed.percent_at(later) == 10  # no jump to 100 %
    assert resumed.percent_at(later + 22 * HOUR) == 50  # 24 h of running time in all
    assert resumed.eligible_at(0.3, later) == later + 22 * HOUR


def test_a_delayed_plan_runs_from_its_new_start_and_a_pause_keeps_its_moment() -> None:
    signed = plan("10%@0h,50%@24h,100%@72h")
    late = signed.delayed(96 * HOUR)  # first seen four days after its signed start
    seen = START + 96 * HOUR
    assert signed.percent_at(seen) == 100 and late.percent_at(seen) == 10
    assert late.eligible_at(0.99, seen) == seen + 72 * HOUR
    assert signed.delayed(-HOUR) == signed  # never earlier than signed
    # Paused at its signed moment (30 h after publication): a host that saw it
    # at publication stands at 50 %, one that first saw it during the pause at 0 %.
    paused = plan("10%@0h,50%@24h,100%@72h").pause(seen + 30 * HOUR)
    now = seen + 200 * HOUR
    assert paused.delayed(96 * HOUR).percent_at(now) == 50
    assert paused.delayed(96 * HOUR).eligible_at(0.7, now) is None
    assert paused.delayed(140 * HOUR).percent_at(now) == 0


def test_first_sightings_are_kept_per_release_forgotten_when_delisted_and_never_hasten(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "sightings.json"
    path.parent.mkdir()
    staged_long = release("1.2.0", plan("10%@0h,100%@72h"))
    seen = START + 96 * HOUR
    assert Sightings(path).delays([staged_long], seen) == {"1.2.0": 96 * HOUR}
    assert Sightings(path).delays([staged_long], seen + 50 * HOUR) == {"1.2.0": 96 * HOUR}
    choice = choose_release(
        [staged_long],
        running="1.0.0",
        channel="stable",
        host_id=host_at("1.2.0", 0.5, 1.0),
        now=seen + HOUR,
        delays={"1.2.0": 96 * HOUR},
    )
    assert choice.release is None and choice.waiting_until == seen + 72 * HOUR
    # Released without a plan: the release time counts as the signed start.
    plain = IndexEntry("1.3.0", target_path("1.3.0"), ("stable",), released_at=iso(START))
    assert Sightings(path).delays([plain], seen)["1.3.0"] == 96 * HOUR
    assert "1.2.0" not in json.loads(path.read_text())["delay_seconds"]  # no longer listed
    path.write_text("{not json")  # a lost record starts again now: later, never sooner
    assert Sightings(path).delays([plain], seen + HOUR)["1.3.0"] == 97 * HOUR


def test_host_positions_are_stable_differ_per_version_and_spread_evenly() -> None:
    assert host_position("host-a", "1.1.0") == host_position("host-a", "1.1.0")
    assert host_position("host-a", "1.1.0") != host_position("host-a", "1.2.0")
    positions = [host_position(f"host-{n}", "1.1.0") for n in range(4000)]
    assert all(0 <= x < 1 for x in positions)
    for quarter in range(4):  # each quarter holds a quarter of the hosts, give or take
        share = sum(quarter / 4 <= x < (quarter + 1) / 4 for x in positions) / len(positions)
        assert 0.22 < share < 0.28


def test_the_index_carries_release_time_plan_and_withdrawal_both_ways() -> None:
    entry = IndexEntry(
        "1.1.0",
        target_path("1.1.0"),
        ("stable",),
        released_at="2026-11-01T00:00:00Z",
        rollout=plan("10%@0h,100%@1d").pause(START + HOUR),
        withdrawn=Withdrawal("crashes on ARM", START + 2 * HOUR),
    )
    plain = IndexEntry("1.0.0", target_path("1.0.0"), ("stable",))
    assert parse_index(render_index([entry, plain]), strict=True) == [plain, entry]
    assert b"rollout" not in render_index([plain])  # old indexes keep their bytes


@pytest.mark.parametrize(
    "bad",
    [
        {"rollout": {"start": "yesterday", "steps": [{"after_seconds": 0, "percent": 5}]}},
        {"rollout": {"start": "2026-11-01T00:00:00Z", "steps": []}},
        {
            "rollout": {
                "start": "2026-11-01T00:00:00",
                "steps": [{"after_seconds": 0, "percent": 5}],
            }
        },
        {"withdrawn": {"reason": "x" * 501, "at": "2026-11-01T00:00:00Z"}},
        {"withdrawn": "yes"},
        {
            "rollout": {
                "start": "9999-12-31T23:59:59Z",
                "steps": [{"after_seconds": 0, "percent": 5}],
            }
        },
        {
            "rollout": {
                "start": START.isoformat(),
                "steps": [{"after_seconds": 10**18, "percent": 5}],
            }
        },
        {
            "rollout": {
                "start": "2026-11-01T00:00:00Z",
                "steps": [{"after_seconds": 0, "percent": 0.5}],
            }
        },
    ],
)
def test_an_entry_with_an_unreadable_plan_is_skipped_never_guessed(bad: dict[str, object]) -> None:
    import json

    doc = json.loads(render_index([IndexEntry("1.1.0", target_path("1.1.0"), ("stable",))]))
    doc["releases"][0].update(bad)
    data = json.dumps(doc).encode()
    assert parse_index(data) == []
    with pytest.raises(ValueError, match="rollout or withdrawal"):
        parse_index(data, strict=True)


# --- the choice a host makes ----------------------------------------------------------


def release(version: str, rollout: Rollout | None = None, withdrawn: bool = False) -> IndexEntry:
    return IndexEntry(
        version,
        target_path(version),
        ("stable",),
        rollout=rollout,
        withdrawn=Withdrawal("bad", START) if withdrawn else None,
    )


def test_a_host_takes_the_newest_release_its_rollout_has_reached() -> None:
    releases = [release("1.1.0"), release("1.2.0", plan("30%@0h,100%@48h"))]
    early, late = host_at("1.2.0", 0.0, 0.3), host_at("1.2.0", 0.3, 1.0)
    now = START + HOUR
    chosen = choose_release(releases, running="1.0.0", channel="stable", host_id=early, now=now)
    assert chosen.release is not None and chosen.release.version == "1.2.0"
    assert chosen.waiting is None
    waits = choose_release(releases, running="1.0.0", channel="stable", host_id=late, now=now)
    assert waits.release is not None and waits.release.version == "1.1.0"
    assert waits.waiting is not None and waits.waiting.version == "1.2.0"
    assert waits.waiting_until == START + 48 * HOUR
    place = eligibility(releases[1], late, now)
    assert (place.percent_now, place.eligible, place.paused) == (30, False, False)


def test_a_host_on_the_newest_eligible_release_waits_and_says_until_when() -> None:
    releases = [release("1.1.0", plan("10%@0h").pause(START))]
    host = host_at("1.1.0", 0.5, 1.0)
    waits = choose_release(releases, running="1.0.0", channel="stable", host_id=host, now=START)
    assert waits.release is None and waits.waiting is not None and waits.waiting_until is None


def test_withdrawn_releases_are_never_chosen_automatically_and_named_only_with_consent() -> None:
    releases = [release("1.1.0"), release("1.2.0", withdrawn=True)]
    auto = choose_release(releases, running="1.0.0", channel="stable", host_id="h", now=START)
    assert auto.release is not None and auto.release.version == "1.1.0"
    with pytest.raises(UpdateError) as refused:
        choose_release(
            releases,
            running="1.0.0",
            channel="stable",
            host_id="h",
            now=START,
            target_version="1.2.0",
        )
    assert refused.value.code == "release_withdrawn" and "allow_withdrawn" in refused.value.message
    named = choose_release(
        releases,
        running="1.0.0",
        channel="stable",
        host_id="h",
        now=START,
        target_version="1.2.0",
        allow_withdrawn=True,
    )
    assert named.release is not None and named.release.version == "1.2.0"


def test_naming_a_version_overrides_its_rollout_plan() -> None:
    releases = [release("1.1.0", plan("1%@0h"))]
    host = host_at("1.1.0", 0.5, 1.0)
    named = choose_release(
        releases,
        running="1.0.0",
        channel="stable",
        host_id=host,
        now=START,
        target_version="1.1.0",
    )
    assert named.release is not None
