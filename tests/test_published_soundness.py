"""The heartbeat mends published metadata that does not verify (issue 20, medium 5).

Not a crash (the transaction covers those) but the rest: a snapshot file
rewritten after publishing, a timestamp signed by a key root no longer
lists. `refresh` with the online keys re-signs snapshot and timestamp, and
a fresh python-tuf ngclient verifies again; an offline role that does not
verify is named, with exit code 1, every run, and by `status`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.exceptions import DownloadError, RepositoryError
from tuf.api.metadata import Metadata

from tests.test_crash_safe_publish import refresh_client, tuf_repo
from tests.test_trust_lifecycle import EXIT_FAILED, EXIT_OK

pytestmark = pytest.mark.slow  # real tuf-repo processes


@pytest.fixture
def published(tmp_path: Path) -> tuple[Path, Path, Path]:
    repo, keys, state = tmp_path / "repo", tmp_path / "keys", tmp_path / "state"
    assert tuf_repo(state, "init", "--repo", repo, "--keys", keys).returncode == EXIT_OK
    return repo, keys, state


def fresh_client_fails(repo: Path, work: Path) -> str:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        refresh_client(repo, work)
    except (RepositoryError, DownloadError) as e:
        return f"{type(e).__name__}: {e}"
    return ""


def newest(repo: Path, role: str) -> Path:
    return max((repo / "metadata").glob(f"*.{role}.json"), key=lambda p: int(p.name.split(".")[0]))


def test_a_snapshot_rewritten_after_publishing_is_re_signed(
    published: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    repo, keys, state = published
    snapshot = newest(repo, "snapshot")
    # A tool that re-formats JSON (a sync, an editor): same content, other bytes.
    snapshot.write_text(json.dumps(json.loads(snapshot.read_text()), indent=4))
    assert fresh_client_fails(repo, tmp_path / "before")
    cron = tuf_repo(state, "refresh", "--repo", repo, "--keys", keys / "online")
    assert cron.returncode == EXIT_OK, cron.stderr
    assert "re-signing: published timestamp does not verify" in cron.stderr
    assert "is not the file it signed" in cron.stderr
    assert "refreshed snapshot, timestamp" in cron.stdout
    assert fresh_client_fails(repo, tmp_path / "after") == ""
    again = tuf_repo(state, "refresh", "--repo", repo, "--keys", keys / "online")
    assert (again.returncode, again.stderr.strip()) == (EXIT_OK, "nothing needs refreshing")


def test_a_timestamp_signed_by_a_key_root_does_not_list_is_re_signed(
    published: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    repo, keys, state = published
    path = repo / "metadata" / "timestamp.json"
    md = Metadata.from_bytes(path.read_bytes())
    md.signatures.clear()
    md.sign(CryptoSigner.generate_ed25519())  # e.g. a stale key file after a rotation
    path.write_bytes(md.to_bytes())
    assert "timestamp" in fresh_client_fails(repo, tmp_path / "before")
    status = tuf_repo(state, "status", "--repo", repo)
    assert "published timestamp does not verify" in status.stdout + status.stderr
    cron = tuf_repo(state, "refresh", "--repo", repo, "--keys", keys / "online")
    assert cron.returncode == EXIT_OK, cron.stderr
    assert fresh_client_fails(repo, tmp_path / "after") == ""


def test_an_offline_role_that_does_not_verify_fails_every_run_by_name(
    published: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    repo, keys, state = published
    path = newest(repo, "targets")
    md = Metadata.from_bytes(path.read_bytes())
    md.signatures.clear()
    path.write_bytes(md.to_bytes())  # its signatures stripped: only its holders can mend it
    for _ in range(2):
        cron = tuf_repo(state, "refresh", "--repo", repo, "--keys", keys / "online")
        assert cron.returncode == EXIT_FAILED, cron.stderr
        assert "published targets does not verify: v1" in cron.stderr
        assert "clients refuse the repository until it is mended" in cron.stderr
    assert fresh_client_fails(repo, tmp_path / "client")
