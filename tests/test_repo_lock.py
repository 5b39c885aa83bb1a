"""One writer at a time (issue 20, medium 6), with real tuf-repo processes racing.

Without a lock, `add` racing `refresh` published two different snapshot and
timestamp files under the same version numbers, and two signers both
published root v2.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.background import end, spawn
from tests.test_trust_lifecycle import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SIGNATURES,
    artifact,
    ceremony,
    tuf_repo,
)
from tuf_repo import RepoServer, verify_repository
from tuf_repo.lock import HOLD_ENV, LOCK_NAME

pytestmark = pytest.mark.slow  # real tuf-repo processes

__all__ = ["ceremony"]  # the fixture, shared with the trust lifecycle tests


def start(*args: str | Path, **env: str) -> subprocess.Popen[str]:
    """A tuf-repo command in the background."""
    return spawn(
        [sys.executable, "-m", "tuf_repo.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **env},
    )


def wait_for_holder(repo: Path, proc: subprocess.Popen[str]) -> None:
    """Until ``proc`` holds the lock (the file names the last holder, who may be gone)."""
    lock = repo / LOCK_NAME
    deadline = time.monotonic() + 30
    while not (lock.exists() and f'"pid": {proc.pid},' in lock.read_text()):
        assert time.monotonic() < deadline, "the first command never took the lock"
        time.sleep(0.02)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        end(proc, grace=0)
    return proc.returncode, out, err


def test_a_second_writer_waits_or_stops_naming_the_holder_and_changes_nothing(
    ceremony: tuple[Path, Path, RepoServer], tmp_path: Path
) -> None:
    repo, keys, _ = ceremony
    release = artifact(tmp_path, "1.1.0")
    slow_add = start("add", "--repo", repo, "--keys", keys, release, **{HOLD_ENV: "3"})
    try:
        wait_for_holder(repo, slow_add)
        before = sorted(p.name for p in (repo / "metadata").iterdir())
        busy = tuf_repo("refresh", "--repo", repo, "--keys", keys / "online", "--wait", "0.5")
        assert busy.returncode == EXIT_FAILED, busy.stdout + busy.stderr
        assert f"pid {slow_add.pid}, `tuf-repo add`" in busy.stderr
        assert "waited 0.5 s and changed nothing" in busy.stderr
        assert sorted(p.name for p in (repo / "metadata").iterdir()) == before
        patient = start("refresh", "--repo", repo, "--keys", keys / "online", "--within", "5")
        code, out, err = finish(slow_add)
        assert code == EXIT_OK, out + err
        code, out, err = finish(patient)  # it waited, then worked on top of the release
        assert code == EXIT_OK, out + err
        assert "refreshed snapshot, timestamp" in out
    finally:
        end(slow_add, grace=0)
    snapshots = sorted(p.name for p in (repo / "metadata").glob("*.snapshot.json"))
    assert snapshots == ["1.snapshot.json", "2.snapshot.json", "3.snapshot.json"]
    report = verify_repository(repo, repo / "metadata" / "1.root.json")
    assert report.releases == ["1.1.0"]


def test_two_holders_signing_at_once_publish_root_v2_once(
    ceremony: tuple[Path, Path, RepoServer], tmp_path: Path
) -> None:
    repo, keys, _ = ceremony
    holders = tmp_path / "holders"
    shutil.move(keys / "offline", holders)
    a, b, c = sorted(holders.glob("root-*.json"))
    cron = tuf_repo("refresh", "--repo", repo, "--keys", keys / "online", "--within", "400")
    assert cron.returncode == EXIT_SIGNATURES
    assert tuf_repo("sign", "--repo", repo, "--key", a, "--yes", "root").returncode == (
        EXIT_SIGNATURES
    )
    online = keys / "online"
    first = start(
        "sign", "--repo", repo, "--key", b, "--yes", "--keys", online, "root", **{HOLD_ENV: "2"}
    )
    try:
        wait_for_holder(repo, first)
        second = start("sign", "--repo", repo, "--key", c, "--yes", "--keys", online, "root")
        results = [finish(first), finish(second)]
    finally:
        end(first, grace=0)
    assert results[0][0] == EXIT_OK, results[0]
    assert "published root v2" in results[0][1]
    assert results[1][0] == EXIT_FAILED, results[1]
    assert "nothing is staged for root" in results[1][2]
    assert sorted(p.name for p in (repo / "metadata").glob("*.root.json")) == [
        "1.root.json",
        "2.root.json",
    ]
    verify_repository(repo, repo / "metadata" / "1.root.json")
