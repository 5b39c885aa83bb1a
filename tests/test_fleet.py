"""Staged rollouts and withdrawals end to end: `tuf-repo` signs them, CAIO follows them.

The repository is published by our own `tuf_repo` (its CLI run in-process) and
served over loopback HTTP; CAIO runs through its app factory with a chosen
host id, so each host's place in a rollout is known in advance.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from caio.api import create_app
from caio.core.rollout import parse_plan
from tests.helpers import host_at, write_manifest
from tests.update_fixtures import NEWER, UpdateEnv, built_release
from tuf_repo import Keyring, Publisher
from tuf_repo.cli import app as tuf_repo_app
from tuf_repo.commit import TRUST_CLOCK_ENV

EXIT_USAGE, EXIT_SIGNATURES_NEEDED = 2, 3


CHECK = "/api/v1/update/check"


def tuf_repo(env: UpdateEnv, *args: str | Path, keys: Path | None = None) -> Any:
    repo = env.repo
    return CliRunner().invoke(
        tuf_repo_app,
        [
            str(args[0]),
            "--repo",
            str(repo.dir),
            "--keys",
            str(keys or repo.keys),
            *map(str, args[1:]),
        ],
    )


def client_for(env: UpdateEnv, host_id: str) -> TestClient:
    return TestClient(create_app(env.settings.model_copy(update={"host_id": host_id})))


def release_of(check: dict[str, Any], version: str) -> dict[str, Any]:
    return next(r for r in check["releases"] if r["version"] == version)


def test_a_staged_rollout_reaches_hosts_in_plan_order(update_env: UpdateEnv) -> None:
    artifact = built_release(NEWER, update_env.repo.work / "dist")
    added = tuf_repo(update_env, "add", artifact, "--rollout", "50%@0h,100%@30d")
    assert added.exit_code == 0, added.output
    assert "rollout 50%@0h,100%@30d (running, at 50% now)" in added.output

    early = client_for(update_env, host_at(NEWER, 0.0, 0.5))
    check = early.get("/api/v1/update/check", headers=update_env.auth("viewer")).json()
    place = release_of(check, NEWER)["rollout"]
    assert place["percent_now"] == 50 and place["eligible"] and place["staged"]
    assert check["update_available"]["version"] == NEWER and check["waiting_for"] is None
    assert update_env.run_update(early)["to_version"] == NEWER


def test_a_host_the_plan_has_not_reached_completes_without_installing_and_says_when(
    update_env: UpdateEnv,
) -> None:
    artifact = built_release(NEWER, update_env.repo.work / "dist")
    assert tuf_repo(update_env, "add", artifact, "--rollout", "50%@0h,100%@30d").exit_code == 0
    late = client_for(update_env, host_at(NEWER, 0.5, 1.0))

    check = late.get("/api/v1/update/check", headers=update_env.auth("viewer")).json()
    place = release_of(check, NEWER)["rollout"]
    assert not place["eligible"] and place["eligible_at"] is not None
    assert check["update_available"] is None and check["waiting_for"]["version"] == NEWER

    done = update_env.run_update(late)
    assert done["status"] == "complete" and not done["requires_restart"]
    assert "has not reached this host yet: this host becomes eligible at" in done["message"]
    assert update_env.layout.current_version is None  # nothing installed
    record = late.get("/api/v1/update/history", headers=update_env.auth()).json()["records"][-1]
    assert record["outcome"] == "not_eligible" and record["waiting"] == NEWER

    # Naming the version is an admin's explicit choice: it overrides the plan.
    named = update_env.run_update(late, {"target_version": NEWER})
    assert named["status"] == "complete" and update_env.layout.current_version == NEWER


def test_a_plan_signed_days_after_it_was_staged_starts_at_each_hosts_first_sight(
    update_env: UpdateEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20, medium 9: 10/50/100 % over 72 h, signed four days late, is not 100 % at once."""
    artifact = built_release(NEWER, update_env.repo.work / "dist")
    four_days_ago = datetime.now(UTC) - timedelta(days=4)
    # The release time the holders sign is when it was staged: four days before publication.
    monkeypatch.setenv(TRUST_CLOCK_ENV, "1")  # targets v2 expires before v1, staged earlier
    publisher = Publisher(
        update_env.repo.store, Keyring.from_dir(update_env.repo.keys), clock=lambda: four_days_ago
    )
    publisher.add_release(artifact, ["stable"], parse_plan("10%@0h,50%@24h,100%@72h"))
    Publisher(update_env.repo.store, Keyring.from_dir(update_env.repo.keys)).refresh(2)

    last_wave = client_for(update_env, host_at(NEWER, 0.5, 1.0))
    check = last_wave.get("/api/v1/update/check", headers=update_env.auth("viewer")).json()
    place = release_of(check, NEWER)["rollout"]
    assert (place["percent_now"], place["eligible"]) == (10, False)
    first_sight = datetime.fromisoformat(check["checked_at"])
    waits_until = datetime.fromisoformat(place["eligible_at"])
    assert timedelta(hours=23) < waits_until - first_sight <= timedelta(hours=72)
    done = update_env.run_update(last_wave)
    assert done["status"] == "complete" and update_env.layout.current_version is None
    # The first wave takes it at once, as the plan says.
    first_wave = client_for(update_env, host_at(NEWER, 0.0, 0.1))
    check = first_wave.get("/api/v1/update/check", headers=update_env.auth("viewer")).json()
    assert check["update_available"]["version"] == NEWER


def test_a_new_plan_and_pause_resume_are_signed_and_followed(update_env: UpdateEnv) -> None:
    artifact = built_release(NEWER, update_env.repo.work / "dist")
    assert tuf_repo(update_env, "add", artifact, "--rollout", "10%@0h,100%@30d").exit_code == 0
    late = client_for(update_env, host_at(NEWER, 0.5, 1.0))

    paused = tuf_repo(update_env, "rollout", NEWER, "--pause")
    assert paused.exit_code == 0 and "(paused, at 10% now)" in paused.output
    check = late.get("/api/v1/update/check", headers=update_env.auth()).json()
    assert release_of(check, NEWER)["rollout"]["paused"]
    assert release_of(check, NEWER)["rollout"]["eligible_at"] is None

    assert tuf_repo(update_env, "rollout", NEWER, "--resume").exit_code == 0
    widened = tuf_repo(update_env, "rollout", NEWER, "--plan", "100%@0h")
    assert widened.exit_code == 0, widened.output
    # This host first saw the release a moment after it was signed and runs every plan of
    # it that much later (caio/update/sightings.py): under load that moment is not zero.
    deadline = time.monotonic() + 30
    while not (found := release_of(late.get(CHECK, headers=update_env.auth()).json(), NEWER))[
        "rollout"
    ]["eligible"]:
        assert found["rollout"]["eligible_at"] is not None, found
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
    assert update_env.run_update(late)["to_version"] == NEWER

    status = CliRunner().invoke(tuf_repo_app, ["status", "--repo", str(update_env.repo.dir)])
    assert f"{NEWER} (stable), released " in status.output
    assert "rollout 100%@0h (running, at 100% now)" in status.output


def test_a_plan_change_needs_the_offline_targets_key_and_shows_what_changed(
    update_env: UpdateEnv,
) -> None:
    artifact = built_release(NEWER, update_env.repo.work / "dist")
    assert tuf_repo(update_env, "add", artifact, "--rollout", "10%@0h").exit_code == 0
    online_only = update_env.repo.keys / "online"
    staged = tuf_repo(update_env, "withdraw", NEWER, "--reason", "x", keys=online_only)
    assert staged.exit_code == EXIT_SIGNATURES_NEEDED, staged.output
    status = CliRunner().invoke(tuf_repo_app, ["status", "--repo", str(update_env.repo.dir)])
    target = f"caio/{NEWER}/caio-{NEWER}.tar.gz"
    assert f"target changed {target}: same bytes, signed fields withdrawn" in status.output
    # Until the holders sign, hosts see the published plan: not withdrawn.
    check = update_env.client().get("/api/v1/update/check", headers=update_env.auth()).json()
    assert release_of(check, NEWER)["withdrawn"] is None


def test_a_withdrawn_release_is_never_chosen_by_a_host_itself(update_env: UpdateEnv) -> None:
    running = update_env.publish("1.0.0")
    assert running.exists()
    update_env.publish(NEWER)
    withdrawn = tuf_repo(update_env, "withdraw", NEWER, "--reason", "corrupts the cache")
    assert withdrawn.exit_code == 0 and "WITHDRAWN" in withdrawn.output
    client = update_env.client()

    check = client.get("/api/v1/update/check", headers=update_env.auth("viewer")).json()
    assert release_of(check, NEWER)["withdrawn"]["reason"] == "corrupts the cache"
    assert check["update_available"] is None and check["running_withdrawn"] is None
    done = update_env.run_update(client)
    assert done["status"] == "complete" and "up to date" in done["message"]

    refused = update_env.run_update(client, {"target_version": NEWER})
    assert refused["error"]["code"] == "release_withdrawn"
    assert "corrupts the cache" in refused["error"]["message"]
    forced = update_env.run_update(client, {"target_version": NEWER, "allow_withdrawn": True})
    assert forced["status"] == "complete" and update_env.layout.current_version == NEWER

    # A host still running a withdrawn release is told so.
    assert tuf_repo(update_env, "withdraw", "1.0.0").exit_code == 0
    check = client.get("/api/v1/update/check", headers=update_env.auth("viewer")).json()
    assert check["running_withdrawn"] is not None


def test_a_release_withdrawn_after_it_was_installed_warns_when_it_starts(
    update_env: UpdateEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 20, low: installed, then withdrawn, then restarted into: the log, /health,
    /api/v1/version, the metric and the console say so; the service stays live."""
    update_env.publish(NEWER)
    client = update_env.client()
    assert update_env.run_update(client)["to_version"] == NEWER  # active, awaiting a restart
    withdrawn = tuf_repo(update_env, "withdraw", NEWER, "--reason", "corrupts the cache")
    assert withdrawn.exit_code == 0, withdrawn.output
    assert client.get("/api/v1/update/check", headers=update_env.auth()).status_code == 200
    assert client.get("/health").json()["withdrawn"] is False  # 1.0.0 runs here

    # The restart: a process whose own manifest says NEWER, before it has checked.
    manifest = write_manifest(
        update_env.repo.work / "newer-manifest.json",
        version=NEWER,
        update_url=update_env.repo.url,
        channel="stable",
    )
    caplog.set_level(logging.WARNING, logger="caio")
    restarted = TestClient(
        create_app(update_env.settings.model_copy(update={"manifest": manifest}))
    )
    assert f"this process runs {NEWER}, which its publisher withdrew on" in caplog.text
    assert "(corrupts the cache)" in caplog.text
    health = restarted.get("/health")
    assert health.status_code == 200 and health.json() == {
        "status": "ok",
        "version": NEWER,
        "withdrawn": True,
    }
    assert restarted.get("/api/v1/version").json()["withdrawn"] is True
    metrics = restarted.get("/metrics", headers=update_env.auth("viewer")).text
    assert "caio_running_withdrawn 1.0" in metrics


def test_bad_fleet_commands_are_usage_errors_or_name_what_is_missing(
    update_env: UpdateEnv,
) -> None:
    artifact = built_release(NEWER, update_env.repo.work / "dist")
    bad_plan = tuf_repo(update_env, "add", artifact, "--rollout", "50%@0h,10%@1h")
    assert bad_plan.exit_code == EXIT_USAGE and "must not decrease" in bad_plan.output
    both = tuf_repo(update_env, "rollout", NEWER, "--pause", "--resume")
    assert both.exit_code == EXIT_USAGE and "exactly one of" in both.output
    missing = tuf_repo(update_env, "withdraw", "9.9.9")
    assert missing.exit_code == 1 and "9.9.9 is not published" in missing.output
    assert tuf_repo(update_env, "add", artifact).exit_code == 0
    no_plan = tuf_repo(update_env, "rollout", NEWER, "--pause")
    assert no_plan.exit_code == 1 and "has no rollout plan" in no_plan.output


def test_the_host_id_is_random_kept_and_can_be_set(update_env: UpdateEnv) -> None:
    first = update_env.client().get("/api/v1/update/check", headers=update_env.auth()).json()
    again = update_env.client().get("/api/v1/update/check", headers=update_env.auth()).json()
    assert first["host_id"] == again["host_id"] and len(first["host_id"]) == 32
    path = update_env.settings.home / "state" / "host_id"
    assert path.stat().st_mode & 0o777 == 0o600
    chosen = client_for(update_env, "web-7.eu").get(
        "/api/v1/update/check", headers=update_env.auth()
    )
    assert chosen.json()["host_id"] == "web-7.eu"
