"""Check a published repository exactly as a fresh client would: python-tuf's ngclient."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tuf.api import exceptions as tuf_exceptions
from tuf.api.metadata import Metadata
from tuf.ngclient import Updater

from caio.core.files import FileFetcher
from caio.core.release_format import INDEX_PATH, parse_index
from tuf_repo.errors import MetadataError
from tuf_repo.keyvalues import refuse_mismatched_keyids

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class VerifiedRole:
    role: str
    version: int
    expires: datetime


@dataclass(frozen=True)
class VerifyReport:
    roles: list[VerifiedRole]
    releases: list[str]


def verify_repository(repo_dir: Path, trusted_root: Path) -> VerifyReport:
    """Refresh from ``trusted_root``, fetch the release index and every release, verified.

    Beyond what a client checks, every key must be listed under its own keyid.

    Raises:
        MetadataError: any TUF verification or download failure, with its reason.
    """
    try:
        bootstrap = trusted_root.read_bytes()
    except OSError as e:
        raise MetadataError(f"trusted root {trusted_root} cannot be read: {e.strerror}") from e
    _refuse_roots_with_mismatched_keyids(repo_dir / "metadata")
    base = repo_dir.resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="tuf-repo-verify-") as tmp:
        metadata_dir = Path(tmp, "metadata")
        metadata_dir.mkdir()
        try:
            updater = Updater(
                str(metadata_dir),
                f"{base}/metadata/",
                str(Path(tmp, "targets")),
                f"{base}/targets/",
                fetcher=FileFetcher(),
                bootstrap=bootstrap,
            )
            updater.refresh()
            releases: list[str] = []
            index_info = updater.get_targetinfo(INDEX_PATH)
            if index_info is not None:
                index_file = updater.download_target(index_info)
                for entry in parse_index(Path(index_file).read_bytes(), strict=True):
                    info = updater.get_targetinfo(entry.target)
                    if info is None:
                        raise MetadataError(f"index lists {entry.target}, which is not signed")
                    updater.download_target(info)
                    releases.append(entry.version)
        except (tuf_exceptions.RepositoryError, tuf_exceptions.DownloadError, ValueError) as e:
            raise MetadataError(f"verification failed: {type(e).__name__}: {e}") from e
        roles = []
        for path in sorted(metadata_dir.glob("*.json")):
            md = Metadata.from_file(str(path))
            # python-tuf trusts a keyid to name its key; a repository of ours never relies on it.
            refuse_mismatched_keyids(path.stem, md.signed)
            roles.append(VerifiedRole(path.stem, md.signed.version, md.signed.expires))
        return VerifyReport(roles, releases)


def _refuse_roots_with_mismatched_keyids(metadata_dir: Path) -> None:
    """Every root clients walk through must list each key under its own keyid.

    Raises:
        MetadataError: a root file cannot be read, or lists a key under another keyid.
    """
    for path in sorted(metadata_dir.glob("*.root.json")):
        try:
            md = Metadata.from_file(str(path))
        except (OSError, ValueError) as e:
            raise MetadataError(f"{path} cannot be read: {e}") from e
        refuse_mismatched_keyids(path.name.removesuffix(".json"), md.signed)
