"""TUF attack classes against CAIO's client, each a few lines and milliseconds long.

The repository is published by tuf_repo and served from memory
(tests/memory_repo.py); CAIO's TrustedRepository and ArtifactDownloader run on
python-tuf's real ngclient. The same attacks run end to end through the API
and a loopback HTTP server in tests/test_update_attacks.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner

from caio.core.errors import UpdateError
from caio.core.release_format import target_path
from tests.memory_repo import MemoryRepository


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory) -> MemoryRepository:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUF_REPO_STATE_DIR", str(tmp_path_factory.mktemp("memory-state")))
        return MemoryRepository.published(tmp_path_factory.mktemp("memory"), ("1.0.0", "1.1.0"))


@pytest.fixture
def repo(published: MemoryRepository) -> MemoryRepository:
    return published.copy()


def code_of(repo: MemoryRepository, tmp_path: Path, version: str = "1.1.0") -> str:
    """Refresh, look the release up and download it: the error code, or "ok"."""
    repository, downloader = repo.client(tmp_path)
    try:
        view = repository.refresh()
        info = view.target_info(target_path(version))
        downloader.fetch(view.target_url(info), info, lambda _d, _t: None)
    except UpdateError as e:
        return e.code
    return "ok"


def test_the_untouched_repository_verifies(repo: MemoryRepository, tmp_path: Path) -> None:
    assert code_of(repo, tmp_path) == "ok"
    assert [r.version for r in repo.client(tmp_path / "again")[0].refresh().releases] == [
        "1.0.0",
        "1.1.0",
    ]


def test_a_tampered_artifact(repo: MemoryRepository, tmp_path: Path) -> None:
    data = bytearray(repo.files[repo.artifact("1.1.0")])
    data[len(data) // 2] ^= 1
    repo.files[repo.artifact("1.1.0")] = bytes(data)
    assert code_of(repo, tmp_path) == "hash_mismatch"


def test_a_truncated_or_over_long_artifact(repo: MemoryRepository, tmp_path: Path) -> None:
    original = repo.files[repo.artifact("1.1.0")]
    repo.files[repo.artifact("1.1.0")] = original[:-1]
    assert code_of(repo, tmp_path / "short") == "length_mismatch"
    repo.files[repo.artifact("1.1.0")] = original + b"x" * 1000
    assert code_of(repo, tmp_path / "long") == "length_mismatch"


def test_a_replayed_timestamp(repo: MemoryRepository, tmp_path: Path) -> None:
    old = repo.files["/metadata/timestamp.json"]
    repo.point_timestamp_at(repo.newest("snapshot"))  # a newer one the client sees first
    assert code_of(repo, tmp_path) == "ok"
    repo.files["/metadata/timestamp.json"] = old
    assert code_of(repo, tmp_path) == "metadata_rollback"


def test_a_frozen_repository_expires(repo: MemoryRepository, tmp_path: Path) -> None:
    ts = repo.load("/metadata/timestamp.json")
    ts.signed.expires = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    repo.resign("timestamp", ts)
    assert code_of(repo, tmp_path) == "metadata_expired"


def test_a_timestamp_signed_by_a_stranger(repo: MemoryRepository, tmp_path: Path) -> None:
    ts = repo.load("/metadata/timestamp.json")
    ts.signatures.clear()
    ts.sign(CryptoSigner.generate_ed25519())
    repo.files["/metadata/timestamp.json"] = ts.to_bytes()
    assert code_of(repo, tmp_path) == "signature_threshold"


def test_targets_signed_by_a_compromised_online_key(repo: MemoryRepository, tmp_path: Path) -> None:
    """The snapshot key signs a targets role listing a new artifact: not the targets key."""
    path = repo.newest("targets")
    targets = repo.load(path)
    targets.signed.version += 1
    targets.signatures.clear()
    for signer in repo.signers("snapshot"):
        targets.sign(signer, append=True)
    new_path = f"/metadata/{targets.signed.version}.targets.json"
    repo.files[new_path] = targets.to_bytes()
    repo.publish_snapshot_naming(targets.signed.version)
    assert code_of(repo, tmp_path) == "signature_threshold"


def test_mix_and_match_of_an_old_targets_under_a_new_snapshot(
    repo: MemoryRepository, tmp_path: Path
) -> None:
    assert code_of(repo, tmp_path) == "ok"  # the client has seen the newest targets
    repo.publish_snapshot_naming(1)  # the first targets, without 1.1.0
    assert code_of(repo, tmp_path) == "metadata_rollback"


def test_a_release_missing_from_the_signed_targets(repo: MemoryRepository, tmp_path: Path) -> None:
    assert code_of(repo, tmp_path, version="9.9.9") == "target_not_found"


def test_endless_metadata_is_cut(repo: MemoryRepository, tmp_path: Path) -> None:
    repo.files["/metadata/timestamp.json"] = b"{" * (20 * 1024 * 1024)
    assert code_of(repo, tmp_path) == "length_mismatch"


def test_a_repository_that_serves_nothing_is_unreachable(
    repo: MemoryRepository, tmp_path: Path
) -> None:
    trusted = repo.files["/metadata/1.root.json"]
    repo.files.clear()
    repo.files["/metadata/1.root.json"] = trusted
    assert code_of(repo, tmp_path) == "repository_unreachable"
