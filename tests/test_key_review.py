"""Keys by value (issue 20, high 1): a key swapped behind its keyid is shown and refused.

The attacker holds what the cron host holds: the repository directory and
the online keys. The root that `refresh` staged for its holders is edited so
that the targets keyid names the attacker's key. Every review must show the
change, and no tuf-repo command may sign, publish or verify such metadata.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner, Key, SSlibKey
from tuf.api.metadata import Metadata, Root

from tests.test_trust_lifecycle import EXIT_FAILED, EXIT_OK, EXIT_SIGNATURES, ceremony, tuf_repo
from tuf_repo import RepoServer
from tuf_repo.keys import read_key_file
from tuf_repo.keyvalues import describe_key, fingerprint, key_digest

pytestmark = pytest.mark.slow  # real tuf-repo processes

__all__ = ["ceremony"]  # the fixture, shared with the trust lifecycle tests


def attacker_key() -> Key:
    return CryptoSigner.generate_ed25519().public_key


def test_a_staged_root_shows_every_key_by_value_with_its_fingerprint(
    ceremony: tuple[Path, Path, RepoServer], tmp_path: Path
) -> None:
    repo, keys, _ = ceremony
    holders = tmp_path / "holders"
    shutil.move(keys / "offline", holders)
    cron = tuf_repo("refresh", "--repo", repo, "--keys", keys / "online", "--within", "400")
    assert cron.returncode == EXIT_SIGNATURES, cron.stderr
    status = tuf_repo("status", "--repo", repo)
    every_key = [*holders.glob("*.json"), *(keys / "online").glob("*.json")]
    for path in every_key:
        key = read_key_file(path).public
        assert f"{describe_key(key.keyid, key)}  (unchanged)" in status.stdout, path
    assert "targets (threshold 1 of 1):" in status.stdout
    assert "root (threshold 2 of 3):" in status.stdout
    # The fingerprint is what openssl computes over the public key: a holder can check it.
    one = read_key_file(next(holders.glob("targets-*.json"))).public
    assert fingerprint(one).startswith("SHA256:") and len(fingerprint(one)) == 71


def test_a_key_replaced_behind_its_keyid_in_a_staged_root_is_shown_and_refused(
    ceremony: tuple[Path, Path, RepoServer], tmp_path: Path
) -> None:
    repo, keys, _ = ceremony
    holders = tmp_path / "holders"
    shutil.move(keys / "offline", holders)
    a, b, _c = sorted(holders.glob("root-*.json"))
    cron = tuf_repo("refresh", "--repo", repo, "--keys", keys / "online", "--within", "400")
    assert cron.returncode == EXIT_SIGNATURES, cron.stderr

    staged_path = repo / "staged" / "root.json"
    staged = json.loads(staged_path.read_text())
    targets_keyid = staged["signed"]["roles"]["targets"]["keyids"][0]
    staged["signed"]["keys"][targets_keyid]["keyval"] = attacker_key().keyval
    staged_path.write_text(json.dumps(staged))
    before = staged_path.read_bytes()

    status = tuf_repo("status", "--repo", repo)
    assert status.returncode == EXIT_OK
    assert f"key {targets_keyid[:12]}: its VALUE CHANGED behind the same keyid" in status.stdout
    root_section = status.stdout.split("staged: root", 1)[1].split("staged: targets", 1)[0]
    assert "no other change" not in root_section
    assert "KEYID DOES NOT MATCH THIS KEY  (VALUE CHANGED behind the same keyid)" in status.stdout
    assert "the key was changed behind its keyid: do not sign it" in status.stdout
    digest = root_section.splitlines()[0].rsplit(" ", 1)[-1]

    for key in (a, b):  # with the digest the author announced, or after reading the review
        signed = tuf_repo("sign", "--repo", repo, "--key", key, "--digest", digest, "root")
        assert signed.returncode == EXIT_FAILED, signed.stdout + signed.stderr
        assert "REFUSED" in signed.stdout
        assert "the key was changed behind its keyid" in signed.stderr
        assert "Traceback" not in signed.stderr
    assert staged_path.read_bytes() == before  # nothing was signed
    assert not (repo / "metadata" / "2.root.json").exists()


def test_a_published_root_whose_keyid_names_another_key_fails_verify_and_status(
    ceremony: tuple[Path, Path, RepoServer],
) -> None:
    """A root signed before this check existed (or by another tool) is reported, not trusted."""
    repo, keys, _ = ceremony
    root_md = Metadata[Root].from_file(str(repo / "metadata" / "1.root.json"))
    root = root_md.signed
    targets_keyid = root.roles["targets"].keyids[0]
    swapped = attacker_key()
    root.keys[targets_keyid] = SSlibKey(
        targets_keyid, swapped.keytype, swapped.scheme, swapped.keyval
    )
    assert key_digest(root.keys[targets_keyid]) != targets_keyid
    root.version = 2
    root_md.signatures.clear()
    for path in sorted((keys / "offline").glob("root-*.json"))[:2]:
        root_md.sign(read_key_file(path).signer(None), append=True)
    root_md.to_file(str(repo / "metadata" / "2.root.json"))

    verify = tuf_repo("verify", "--repo", repo, "--trusted-root", repo / "metadata" / "1.root.json")
    assert verify.returncode == EXIT_FAILED, verify.stdout + verify.stderr
    assert f"lists a key under keyid {targets_keyid[:12]}" in verify.stderr
    status = tuf_repo("status", "--repo", repo)
    assert "WARNING: published root v2 lists a key under keyid" in status.stdout
    # The publisher never builds on it: any change that re-signs root is refused.
    # The heartbeat never re-signs it, and goes on for the other roles.
    refresh = tuf_repo("refresh", "--repo", repo, "--keys", keys, "--within", "400")
    assert refresh.returncode == EXIT_FAILED, refresh.stdout + refresh.stderr
    assert "not re-signed: published root v2 lists a key under keyid" in refresh.stderr
    assert "refreshed snapshot, timestamp" in refresh.stdout
    assert not (repo / "metadata" / "3.root.json").exists()
