"""Three real CAIO hosts, one repository: a staged rollout, a wider plan, a withdrawal.

Each host is a `caio serve` process with its own home and a host id chosen so
that its place in each release's rollout is known; each runs scheduled
updates (install mode, a one-second interval), so nobody tells a host what to
do: the signed plan does. The release engineer uses the real `tuf-repo` CLI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from caio.core.layout import InstallLayout
from caio.core.rollout import host_position
from tests.background import end
from tests.served import Served, serve
from tests.update_fixtures import NEWER, UpdateEnv, built_release

pytestmark = pytest.mark.slow  # real processes

LATER = "1.2.0"


def tuf_repo(env: UpdateEnv, command: str, *args: str | Path) -> str:
    keys = [] if command == "status" else ["--keys", str(env.repo.keys)]
    done = subprocess.run(
        [sys.executable, "-m", "tuf_repo", command, "--repo", str(env.repo.dir), *keys]
        + [str(a) for a in args],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def host_id(places: dict[str, tuple[float, float]], taken: set[str]) -> str:
    """A new host id whose position in each release's rollout lies in the given [low, high)."""
    return next(
        f"h{n}"
        for n in range(100_000)
        if f"h{n}" not in taken
        and all(low <= host_position(f"h{n}", v) < high for v, (low, high) in places.items())
    )


@dataclass
class Host:
    served: Served
    home: Path

    def installed(self) -> str | None:
        return InstallLayout(self.home).current_version

    def api(self, path: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.served.api("GET", path, role="viewer").json()
        return answer


@pytest.fixture
def hosts(update_env: UpdateEnv, tmp_path: Path) -> Iterator[dict[str, Host]]:
    first_third, the_rest = (0.0, 0.34), (0.34, 1.0)
    wanted = {
        "a": {NEWER: first_third, LATER: first_third},
        "b": {NEWER: the_rest, LATER: the_rest},
        "c": {NEWER: the_rest, LATER: the_rest},
    }
    taken: set[str] = set()
    started = {}
    for name, places in wanted.items():
        taken.add(hid := host_id(places, taken))
        home = tmp_path / f"home-{name}"
        shutil.copytree(update_env.settings.home, home)
        served = serve(
            update_env,
            CAIO_HOME=str(home),
            CAIO_HOST_ID=hid,
            CAIO_AUTO_UPDATE="install",
            CAIO_CHECK_INTERVAL="1",
        )
        started[name] = Host(served, home)
    yield started
    for host in started.values():
        end(host.served.proc)


def eventually(what: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return
        time.sleep(0.2)
    raise AssertionError("it did not happen in time")


def test_a_plan_reaches_a_third_a_wider_plan_the_rest_and_a_withdrawal_stops_it(
    update_env: UpdateEnv, hosts: dict[str, Host]
) -> None:
    a, b, c = hosts["a"], hosts["b"], hosts["c"]
    dist = update_env.repo.work / "dist"

    tuf_repo(update_env, "add", built_release(NEWER, dist), "--rollout", "34%@0h,100%@30d")
    eventually(lambda: a.installed() == NEWER)
    time.sleep(3)  # three more scheduled turns on every host
    assert (b.installed(), c.installed()) == (None, None)
    waiting = b.api("/api/v1/update/check")
    assert waiting["waiting_for"]["version"] == NEWER
    assert waiting["waiting_for"]["rollout"]["percent_now"] == 34
    record = a.api("/api/v1/update/history")["records"][-1]
    assert (record["outcome"], record["by"]) == ("activated", "scheduler")

    tuf_repo(update_env, "rollout", NEWER, "--plan", "100%@0h")
    eventually(lambda: b.installed() == NEWER and c.installed() == NEWER)

    tuf_repo(update_env, "add", built_release(LATER, dist), "--rollout", "34%@0h,100%@1d")
    eventually(lambda: a.installed() == LATER)
    out = tuf_repo(update_env, "withdraw", LATER, "--reason", "leaks file handles")
    assert "WITHDRAWN" in out
    time.sleep(3)
    assert (b.installed(), c.installed()) == (NEWER, NEWER)  # never took the withdrawn release
    check = c.api("/api/v1/update/check")
    later = next(r for r in check["releases"] if r["version"] == LATER)
    assert later["withdrawn"]["reason"] == "leaks file handles"
    assert check["update_available"]["version"] == NEWER  # what it runs next, not LATER
    status = tuf_repo(update_env, "status")
    assert f"{LATER} (stable)" in status and "WITHDRAWN" in status
