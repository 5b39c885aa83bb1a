"""Threshold signing by several people, key rotation, expiry refresh, and bad keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Root

from caio.core.release_format import INDEX_PATH
from tests.tuf_fixtures import PublishedRepo, move_key, publish_repo
from tuf_repo import KeyFileError, MetadataError, SignaturesNeeded, TufRepoError, verify_repository
from tuf_repo.keys import read_key_file


def root_keyids(repo: PublishedRepo, version: int) -> set[str]:
    root = Metadata[Root].from_file(str(repo.dir / "metadata" / f"{version}.root.json")).signed
    return set(root.roles["root"].keyids)


def test_root_change_with_one_of_two_keys_is_staged_until_a_second_holder_signs(
    published_repo: PublishedRepo,
) -> None:
    client = published_repo.client()
    client.refresh()
    holder_b = move_key(published_repo.keys, "root", published_repo.work / "holder-b")[0]
    move_key(published_repo.keys, "root", published_repo.work / "holder-c")
    publisher = published_repo.publisher()

    report = publisher.refresh(within_days=400)  # root is due: needs 2 of 3 root keys, 1 here
    assert [(a.role, a.version, a.have, a.need) for a in report.awaiting] == [("root", 2, 1, 2)]
    assert any("root v2 awaits signatures: 1 of 2" in m for m in report.messages)
    assert not (published_repo.dir / "metadata" / "2.root.json").exists()
    # What could be signed here (targets) went out; only root waits, and the heartbeat ran.
    assert "targets" in report.refreshed and "timestamp" in report.refreshed
    status = publisher.status()
    assert [(s.role, s.version, s.status.have, s.status.need) for s in status.staged] == [
        ("root", 2, 1, 2)
    ]
    # A root waiting for its holders holds back no release (issue 20, high 2).
    added = publisher.add_release(published_repo.build("1.0.0"), ["stable"])
    assert added.changed and "published" in added.message
    assert [s.role for s in publisher.status().staged] == ["root"]
    assert published_repo.client("during").get_targetinfo(added.target) is not None

    message = publisher.sign("root", holder_b)
    assert "root v2" in message
    assert (published_repo.dir / "metadata" / "2.root.json").exists()
    assert publisher.status().staged == []
    published_repo.client("after").refresh()  # a fresh client from root v1 follows to v2
    published_repo.client().refresh()  # so does one with cached v1 metadata


def test_signing_with_a_key_that_is_not_the_roles_is_refused(
    published_repo: PublishedRepo,
) -> None:
    move_key(published_repo.keys, "root", published_repo.work / "away", count=2)
    publisher = published_repo.publisher()
    assert publisher.refresh(within_days=400).awaiting
    snapshot_key = next(published_repo.keys.rglob("snapshot-*.json"))
    with pytest.raises(KeyFileError, match="is not a key of root"):
        publisher.sign("root", snapshot_key)
    with pytest.raises(KeyFileError, match="not found"):
        publisher.sign("root", published_repo.work / "no-such-key.json")
    with pytest.raises(TufRepoError, match="nothing is staged for snapshot"):
        publisher.sign("snapshot", snapshot_key)


def test_targets_threshold_two_stages_a_release_until_the_second_signature(
    published_repo: PublishedRepo,
) -> None:
    publisher = published_repo.publisher()
    publisher.rotate("targets", published_repo.keys, threshold=2)
    second = move_key(published_repo.keys, "targets", published_repo.work / "holder-2")[0]

    with pytest.raises(SignaturesNeeded, match="targets v3: 1 of 2"):
        published_repo.publisher().add_release(published_repo.build("1.0.0"), ["stable"])
    client = published_repo.client()
    client.refresh()
    assert client.get_targetinfo("caio/1.0.0/caio-1.0.0.tar.gz") is None

    published_repo.publisher().sign("targets", second)
    client = published_repo.client("second")
    client.refresh()
    assert client.get_targetinfo("caio/1.0.0/caio-1.0.0.tar.gz") is not None
    assert client.get_targetinfo(INDEX_PATH) is not None


def test_a_corrupted_staged_signature_does_not_count(published_repo: PublishedRepo) -> None:
    holder_b = move_key(published_repo.keys, "root", published_repo.work / "b")[0]
    move_key(published_repo.keys, "root", published_repo.work / "c")
    assert published_repo.publisher().refresh(within_days=400).awaiting
    staged_path = published_repo.dir / "staged" / "root.json"
    staged = json.loads(staged_path.read_text())
    sig = staged["signatures"][0]
    sig["sig"] = ("0" if sig["sig"][0] != "0" else "1") + sig["sig"][1:]
    staged_path.write_text(json.dumps(staged))
    with pytest.raises(SignaturesNeeded, match="1 of 2"):
        published_repo.publisher().sign("root", holder_b)
    assert not (published_repo.dir / "metadata" / "2.root.json").exists()


def test_root_rotation_is_followed_by_a_client_holding_the_old_root(
    published_repo: PublishedRepo,
) -> None:
    published_repo.release("1.0.0")
    client = published_repo.client()
    client.refresh()
    old = root_keyids(published_repo, 1)

    published_repo.publisher().rotate("root", published_repo.keys)
    new = root_keyids(published_repo, 2)
    assert not old & new
    assert len(new) == 3
    published_repo.release("1.1.0")

    client = published_repo.client()  # same metadata dir: trusts root v1 from its cache
    client.refresh()
    assert client.get_targetinfo("caio/1.1.0/caio-1.1.0.tar.gz") is not None
    trusted = Metadata[Root].from_file(str(published_repo.work / "client/metadata/root.json"))
    assert trusted.signed.version == 2


def test_timestamp_rotation_is_followed_and_the_old_key_is_no_longer_trusted(
    published_repo: PublishedRepo,
) -> None:
    published_repo.client().refresh()
    old_key = read_key_file(next(published_repo.keys.rglob("timestamp-*.json")))
    published_repo.publisher().rotate("timestamp", published_repo.keys)
    published_repo.client().refresh()  # cached client follows the rotation

    # A newer timestamp signed only by the retired key is rejected.
    ts_path = published_repo.dir / "metadata" / "timestamp.json"
    forged = Metadata.from_file(str(ts_path))
    forged.signed.version += 1
    forged.signatures.clear()
    forged.sign(old_key.signer())
    forged.to_file(str(ts_path))
    with pytest.raises(UnsignedMetadataError):
        published_repo.client("late").refresh()


def test_refresh_resigns_only_what_expires_within_the_window(tmp_path: Path) -> None:
    repo = publish_repo(tmp_path, expiry_days={"timestamp": 1, "snapshot": 3})
    try:
        publisher = repo.publisher()
        assert publisher.refresh(within_days=0.5).refreshed == []
        assert publisher.refresh(within_days=2).refreshed == ["snapshot", "timestamp"]
        status = {r.role: r.version for r in publisher.status().roles}
        assert status == {"root": 1, "targets": 1, "snapshot": 2, "timestamp": 2}
        assert publisher.refresh(within_days=5).refreshed == ["snapshot", "timestamp"]
        verify_repository(repo.dir, repo.trusted_root)
    finally:
        repo.server.stop()


def test_refresh_of_targets_without_its_offline_key_asks_for_a_signature(
    published_repo: PublishedRepo,
) -> None:
    move_key(published_repo.keys, "targets", published_repo.work / "vault")
    report = published_repo.publisher().refresh(within_days=100)
    assert [a.role for a in report.awaiting] == ["targets"]
    assert [s.role for s in published_repo.publisher().status().staged] == ["targets"]


def test_add_without_the_online_keys_fails_and_changes_nothing(
    published_repo: PublishedRepo,
) -> None:
    move_key(published_repo.keys, "snapshot", published_repo.work / "elsewhere")
    before = sorted(p.name for p in (published_repo.dir / "metadata").iterdir())
    with pytest.raises(KeyFileError, match="snapshot key is not in the key directory"):
        published_repo.publisher().add_release(published_repo.build("1.0.0"), ["stable"])
    after = sorted(p.name for p in (published_repo.dir / "metadata").iterdir())
    assert after == before
    verify_repository(published_repo.dir, published_repo.trusted_root)


def test_encrypted_keys_need_the_right_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = publish_repo(tmp_path, passphrase="correct horse")
    try:
        key_text = next(repo.keys.rglob("targets-*.json")).read_text()
        assert "ENCRYPTED PRIVATE KEY" in key_text
        artifact = repo.build("1.0.0")
        monkeypatch.delenv("TUF_REPO_PASSPHRASE", raising=False)
        with pytest.raises(KeyFileError, match="encrypted: set TUF_REPO_PASSPHRASE"):
            repo.publisher().add_release(artifact, ["stable"])
        monkeypatch.setenv("TUF_REPO_PASSPHRASE", "wrong")
        with pytest.raises(KeyFileError, match="wrong passphrase"):
            repo.publisher().add_release(artifact, ["stable"])
        monkeypatch.setenv("TUF_REPO_PASSPHRASE", "correct horse")
        assert repo.publisher().add_release(artifact, ["stable"]).changed
    finally:
        repo.server.stop()


def test_corrupt_published_metadata_is_a_clear_error(published_repo: PublishedRepo) -> None:
    (published_repo.dir / "metadata" / "1.targets.json").write_text('{"signed": ')
    with pytest.raises(MetadataError, match=r"1\.targets\.json is corrupt"):
        published_repo.publisher().add_release(published_repo.build("1.0.0"), ["stable"])
    with pytest.raises(MetadataError, match="verification failed"):
        verify_repository(published_repo.dir, published_repo.trusted_root)


def test_verify_catches_a_tampered_target(published_repo: PublishedRepo) -> None:
    published_repo.release("1.0.0")
    verify_repository(published_repo.dir, published_repo.trusted_root)
    artifact = next((published_repo.dir / "targets" / "caio" / "1.0.0").glob("*.tar.gz"))
    data = bytearray(artifact.read_bytes())
    data[-1] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(MetadataError, match="LengthOrHashMismatchError"):
        verify_repository(published_repo.dir, published_repo.trusted_root)


def test_verify_catches_a_signature_that_does_not_verify(published_repo: PublishedRepo) -> None:
    path = published_repo.dir / "metadata" / "timestamp.json"
    doc = json.loads(path.read_text())
    doc["signed"]["version"] += 1  # the signature no longer covers what is signed
    path.write_text(json.dumps(doc))
    with pytest.raises(MetadataError, match="UnsignedMetadataError"):
        verify_repository(published_repo.dir, published_repo.trusted_root)


def test_a_key_file_can_name_a_signer_uri_instead_of_a_pem(published_repo: PublishedRepo) -> None:
    """The KMS/HSM seam: the key file names a securesystemslib signer URI (here file2:)."""
    path = next(published_repo.keys.rglob("targets-*.json"))
    doc = json.loads(path.read_text())
    pem = published_repo.work / "targets-private.pem"
    pem.write_text(doc.pop("private_pem"))
    doc["uri"] = f"file2:{pem}"
    path.write_text(json.dumps(doc))
    assert published_repo.publisher().add_release(published_repo.build("1.0.0"), ["stable"]).changed
    verify_repository(published_repo.dir, published_repo.trusted_root)

    doc["uri"] = "nosuchkms:projects/x/keys/y"
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyFileError, match="cannot open signer"):
        published_repo.publisher().add_release(published_repo.build("1.1.0"), ["stable"])
