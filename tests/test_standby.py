"""The standby child: the update's preflight boots the next release, the restart promotes it.

Real `caio run` processes; one interpreter start per update instead of two,
with every guarantee of the fresh-child path (caio/restart/standby.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.supervisor_fixtures import (
    Supervised,
    release_with_patches,
    start_supervised,
    stop_supervised,
)
from tests.update_fixtures import NEWER, RUNNING, UpdateEnv

pytestmark = pytest.mark.slow  # real processes


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def verdict(env: UpdateEnv) -> dict[str, str]:
    data: dict[str, str] = json.loads((env.layout.state_dir / "standby.json").read_text())
    return data


def test_the_restart_promotes_the_process_that_the_preflight_booted(
    supervised: Supervised,
) -> None:
    supervised.env.publish(NEWER)
    assert supervised.update()["status"] == "complete"
    standby = supervised.state()["standby"]
    assert standby is not None and (standby["version"], standby["ready"]) == (NEWER, True)
    assert verdict(supervised.env)["outcome"] == "ready"
    assert supervised.version() == RUNNING  # waiting: it serves nothing before the restart

    old = supervised.state()["active"]["pid"]
    assert supervised.api("POST", "/api/v1/restart", json={}).status_code == 202
    supervised.wait_for(lambda: supervised.version() == NEWER)  # the old one drains first
    # The new child answers on the shared socket a moment before the supervisor's health
    # check passes and records it as active: wait for the record, then compare.
    supervised.wait_for(lambda: supervised.state()["active"]["pid"] != old)
    assert supervised.state()["active"]["pid"] == standby["pid"]  # no second interpreter
    assert supervised.state()["standby"] is None
    assert any("promoting standby child" in line for line in supervised.log)
    # The promoted process serves the caio.main it imported, not a second copy of it
    # (runpy warned on every update: "found in sys.modules ... unpredictable behaviour").
    assert not [line for line in supervised.log if "Warning" in line], supervised.log


def test_a_release_that_does_not_import_fails_its_preflight_and_leaves_nothing(
    supervised: Supervised,
) -> None:
    anchor = "from fastapi import FastAPI\n"
    broken = {"caio/api/app.py": (anchor, anchor + 'raise ImportError("sick at import")\n')}
    release_with_patches(supervised.env, NEWER, broken)
    final = supervised.update()
    assert final["status"] == "failed"
    assert final["error"]["code"] == "preflight_failed"
    assert "sick at import" in final["error"]["message"]
    layout = supervised.env.layout
    assert not layout.release_dir(NEWER).exists()
    assert list(layout.releases.glob(".unverified*")) == []
    assert layout.current_version == RUNNING
    assert supervised.state()["standby"] is None
    assert verdict(supervised.env)["outcome"] == "failed"
    assert supervised.version() == RUNNING


def test_a_standby_not_needed_in_time_is_stopped_and_the_restart_starts_afresh(
    update_env: UpdateEnv,
) -> None:
    supervised = start_supervised(update_env, {"CAIO_STANDBY_SECONDS": "1"})
    try:
        update_env.publish(NEWER)
        assert supervised.update()["status"] == "complete"
        standby = supervised.state()["standby"]
        assert standby is not None
        supervised.wait_for(lambda: supervised.state()["standby"] is None, timeout=30)
        supervised.wait_for(lambda: not alive(standby["pid"]), timeout=30)

        old = supervised.state()["active"]["pid"]
        assert supervised.api("POST", "/api/v1/restart", json={}).status_code == 202
        supervised.wait_for(lambda: supervised.version() == NEWER)  # the old one drains first
        supervised.wait_for(lambda: supervised.state()["active"]["pid"] != old)  # recorded
        assert supervised.state()["active"]["pid"] != standby["pid"]  # a fresh interpreter
    finally:
        stop_supervised(supervised)


def test_with_standby_off_the_preflight_is_a_throwaway_process(update_env: UpdateEnv) -> None:
    supervised = start_supervised(update_env, {"CAIO_STANDBY_SECONDS": "0"})
    try:
        update_env.publish(NEWER)
        assert supervised.update()["status"] == "complete"
        assert supervised.state()["standby"] is None
        assert not (update_env.layout.state_dir / "standby.json").exists()
        assert supervised.api("POST", "/api/v1/restart", json={}).status_code == 202
        supervised.wait_for(lambda: supervised.version() == NEWER)
    finally:
        stop_supervised(supervised)


def test_stopping_the_supervisor_stops_its_standby(supervised: Supervised) -> None:
    supervised.env.publish(NEWER)
    assert supervised.update()["status"] == "complete"
    pid = supervised.state()["standby"]["pid"]
    assert stop_supervised(supervised) == 0
    assert not alive(pid)
    assert not Path(f"/proc/{pid}").exists()
