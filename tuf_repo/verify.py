"""Check a published repository exactly as a fresh client would: python-tuf's ngclient."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tuf.api import exceptions as tuf_exceptions
from tuf.api.metadata import Metadata, TargetFile

from caio.core.release_format import INDEX_PATH, parse_index
from tuf_repo.approval import fresh_updater, source_targets
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
    same_as_source: int | None = None  # releases checked against the source, if one was given


def verify_repository(
    repo_dir: Path,
    trusted_root: Path,
    source: str | None = None,
    source_root: Path | None = None,
) -> VerifyReport:
    """Refresh from ``trusted_root``, fetch the release index and every release, verified.

    Beyond what a client checks, every key must be listed under its own keyid.
    With ``source`` (an approval repository's vendor, trusted from ``source_root``),
    every release must be the one the source signs (path, length, hashes), and a
    release whose bytes this repository does not hold is fetched from nowhere: hosts
    get them from the source.

    Raises:
        MetadataError: any TUF verification or download failure, with its reason.
    """
    theirs = source_targets(source, source_root) if source and source_root else None
    _refuse_roots_with_mismatched_keyids(repo_dir / "metadata")
    with fresh_updater(str(repo_dir), trusted_root) as (updater, tmp):
        metadata_dir = tmp / "metadata"
        try:
            updater.refresh()
            releases: list[str] = []
            index_info = updater.get_targetinfo(INDEX_PATH)
            if index_info is not None:
                index_file = updater.download_target(index_info)
                for entry in parse_index(Path(index_file).read_bytes(), strict=True):
                    info = updater.get_targetinfo(entry.target)
                    if info is None:
                        raise MetadataError(f"index lists {entry.target}, which is not signed")
                    releases.append(entry.version)
                    if theirs is not None:
                        _same_as_source(entry.version, info, theirs.get(entry.target))
                        if not _held(repo_dir, info):
                            continue  # metadata only: hosts fetch the source's bytes
                    updater.download_target(info)
        except (tuf_exceptions.RepositoryError, tuf_exceptions.DownloadError, ValueError) as e:
            raise MetadataError(f"verification failed: {type(e).__name__}: {e}") from e
        roles = []
        for path in sorted(metadata_dir.glob("*.json")):
            md = Metadata.from_file(str(path))
            # python-tuf trusts a keyid to name its key; a repository of ours never relies on it.
            refuse_mismatched_keyids(path.stem, md.signed)
            roles.append(VerifiedRole(path.stem, md.signed.version, md.signed.expires))
        return VerifyReport(roles, releases, len(releases) if theirs is not None else None)


def _same_as_source(version: str, ours: TargetFile, theirs: TargetFile | None) -> None:
    """Raises: MetadataError: the source does not sign these bytes as this release."""
    if theirs is None or (theirs.length, theirs.hashes) != (ours.length, ours.hashes):
        raise MetadataError(
            f"{version} ({ours.path}) is not what the source signs: "
            + ("the source does not list it" if theirs is None else "other length or hashes")
        )


def _held(repo_dir: Path, info: TargetFile) -> bool:
    """Whether this repository holds the bytes of ``info`` (by hash, or by name)."""
    dirname, _, name = info.path.rpartition("/")
    folder = repo_dir / "targets" / dirname
    return (
        any((folder / f"{h}.{name}").is_file() for h in info.hashes.values())
        or (folder / name).is_file()
    )


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
