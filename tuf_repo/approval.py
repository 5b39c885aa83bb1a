"""An approval repository: the organisation's own signature on the vendor's releases.

``tuf-repo approve`` reads a release from the vendor's repository through a
TUF client (python-tuf's ngclient, from the root the approver trusts), shows
what is about to be approved, and publishes the same target path, length and
hashes, and the same index entry, signed by the approval repository's keys.
Hosts with a repository map (two-party approval) then install it only
because both repositories sign the same bytes. The approval repository may
hold the artifact itself (``--with-artifact``) or only its metadata.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tuf.api import exceptions as tuf_exceptions
from tuf.api.metadata import TargetFile
from tuf.ngclient import Updater

from caio.core.delta import DeltaRefused, TarDigest
from caio.core.files import FileFetcher
from caio.core.release_format import INDEX_PATH, IndexEntry, entry_disagreement, parse_index
from tuf_repo.errors import MetadataError, TufRepoError


@dataclass(frozen=True)
class SourceRelease:
    """A release as the vendor's repository signs it, verified by a TUF client."""

    entry: IndexEntry
    target: TargetFile
    artifact: Path | None  # the verified bytes, when asked for
    # The uncompressed tar, as the source signs it and its bytes unpack to: what a delta to
    # this release must make (None: the source signs none, so hosts with a map download it).
    tar: TarDigest | None = None

    def describe(self) -> list[str]:
        """What the approver approves, line by line."""
        custom: dict[str, Any] = self.target.unrecognized_fields.get("custom", {})
        signed = custom.get("caio", {}) if isinstance(custom, dict) else {}
        lines = [
            f"version:  {self.entry.version}",
            f"target:   {self.target.path}",
            f"length:   {self.target.length} bytes",
        ]
        lines += [
            f"{alg}:{' ' * max(1, 9 - len(alg))}{h}"
            for alg, h in sorted(self.target.hashes.items())
        ]
        tar = (custom.get("tar") if isinstance(custom, dict) else None) or {}
        if isinstance(tar, dict) and tar:
            lines.append(
                f"tar:      sha256 {tar.get('sha256')}, {tar.get('length')} bytes "
                "(uncompressed; checked against the bytes before it is signed)"
            )
        lines += [f"vendor's {key}: {value}" for key, value in sorted(signed.items())]
        return lines


def source_url(source: str) -> tuple[str, bool]:
    """The base URL of a source given as a URL or a directory, and whether it is local."""
    if source.startswith(("http://", "https://")):
        return source.rstrip("/"), False
    if source.startswith("file://"):
        return source.rstrip("/"), True
    path = Path(source)
    if not (path / "metadata").is_dir():
        raise TufRepoError(f"{source} is neither an http(s) URL nor a repository directory")
    return path.resolve().as_uri(), True


@contextmanager
def fresh_updater(source: str, trusted_root: Path) -> Iterator[tuple[Updater, Path]]:
    """A python-tuf ``Updater`` of ``source`` with an empty cache (gone on exit), and its dir.

    Raises:
        MetadataError: ``trusted_root`` cannot be read or is not usable root metadata.
        TufRepoError: ``source`` is neither a URL nor a repository directory.
    """
    try:
        bootstrap = trusted_root.read_bytes()
    except OSError as e:
        raise MetadataError(f"trusted root {trusted_root} cannot be read: {e.strerror}") from e
    base, local = source_url(source)
    with tempfile.TemporaryDirectory(prefix="tuf-repo-client-") as tmp:
        metadata_dir = Path(tmp, "metadata")
        metadata_dir.mkdir()
        try:
            updater = Updater(
                str(metadata_dir),
                f"{base}/metadata/",
                str(Path(tmp, "targets")),
                f"{base}/targets/",
                fetcher=FileFetcher() if local else None,
                bootstrap=bootstrap,
            )
        except (tuf_exceptions.RepositoryError, ValueError) as e:
            raise MetadataError(f"{trusted_root} is not usable root metadata: {e}") from e
        yield updater, Path(tmp)


def read_source_release(source: str, trusted_root: Path, version: str) -> SourceRelease:
    """``version`` as ``source`` signs it (index entry and target), verified from ``trusted_root``.

    Metadata only: nothing is downloaded before the approver has seen what it is
    (:func:`fetch_source_bytes` does that).

    Raises:
        MetadataError: the source does not verify, does not list ``version``, or its index
            entry and its target's signed fields disagree.
    """
    with fresh_updater(source, trusted_root) as (updater, _tmp):
        try:
            updater.refresh()
            index_info = updater.get_targetinfo(INDEX_PATH)
            if index_info is None:
                raise MetadataError(f"{source} signs no release index")
            entries = parse_index(Path(updater.download_target(index_info)).read_bytes())
            entry = next((e for e in entries if e.version == version), None)
            if entry is None:
                listed = ", ".join(e.version for e in entries) or "none"
                raise MetadataError(f"{source} does not list {version} (it lists {listed})")
            target = updater.get_targetinfo(entry.target)
            if target is None:
                raise MetadataError(f"{source} lists {version} at {entry.target}, unsigned")
        except (tuf_exceptions.RepositoryError, tuf_exceptions.DownloadError, ValueError) as e:
            raise MetadataError(f"{source} does not verify: {type(e).__name__}: {e}") from e
    custom = target.unrecognized_fields.get("custom")
    if disagree := entry_disagreement(entry, custom if isinstance(custom, dict) else None):
        raise MetadataError(
            f"{source}: the index entry and the signed target of {version} disagree on "
            f"{', '.join(disagree)}; not approving an inconsistent release"
        )
    return SourceRelease(entry, target, None)


def fetch_source_bytes(
    source: str, trusted_root: Path, release: SourceRelease, work: Path, *, keep: bool
) -> SourceRelease:
    """``release`` with its bytes: kept (``keep``) to hold them here, and checked against
    the uncompressed tar the source signs, if it signs one.

    Hosts with a repository map apply deltas only to make a tar every repository
    signs, so the approver signs the source's tar only once its bytes unpack to it.
    The bytes are checked against the length and hashes the approver saw (a source
    that changed them since is refused), and unpacking stops past the signed length.

    Raises:
        MetadataError: the source does not verify or serve those bytes, or they are not
            the tar it signs.
    """
    claimed = (release.target.custom or {}).get("tar")
    if not keep and claimed is None:
        return release
    with fresh_updater(source, trusted_root) as (updater, _tmp):
        try:
            updater.refresh()
            work.mkdir(parents=True, exist_ok=True)
            destination = work / Path(release.target.path).name
            artifact = Path(updater.download_target(release.target, str(destination)))
        except (tuf_exceptions.RepositoryError, tuf_exceptions.DownloadError, ValueError) as e:
            raise MetadataError(f"{source} does not serve the bytes shown: {e}") from e
    version = release.entry.version
    tar = _checked_tar(source, version, claimed, artifact) if claimed is not None else None
    return replace(release, artifact=artifact if keep else None, tar=tar)


def _checked_tar(source: str, version: str, claimed: object, artifact: Path) -> TarDigest:
    """The tar ``source`` signs for ``version``, once its bytes unpack to it.

    Raises:
        MetadataError: the claim is malformed, or the bytes unpack to another tar.
    """
    try:
        signed = TarDigest.from_json(claimed)
    except DeltaRefused as e:
        raise MetadataError(f"{source}: the signed tar of {version} is malformed: {e}") from e
    try:
        found = TarDigest.of_artifact(artifact, limit=signed.length)
    except (OSError, EOFError) as e:
        raise MetadataError(f"{source}: {version}'s bytes do not unpack: {e}") from e
    if found.length > signed.length:
        raise MetadataError(
            f"{source} signs {version}'s uncompressed tar as {signed.length} bytes, but its "
            "bytes unpack to more: not approving"
        )
    if found != signed:
        raise MetadataError(
            f"{source} signs {version}'s uncompressed tar as sha256 {signed.sha256} "
            f"({signed.length} bytes), but its bytes unpack to sha256 {found.sha256} "
            f"({found.length} bytes): not approving"
        )
    return signed


def source_targets(source: str, trusted_root: Path) -> dict[str, TargetFile]:
    """Every release target ``source`` signs, by path, verified from ``trusted_root``.

    Raises:
        MetadataError: the source does not verify.
    """
    with fresh_updater(source, trusted_root) as (updater, _tmp):
        try:
            updater.refresh()
            index_info = updater.get_targetinfo(INDEX_PATH)
            if index_info is None:
                return {}
            entries = parse_index(Path(updater.download_target(index_info)).read_bytes())
            found = {}
            for entry in entries:
                info = updater.get_targetinfo(entry.target)
                if info is not None:
                    found[entry.target] = info
            return found
        except (tuf_exceptions.RepositoryError, tuf_exceptions.DownloadError, ValueError) as e:
            raise MetadataError(f"{source} does not verify: {type(e).__name__}: {e}") from e
