"""A publication is all of its files or none (issue 20, medium 5): SIGKILL at every write.

Each command runs as a real tuf-repo process that kills itself at its N-th
durable step (TUF_REPO_FAULT_AT=N), for every N until it completes. After
each crash, clients (python-tuf's ngclient, one fresh and one with the
metadata it held before) verify the repository as it was, or, only while a
committed publication is half moved into place, `status` names it; the next
command completes it, and clients verify again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tuf.api.exceptions import DownloadError, RepositoryError
from tuf.ngclient import Updater

from caio.core.delta import delta_target_path
from tests.test_trust_lifecycle import EXIT_OK, EXIT_SIGNATURES, artifact
from tuf_repo import RepoServer
from tuf_repo.transaction import FAULT_ENV

pytestmark = pytest.mark.slow  # real processes, killed

KILLED = -signal.SIGKILL
MOST_STEPS = 40  # a bound on the loop: every command here has far fewer durable steps


def tuf_repo(
    state: Path, *args: str | Path, fault: int | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TUF_REPO_STATE_DIR": str(state)}
    env.pop(FAULT_ENV, None)
    if fault is not None:
        env[FAULT_ENV] = str(fault)
    return subprocess.run(
        [sys.executable, "-m", "tuf_repo.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def serving(repo: Path) -> Iterator[str]:
    server = RepoServer(repo, quiet=True).start()
    try:
        yield server.url
    finally:
        server.stop()


def refresh_client(repo: Path, metadata_dir: Path) -> None:
    with serving(repo) as url:
        anchor = (repo / "metadata" / "1.root.json").read_bytes()
        Updater(str(metadata_dir), f"{url}/metadata/", bootstrap=anchor).refresh()


def clients_verify(repo: Path, work: Path, held: Path) -> None:
    """A fresh client, and one that holds the metadata from before the command, both refresh."""
    for name, metadata in (("fresh", None), ("held", held)):
        where = work / name
        shutil.rmtree(where, ignore_errors=True)
        if metadata is not None:
            shutil.copytree(metadata, where)
        else:
            where.mkdir(parents=True)
        refresh_client(repo, where)


Command = Callable[[Path, Path, Path], list[str | Path]]


def kill_at_every_step(
    tmp_path: Path,
    prepare: Callable[[Path, Path, Path], None],
    command: Command,
    done: int,
    then: Command | None = None,
    whole: Callable[[Path], None] = lambda repo: None,
) -> int:
    """Run ``command`` killed at step 1, 2, ... until it completes; returns the crashes.

    After each crash ``then`` (default: the command again) runs, and ``whole(repo)``
    checks that what clients are served is the change entirely or not at all.
    """
    pristine = tmp_path / "pristine"
    repo, keys, state = pristine / "repo", pristine / "keys", pristine / "state"
    assert tuf_repo(state, "init", "--repo", repo, "--keys", keys).returncode == EXIT_OK
    prepare(repo, keys, state)
    held = tmp_path / "held-metadata"
    held.mkdir()
    refresh_client(repo, held)
    for step in range(1, MOST_STEPS):
        run_dir = tmp_path / f"step-{step}"
        shutil.copytree(pristine, run_dir)
        repo, keys, state = run_dir / "repo", run_dir / "keys", run_dir / "state"
        crashed = tuf_repo(state, *command(repo, keys, state), fault=step)
        if crashed.returncode != KILLED:
            assert crashed.returncode == done, (step, crashed.stdout + crashed.stderr)
            clients_verify(repo, run_dir / "clients", held)
            whole(repo)
            return step - 1
        status = tuf_repo(state, "status", "--repo", repo)
        assert status.returncode == EXIT_OK, (step, status.stderr)
        try:
            clients_verify(repo, run_dir / "clients", held)  # as it was, or as it is now
        except (RepositoryError, DownloadError) as e:
            # Only while a committed publication is half moved into place (a key
            # rotation's new root before its timestamp), and status says so.
            assert (repo / ".transaction" / "journal.json").exists(), (step, e)
            assert "interrupted after its commit point" in status.stdout, (step, status.stdout)
        else:
            whole(repo)
        again = tuf_repo(state, *(then or command)(repo, keys, state))
        assert again.returncode in (done, EXIT_OK), (step, again.stdout + again.stderr)
        assert not (repo / ".transaction").exists()
        clients_verify(repo, run_dir / "clients", held)
        whole(repo)
        shutil.rmtree(run_dir)
    raise AssertionError(f"the command never completed in {MOST_STEPS} steps")


def test_add_killed_at_every_write_is_completed_or_discarded_by_the_next_command(
    tmp_path: Path,
) -> None:
    release = artifact(tmp_path, "1.1.0")
    crashes = kill_at_every_step(
        tmp_path,
        lambda repo, keys, state: None,
        lambda repo, keys, state: ["add", "--repo", repo, "--keys", keys, release],
        EXIT_OK,
    )
    assert crashes >= 6  # files, the journal, each move into place, the record


def test_remove_killed_at_every_write_leaves_the_release_listed_whole_or_gone_whole(
    tmp_path: Path,
) -> None:
    """A release's target, the delta to it and its index entry leave together, or stay."""
    releases = [artifact(tmp_path, v) for v in ("1.0.0", "1.1.0", "1.2.0")]
    removed = "1.1.0"
    signed = {
        "target": f"caio/{removed}/caio-{removed}.tar.gz",
        "delta to it": delta_target_path("1.0.0", removed),
        "delta from it": delta_target_path(removed, "1.2.0"),  # stays: hosts on 1.1.0 use it
    }

    def publish_three(repo: Path, keys: Path, state: Path) -> None:
        for release in releases:
            added = tuf_repo(state, "add", "--repo", repo, "--keys", keys, release)
            assert added.returncode == EXIT_OK, added.stderr

    def whole(repo: Path) -> None:
        anchor = repo / "metadata" / "1.root.json"
        verified = tuf_repo(
            repo.parent / "state", "verify", "--repo", repo, "--trusted-root", anchor
        )
        assert verified.returncode == EXIT_OK, verified.stdout + verified.stderr
        listed = "ok  releases: 1.0.0, 1.1.0, 1.2.0" in verified.stdout
        assert listed or "ok  releases: 1.0.0, 1.2.0" in verified.stdout, verified.stdout
        found = served_targets(repo, list(signed.values()))
        assert found == {
            signed["target"]: listed,
            signed["delta to it"]: listed,
            signed["delta from it"]: True,
        }

    crashes = kill_at_every_step(
        tmp_path,
        publish_three,
        lambda repo, keys, state: ["remove", "--repo", repo, "--keys", keys, removed],
        EXIT_OK,
        then=lambda repo, keys, state: ["refresh", "--repo", repo, "--keys", keys],
        whole=whole,
    )
    assert crashes >= 6


def served_targets(repo: Path, paths: list[str]) -> dict[str, bool]:
    """Which of ``paths`` a fresh client finds in the signed metadata."""
    with serving(repo) as url, tempfile.TemporaryDirectory() as metadata:
        anchor = (repo / "metadata" / "1.root.json").read_bytes()
        client = Updater(metadata, f"{url}/metadata/", bootstrap=anchor)
        client.refresh()
        return {path: client.get_targetinfo(path) is not None for path in paths}


def test_a_timestamp_rotation_killed_between_root_and_timestamp_never_strands_clients(
    tmp_path: Path,
) -> None:
    """The issue's case: root v2 names a new timestamp key; no timestamp signed by it yet."""
    crashes = kill_at_every_step(
        tmp_path,
        lambda repo, keys, state: None,
        lambda repo, keys, state: ["rotate", "--repo", repo, "--keys", keys, "timestamp"],
        EXIT_OK,
    )
    assert crashes >= 6


def test_staging_killed_at_every_write_never_leaves_half_a_change_to_sign(
    tmp_path: Path,
) -> None:
    """A targets-key rotation without root's threshold: root and targets are staged together."""

    def without_second_root_key(repo: Path, keys: Path, state: Path) -> None:
        away = keys.parent / "away"
        away.mkdir()
        for path in sorted((keys / "offline").glob("root-*.json"))[1:]:
            shutil.move(path, away / path.name)

    crashes = kill_at_every_step(
        tmp_path,
        without_second_root_key,
        lambda repo, keys, state: ["rotate", "--repo", repo, "--keys", keys, "targets"],
        EXIT_SIGNATURES,
    )
    assert crashes >= 3


def test_a_staged_file_left_after_its_publication_is_forgotten_not_a_wedge(
    tmp_path: Path,
) -> None:
    """An older tuf-repo killed between publishing and unstaging left the signed file behind."""
    repo, keys, state = tmp_path / "repo", tmp_path / "keys", tmp_path / "state"
    assert tuf_repo(state, "init", "--repo", repo, "--keys", keys).returncode == EXIT_OK
    away = tmp_path / "away"
    away.mkdir()
    for path in sorted((keys / "offline").glob("root-*.json"))[1:]:
        shutil.move(path, away / path.name)
    online = keys / "online"
    staged = tuf_repo(state, "refresh", "--repo", repo, "--keys", keys, "--within", "400")
    assert staged.returncode == EXIT_SIGNATURES, staged.stdout + staged.stderr
    left_behind = (repo / "staged" / "root.json").read_bytes()
    second = sorted(away.glob("root-*.json"))[0]
    signed = tuf_repo(
        state, "sign", "--repo", repo, "--key", second, "--yes", "--keys", online, "root"
    )
    assert signed.returncode == EXIT_OK, signed.stdout + signed.stderr
    (repo / "staged" / "root.json").write_bytes(left_behind)  # as the crash left it

    status = tuf_repo(state, "status", "--repo", repo)
    assert "staged: nothing" in status.stdout, status.stdout
    cron = tuf_repo(state, "refresh", "--repo", repo, "--keys", online)
    assert cron.returncode == EXIT_OK, cron.stdout + cron.stderr
    assert "forgot staged root: already published" in cron.stderr
    assert not (repo / "staged" / "root.json").exists()
    refresh_client(repo, tmp_path / "client")
