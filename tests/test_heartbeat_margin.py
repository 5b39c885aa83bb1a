"""The heartbeat's margin and clock (issue 20, high 3 and medium 4), on libfaketime calendars.

Each command is the real tuf-repo CLI in its own process, its clock set by
libfaketime, as a cron host with a wrong or a late clock would run it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.test_trust_lifecycle import EXIT_FAILED, EXIT_OK, _libfaketime, artifact

pytestmark = pytest.mark.slow  # real processes on faked clocks

T = datetime(2027, 3, 1, tzinfo=UTC)
SHIPPED = Path(__file__).resolve().parent.parent / "deploy" / "publisher"


def at(when: datetime, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """`tuf-repo ARGS` in a process whose clock reads ``when`` (and then runs on)."""
    env = {
        **os.environ,
        "LD_PRELOAD": _libfaketime(),
        "FAKETIME": f"@{when:%Y-%m-%d %H:%M:%S}",
        "FAKETIME_DONT_RESET": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "tuf_repo.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def listing(repo: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((repo / "metadata").iterdir())}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    made = at(T, "init", "--repo", tmp_path / "repo", "--keys", tmp_path / "keys")
    assert made.returncode == EXIT_OK, made.stdout + made.stderr
    return tmp_path / "repo"


def test_a_clock_behind_the_repository_publishes_nothing_and_says_so(
    repo: Path, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    online = keys / "online"
    assert at(T + timedelta(hours=1), "refresh", "--repo", repo, "--keys", online).returncode == 0
    before = listing(repo)

    behind = T - timedelta(days=2)  # the cron host's clock two days behind
    cron = at(behind, "refresh", "--repo", repo, "--keys", online)
    assert cron.returncode == EXIT_FAILED, cron.stdout + cron.stderr
    assert "is behind the previous refresh" in cron.stderr and "looks wrong" in cron.stderr
    (repo / "heartbeat.json").unlink()  # no record of earlier runs: the timestamp tells
    cron = at(behind, "refresh", "--repo", repo, "--keys", online, "--within", "5")
    assert cron.returncode == EXIT_FAILED, cron.stdout + cron.stderr
    assert "behind the time the published timestamp was signed" in cron.stderr
    add = at(behind, "add", "--repo", repo, "--keys", keys, artifact(tmp_path, "1.1.0"))
    assert add.returncode == EXIT_FAILED, add.stdout + add.stderr
    assert "would expire" in add.stderr and "looks behind" in add.stderr
    assert listing(repo) == before  # nothing was published
    assert not (repo / "staged").exists() or not any((repo / "staged").iterdir())

    fixed = at(T + timedelta(hours=2), "refresh", "--repo", repo, "--keys", online)
    assert fixed.returncode == EXIT_OK, fixed.stdout + fixed.stderr


def test_a_daily_cron_is_warned_that_it_has_no_margin_and_an_hourly_timer_is_not(
    repo: Path, tmp_path: Path
) -> None:
    online = tmp_path / "keys" / "online"
    for hour in range(1, 25):  # the shipped timer: hourly, never a timestamp under 17 h
        run = at(T + timedelta(hours=hour), "refresh", "--repo", repo, "--keys", online)
        assert run.returncode == EXIT_OK, run.stdout + run.stderr
        assert "no margin" not in run.stderr, (hour, run.stderr)
    timestamp = (repo / "metadata" / "timestamp.json").read_text()
    assert '"expires": "2027-03-02T' in timestamp or '"expires": "2027-03-03T' in timestamp

    daily = at(T + timedelta(days=2), "refresh", "--repo", repo, "--keys", online)
    assert daily.returncode == EXIT_OK, daily.stdout + daily.stderr
    assert "WARNING: no margin: refresh last ran 24.0 h ago" in daily.stderr
    assert "tuf-repo-refresh.timer" in daily.stderr


def shipped(command: str, repo: Path) -> tuple[str, str, list[str]]:
    """The shipped timer and service of ``tuf-repo COMMAND``, and the service's command
    line with its repository replaced by ``repo``."""
    timer = (SHIPPED / f"tuf-repo-{command}.timer").read_text()
    service = (SHIPPED / f"tuf-repo-{command}.service").read_text()
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    words = shlex.split(exec_start.removeprefix("ExecStart="))
    assert words[1:3] == [command, "--repo"]
    words[words.index("--repo") + 1] = str(repo)
    return timer, service, words


def test_the_shipped_timer_is_hourly_and_its_service_command_works(
    repo: Path, tmp_path: Path
) -> None:
    timer, service, words = shipped("refresh", repo)
    assert "OnCalendar=hourly" in timer and "Persistent=true" in timer
    words[words.index("--keys") + 1] = str(tmp_path / "keys" / "online")
    run = at(T + timedelta(hours=1), *words[1:])  # the shipped options, as systemd runs them
    assert run.returncode == EXIT_OK, run.stdout + run.stderr
    assert "SuccessExitStatus=3" in service  # "signatures needed" is news, not a failure


def test_the_shipped_prune_timer_is_daily_and_its_service_command_works(repo: Path) -> None:
    timer, _, words = shipped("prune", repo)
    assert "OnCalendar=daily" in timer and "Persistent=true" in timer
    run = at(T + timedelta(hours=1), *words[1:])  # the shipped options, as systemd runs them
    assert run.returncode == EXIT_OK, run.stdout + run.stderr
    assert run.stdout.startswith("removed 0 files")  # nothing superseded a week ago yet
    short = at(T + timedelta(hours=1), "prune", "--repo", str(repo), "--keep-days", "0.5")
    assert short.returncode == 1 and "shorter than the timestamp's lifetime" in short.stderr
