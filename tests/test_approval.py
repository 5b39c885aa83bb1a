"""The approval repository's commands, as its approvers run them: approve, revoke, verify.

Two repositories published by our own `tuf_repo` CLI, each with its own keys:
the vendor's, and the organisation's approval repository.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.tuf_fixtures import make_source_tree
from tuf_repo import Keyring, Publisher, RepoStore

pytestmark = pytest.mark.slow  # real processes (the CLI)


def tuf_repo(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuf_repo", *map(str, args)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        input=stdin,
        timeout=120,
    )


class Repos:
    """A vendor repository with 1.0.0 and 1.1.0, and an empty approval repository."""

    def __init__(self, tmp_path: Path) -> None:
        self.vendor, self.vendor_keys = tmp_path / "vendor", tmp_path / "vendor-keys"
        self.approval, self.approval_keys = tmp_path / "approval", tmp_path / "approval-keys"
        self.vendor_root = Path(self.init(self.vendor, self.vendor_keys))
        self.approval_root = Path(self.init(self.approval, self.approval_keys))
        src = make_source_tree(tmp_path / "src")
        for version in ("1.0.0", "1.1.0"):
            built = tuf_repo("build", src, "--version", version, "--out", tmp_path / "dist")
            assert built.returncode == 0, built.stderr
            added = tuf_repo("add", *self.at_vendor(), built.stdout.strip())
            assert added.returncode == 0, added.stderr
        self.dist = tmp_path / "dist"

    @staticmethod
    def init(repo: Path, keys: Path) -> str:
        done = tuf_repo("init", "--repo", repo, "--keys", keys)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def at_vendor(self) -> list[str | Path]:
        return ["--repo", self.vendor, "--keys", self.vendor_keys]

    def at_approval(self) -> list[str | Path]:
        return ["--repo", self.approval, "--keys", self.approval_keys]

    def approve(
        self, version: str, *extra: str | Path, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return tuf_repo(
            "approve",
            *self.at_approval(),
            "--from",
            self.vendor,
            "--trusted-root",
            self.vendor_root,
            version,
            *extra,
            stdin=stdin,
        )

    @staticmethod
    def targets(repo: Path) -> dict[str, dict[str, Any]]:
        newest = max(
            (repo / "metadata").glob("*.targets.json"), key=lambda p: int(p.name.split(".")[0])
        )
        found: dict[str, dict[str, Any]] = json.loads(newest.read_text())["signed"]["targets"]
        return found

    def signed(self, repo: Path, version: str) -> dict[str, object]:
        """The target ``repo`` publishes for ``version``: path, length and hashes."""
        path = f"caio/{version}/caio-{version}.tar.gz"
        info = self.targets(repo)[path]
        return {"path": path, "length": info["length"], "hashes": info["hashes"]}

    def index(self, repo: Path) -> dict[str, Any]:
        """The release index ``repo`` publishes now."""
        digest = self.targets(repo)["caio/index.json"]["hashes"]["sha256"]
        found: dict[str, Any] = json.loads(
            (repo / "targets" / "caio" / f"{digest}.index.json").read_text()
        )
        return found


@pytest.fixture
def repos(tmp_path: Path) -> Repos:
    return Repos(tmp_path)


def test_approving_shows_what_is_approved_and_signs_the_same_bytes(repos: Repos) -> None:
    declined = repos.approve("1.1.0", stdin="n\n")
    assert declined.returncode == 1, declined.stdout + declined.stderr
    assert "not approved" in declined.stderr
    shown = declined.stdout
    vendor = repos.signed(repos.vendor, "1.1.0")
    assert "version:  1.1.0" in shown and "caio/1.1.0/caio-1.1.0.tar.gz" in shown
    assert f"length:   {vendor['length']} bytes" in shown
    assert str(vendor["hashes"]["sha256"]) in shown  # type: ignore[index]
    assert "vendor's channels: ['stable']" in shown
    assert not list((repos.approval / "metadata").glob("2.targets.json"))  # nothing published

    done = repos.approve("1.1.0", "--yes")
    assert done.returncode == 0, done.stderr
    assert "approved caio/1.1.0/caio-1.1.0.tar.gz" in done.stdout
    assert repos.signed(repos.approval, "1.1.0") == vendor
    # Metadata only: the approval repository does not hold the bytes.
    assert not list((repos.approval / "targets").rglob("*caio-1.1.0.tar.gz"))
    again = repos.approve("1.1.0", "--yes")
    assert again.returncode == 0 and "already approved" in again.stdout


def test_an_approval_repository_may_hold_the_bytes_and_verifies_against_its_source(
    repos: Repos,
) -> None:
    done = repos.approve("1.0.0", "--yes", "--with-artifact")
    assert done.returncode == 0, done.stderr
    held = list((repos.approval / "targets").rglob("*caio-1.0.0.tar.gz"))
    assert len(held) == 1
    assert held[0].read_bytes() == (repos.dist / "caio-1.0.0.tar.gz").read_bytes()
    assert repos.approve("1.1.0", "--yes").returncode == 0  # metadata only
    source: list[str | Path] = ["--source", repos.vendor, "--source-root", repos.vendor_root]
    verified = tuf_repo(
        "verify", "--repo", repos.approval, "--trusted-root", repos.approval_root, *source
    )
    assert verified.returncode == 0, verified.stderr
    assert "ok  releases: 1.0.0, 1.1.0" in verified.stdout
    assert "ok  every release is the source's, byte for byte (2)" in verified.stdout
    # Without its source, a metadata-only release cannot be fetched: said, not hidden.
    alone = tuf_repo("verify", "--repo", repos.approval, "--trusted-root", repos.approval_root)
    assert alone.returncode == 1 and "1.1.0" in alone.stderr


def test_an_approval_that_differs_from_its_source_fails_verification(
    repos: Repos, tmp_path: Path
) -> None:
    other = make_source_tree(tmp_path / "other", body="# not the vendor's\n")
    built = tuf_repo("build", other, "--version", "1.1.0", "--out", tmp_path / "other-dist")
    assert tuf_repo("add", *repos.at_approval(), built.stdout.strip()).returncode == 0
    refused = repos.approve("1.1.0", "--yes")  # the vendor's 1.1.0 is other bytes
    assert refused.returncode == 1 and "different bytes" in refused.stderr
    source: list[str | Path] = ["--source", repos.vendor, "--source-root", repos.vendor_root]
    verified = tuf_repo(
        "verify", "--repo", repos.approval, "--trusted-root", repos.approval_root, *source
    )
    assert verified.returncode == 1
    assert "1.1.0" in verified.stderr and "not what the source signs" in verified.stderr


def test_what_the_source_does_not_sign_cannot_be_approved(repos: Repos, tmp_path: Path) -> None:
    missing = repos.approve("9.9.9", "--yes")
    assert missing.returncode == 1 and "does not list 9.9.9" in missing.stderr
    stranger = tuf_repo("init", "--repo", tmp_path / "s", "--keys", tmp_path / "sk").stdout.strip()
    wrong_root = tuf_repo(
        "approve",
        *repos.at_approval(),
        "--from",
        repos.vendor,
        "--trusted-root",
        stranger,
        "1.1.0",
        "--yes",
    )
    assert wrong_root.returncode == 1 and "does not verify" in wrong_root.stderr


def test_revoking_an_approval_withdraws_it_in_the_approval_repository(repos: Repos) -> None:
    assert repos.approve("1.1.0", "--yes").returncode == 0
    revoked = tuf_repo("revoke-approval", *repos.at_approval(), "1.1.0", "--reason", "CVE-2026-1")
    assert revoked.returncode == 0, revoked.stderr
    entry = next(e for e in repos.index(repos.approval)["releases"] if e["version"] == "1.1.0")
    assert entry["withdrawn"]["reason"] == "CVE-2026-1"


def _vendor_signs_tar(repos: Repos, version: str, tar: dict[str, Any]) -> None:
    """The vendor's key signs ``version``'s target again, claiming another uncompressed tar."""
    publisher = Publisher(RepoStore(repos.vendor), Keyring.from_dir(repos.vendor_keys))
    targets = publisher.store.load("targets")
    targets.signed.targets[f"caio/{version}/caio-{version}.tar.gz"].unrecognized_fields["custom"][
        "tar"
    ] = tar
    publisher.commit({"targets": targets})


def test_approving_signs_the_uncompressed_tar_once_the_bytes_unpack_to_it(repos: Repos) -> None:
    """Hosts with a map apply a delta only to make a tar both repositories sign: the approver
    signs the vendor's tar only after unpacking the vendor's bytes to it."""
    path = "caio/1.1.0/caio-1.1.0.tar.gz"
    vendor_tar = repos.targets(repos.vendor)[path]["custom"]["tar"]
    with gzip.open(repos.dist / "caio-1.1.0.tar.gz") as f:
        assert vendor_tar["sha256"] == hashlib.sha256(f.read()).hexdigest()
    done = repos.approve("1.1.0", "--yes")  # metadata only: the bytes are read, not kept
    assert done.returncode == 0, done.stderr
    assert f"tar:      sha256 {vendor_tar['sha256']}" in done.stdout
    assert repos.targets(repos.approval)[path]["custom"]["tar"] == vendor_tar
    assert not list((repos.approval / "targets").rglob("*caio-1.1.0.tar.gz"))

    lie = {"sha256": "0" * 64, "length": vendor_tar["length"]}
    _vendor_signs_tar(repos, "1.0.0", lie)  # the vendor's key, another tar than its bytes make
    refused = repos.approve("1.0.0", "--yes")
    assert refused.returncode == 1
    assert "but its bytes unpack to sha256" in refused.stderr and "not approving" in refused.stderr
    assert "caio/1.0.0/caio-1.0.0.tar.gz" not in repos.targets(repos.approval)
    _vendor_signs_tar(repos, "1.0.0", {"sha256": "0" * 64, "length": 100})  # a bomb, as it were
    bomb = repos.approve("1.0.0", "--yes")
    assert bomb.returncode == 1 and "as 100 bytes, but its bytes unpack to more" in bomb.stderr


def test_nothing_is_downloaded_before_the_approver_says_yes(repos: Repos) -> None:
    """The bytes (to check the tar, or to hold) are fetched after the approver has seen the
    release: here the vendor has lost them, and only the confirmed approval says so."""
    for artifact in (repos.vendor / "targets").rglob("*caio-1.1.0.tar.gz"):
        artifact.unlink()
    declined = repos.approve("1.1.0", stdin="n\n")
    assert declined.returncode == 1 and "not approved" in declined.stderr
    assert "tar:      sha256" in declined.stdout  # shown, to be checked before signing
    assert "does not serve" not in declined.stderr
    confirmed = repos.approve("1.1.0", "--yes")
    assert confirmed.returncode == 1
    assert "does not serve the bytes shown" in confirmed.stderr
    assert "caio/1.1.0/caio-1.1.0.tar.gz" not in repos.targets(repos.approval)
