"""Each role is staged and published on its own (issue 20, high 2 and medium 10).

A root waiting for its holders used to hold back everything: a targets
re-signing that came due could not be staged, the targets holder was told
"nothing is staged", and targets expired under every client. Real tuf-repo
processes, a served repository and python-tuf's ngclient as the client.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tuf.ngclient import Updater

from tests.test_trust_lifecycle import (
    EXIT_OK,
    EXIT_SIGNATURES,
    artifact,
    ceremony,
    client,
    tuf_repo,
)
from tuf_repo import RepoServer

pytestmark = pytest.mark.slow  # real tuf-repo processes

__all__ = ["ceremony"]  # the fixture, shared with the trust lifecycle tests


def staged_groups(repo: Path) -> list[list[str]]:
    groups: list[list[str]] = json.loads((repo / "staged" / "groups.json").read_text())["groups"]
    return sorted(groups)


def fresh_client(server: RepoServer, repo: Path, work: Path) -> Updater:
    updater = client(server.url, work, repo / "metadata" / "1.root.json")
    updater.refresh()
    return updater


def test_a_root_awaiting_its_holders_holds_back_neither_targets_nor_a_release(
    ceremony: tuple[Path, Path, RepoServer], tmp_path: Path
) -> None:
    repo, keys, server = ceremony
    holders = tmp_path / "holders"
    shutil.move(keys / "offline", holders)
    root_a = sorted(holders.glob("root-*.json"))[0]
    targets_key = next(holders.glob("targets-*.json"))
    (keys / "one-root").mkdir()
    shutil.copy(root_a, keys / "one-root")

    # A root change with one of its two signatures: staged for the other holders.
    created = tuf_repo("key", "create", "--keys", tmp_path / "new", "--role", "root")
    new_key = Path(created.stdout.strip().rsplit(": ", 1)[1])
    add = tuf_repo("key", "add", "--repo", repo, "--keys", keys, "root", new_key)
    assert add.returncode == EXIT_SIGNATURES, add.stdout + add.stderr
    assert staged_groups(repo) == [["root"]]

    # Targets comes due while root waits: the heartbeat stages it on its own, and
    # the daily message leads with the role that lapses first.
    cron = tuf_repo("refresh", "--repo", repo, "--keys", keys / "online", "--within", "100")
    assert cron.returncode == EXIT_SIGNATURES, cron.stdout + cron.stderr
    assert staged_groups(repo) == [["root"], ["targets"]]
    said = cron.stderr.splitlines()
    assert said[0].startswith("tuf-repo: nearest expiry: targets in 90.0 days"), cron.stderr
    assert said[1].startswith("tuf-repo: targets v2 awaits signatures: 0 of 1"), cron.stderr
    assert "root v2 awaits signatures: 1 of 2" in said[2], cron.stderr

    # Its holder signs it and it publishes alone; root still waits.
    signed = tuf_repo(
        "sign", "--repo", repo, "--key", targets_key, "--yes", "--keys", keys / "online", "targets"
    )
    assert signed.returncode == EXIT_OK, signed.stdout + signed.stderr
    assert "published targets v2" in signed.stdout
    assert staged_groups(repo) == [["root"]]
    assert not (repo / "metadata" / "2.root.json").exists()
    assert fresh_client(server, repo, tmp_path / "c1")  # clients verify it

    # A release with the release key publishes at once, root still waiting.
    release_keys = tmp_path / "release-keys"
    shutil.copytree(keys / "online", release_keys)
    shutil.copy(targets_key, release_keys)
    add_release = tuf_repo(
        "add", "--repo", repo, "--keys", release_keys, artifact(tmp_path, "1.2.0")
    )
    assert add_release.returncode == EXIT_OK, add_release.stdout + add_release.stderr
    updater = fresh_client(server, repo, tmp_path / "c2")
    assert updater.get_targetinfo("caio/1.2.0/caio-1.2.0.tar.gz") is not None
    assert staged_groups(repo) == [["root"]]

    # The root holders finish: root publishes on its own too.
    root_b = sorted(holders.glob("root-*.json"))[1]
    done = tuf_repo(
        "sign", "--repo", repo, "--key", root_b, "--yes", "--keys", keys / "online", "root"
    )
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    assert "published root v2" in done.stdout
    assert not (repo / "staged" / "root.json").exists()
    assert not (repo / "staged" / "groups.json").exists()
    fresh_client(server, repo, tmp_path / "c3")


def test_two_releases_waiting_for_the_release_signer_are_signed_once(
    ceremony: tuple[Path, Path, RepoServer], tmp_path: Path
) -> None:
    """A change to a staged role builds on the staged content: nothing is lost."""
    repo, keys, server = ceremony
    targets_key = next((keys / "offline").glob("targets-*.json"))
    vault = tmp_path / "vault"
    vault.mkdir()
    shutil.move(targets_key, vault / targets_key.name)
    for version in ("1.1.0", "1.2.0"):
        staged = tuf_repo("add", "--repo", repo, "--keys", keys, artifact(tmp_path, version))
        assert staged.returncode == EXIT_SIGNATURES, staged.stdout + staged.stderr
    assert staged_groups(repo) == [["targets"]]
    review = tuf_repo("status", "--repo", repo)
    assert "target added caio/1.1.0/caio-1.1.0.tar.gz" in review.stdout
    assert "target added caio/1.2.0/caio-1.2.0.tar.gz" in review.stdout

    signed = tuf_repo(
        "sign",
        "--repo",
        repo,
        "--key",
        vault / targets_key.name,
        "--yes",
        "--keys",
        keys,
        "targets",
    )
    assert signed.returncode == EXIT_OK, signed.stdout + signed.stderr
    updater = fresh_client(server, repo, tmp_path / "client")
    for version in ("1.1.0", "1.2.0"):
        assert updater.get_targetinfo(f"caio/{version}/caio-{version}.tar.gz") is not None
    index = updater.download_target(updater.get_targetinfo("caio/index.json"))  # type: ignore[arg-type]
    assert [e["version"] for e in json.loads(Path(index).read_text())["releases"]] == [
        "1.1.0",
        "1.2.0",
    ]
