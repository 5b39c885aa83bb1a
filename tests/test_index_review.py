"""The release index in review and on the host (issue 20, medium 8).

A staged index that re-lists a withdrawn release at 100 % was signed on its
digest, because the review said only "target changed caio/index.json", and
the host offered the withdrawn release although the target's own signed
metadata still said withdrawn.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from tuf.api.metadata import TargetFile

from caio.core.release_format import INDEX_PATH, render_index
from tests.test_trust_lifecycle import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SIGNATURES,
    artifact,
    ceremony,
    tuf_repo,
)
from tests.update_fixtures import NEWER, UpdateEnv
from tuf_repo import RepoServer, RepoStore
from tuf_repo.releases import read_index

__all__ = ["ceremony"]  # the fixture, shared with the trust lifecycle tests


def relist_without_withdrawal(store: RepoStore, md_path: Path, version: str) -> None:
    """What the cron host can do: rewrite the index a staged targets lists, un-withdrawing."""
    staged = json.loads(md_path.read_text())
    info = staged["signed"]["targets"][INDEX_PATH]
    old = store.target_file(INDEX_PATH, info["hashes"]["sha256"]).read_bytes()
    doc = json.loads(old)
    for entry in doc["releases"]:
        if entry["version"] == version:
            entry.pop("withdrawn")
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    digest = hashlib.sha256(data).hexdigest()
    path = store.target_file(INDEX_PATH, digest)
    path.write_bytes(data)
    staged["signed"]["targets"][INDEX_PATH] = {"length": len(data), "hashes": {"sha256": digest}}
    md_path.write_text(json.dumps(staged))


@pytest.mark.slow
def test_a_staged_index_that_lifts_a_withdrawal_is_shown_and_refused(
    ceremony: tuple[Path, Path, RepoServer], tmp_path: Path
) -> None:
    repo, keys, _ = ceremony
    assert (
        tuf_repo("add", "--repo", repo, "--keys", keys, artifact(tmp_path, "1.1.0")).returncode == 0
    )
    withdrawn = tuf_repo(
        "withdraw", "--repo", repo, "--keys", keys, "1.1.0", "--reason", "corrupts state"
    )
    assert withdrawn.returncode == EXIT_OK, withdrawn.stdout + withdrawn.stderr
    holder = tmp_path / "holder"
    shutil.move(keys / "offline", holder)
    cron = tuf_repo("refresh", "--repo", repo, "--keys", keys / "online", "--within", "100")
    assert cron.returncode == EXIT_SIGNATURES
    relist_without_withdrawal(RepoStore(repo), repo / "staged" / "targets.json", "1.1.0")

    status = tuf_repo("status", "--repo", repo)
    assert "index: release 1.1.0 withdrawn: {" in status.stdout and "-> null" in status.stdout
    assert "index: release 1.1.0 is NO LONGER WITHDRAWN" in status.stdout
    assert "disagree on withdrawn" in status.stdout
    digest = status.stdout.split("staged: targets", 1)[1].splitlines()[0].rsplit(" ", 1)[-1]
    key = next(holder.glob("targets-*.json"))
    signed = tuf_repo("sign", "--repo", repo, "--key", key, "--digest", digest, "targets")
    assert signed.returncode == EXIT_FAILED, signed.stdout + signed.stderr
    assert "disagree on withdrawn" in signed.stderr


@pytest.mark.slow
def test_a_legitimate_withdrawal_reads_as_a_diff(
    ceremony: tuple[Path, Path, RepoServer], tmp_path: Path
) -> None:
    repo, keys, _ = ceremony
    assert (
        tuf_repo("add", "--repo", repo, "--keys", keys, artifact(tmp_path, "1.1.0")).returncode == 0
    )
    holder = tmp_path / "holder"
    key = next((keys / "offline").glob("targets-*.json"))
    holder.mkdir()
    shutil.move(key, holder / key.name)
    staged = tuf_repo("withdraw", "--repo", repo, "--keys", keys, "1.1.0", "--reason", "bad")
    assert staged.returncode == EXIT_SIGNATURES
    status = tuf_repo("status", "--repo", repo)
    assert 'index: release 1.1.0 withdrawn: null -> {"at": ' in status.stdout
    assert "REFUSED" not in status.stdout
    signed = tuf_repo(
        "sign", "--repo", repo, "--key", holder / key.name, "--yes", "--keys", keys, "targets"
    )
    assert signed.returncode == EXIT_OK, signed.stdout + signed.stderr


def test_the_host_refuses_a_release_whose_index_entry_and_signed_metadata_disagree(
    update_env: UpdateEnv,
) -> None:
    update_env.publish(NEWER)
    publisher = update_env.repo.publisher()
    publisher.withdraw(NEWER, "corrupts state")
    store = update_env.repo.store
    targets = store.load("targets")
    entries = [replace(e, withdrawn=None) for e in read_index(publisher.ctx, targets)]
    data = render_index(entries)
    digest = hashlib.sha256(data).hexdigest()
    store.put_target(INDEX_PATH, digest, data)
    targets.signed.targets[INDEX_PATH] = TargetFile(len(data), {"sha256": digest}, INDEX_PATH)
    publisher.commit({"targets": targets})  # signed with the real key: only the index lies

    with update_env.client() as client:
        status = update_env.run_update(client)
    assert status["status"] == "failed", status
    assert status["error"]["code"] == "index_mismatch"
    assert "disagree on withdrawn" in status["error"]["message"]
    assert update_env.layout.current_version != NEWER  # nothing was installed
    assert list(update_env.layout.downloads.iterdir()) == []  # nor downloaded


def test_an_unreadable_index_entry_is_skipped_and_reported_while_the_rest_updates(
    update_env: UpdateEnv,
) -> None:
    """Issue 21, item 12: one malformed entry stopped updates on every host."""
    sign_index_with_junk_entries(update_env)
    with update_env.client() as client:
        check = client.get("/api/v1/update/check", headers=update_env.auth("viewer"))
        assert check.status_code == 200, check.text
        body = check.json()
        assert body["update_available"]["version"] == NEWER
        assert body["skipped_entries"] == [
            "entry 2: 9.9.9: its channels must be a list of names",
            "entry 3: not an object but str",
        ]
        assert update_env.run_update(client)["to_version"] == NEWER


def sign_index_with_junk_entries(update_env: UpdateEnv) -> None:
    """NEWER published, then an index with two unreadable entries signed by the real key."""
    update_env.publish(NEWER)
    publisher = update_env.repo.publisher()
    store = update_env.repo.store
    targets = store.load("targets")
    doc = json.loads(render_index(read_index(publisher.ctx, targets)))
    doc["releases"].append({"version": "9.9.9", "target": "x", "channels": 5})
    doc["releases"].append("a string instead of an object")
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    digest = hashlib.sha256(data).hexdigest()
    store.put_target(INDEX_PATH, digest, data)
    targets.signed.targets[INDEX_PATH] = TargetFile(len(data), {"sha256": digest}, INDEX_PATH)
    publisher.commit({"targets": targets})  # signed: a publisher bug, not an attack
