"""Discovery through TUF: a fresh ngclient ``Updater`` per check, the signed release index.

Only python-tuf's public API is used: ``refresh``, ``get_targetinfo`` and
``download_target`` on the Updater, and ``Metadata.from_file`` on the files
ngclient itself verified and cached.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

from tuf.api import exceptions as tuf
from tuf.api.metadata import TargetFile
from tuf.ngclient import Updater, UpdaterConfig

from caio.core.delta import delta_target_path
from caio.core.errors import ErrorCode, UpdateError
from caio.core.release_format import (
    INDEX_PATH,
    IndexEntry,
    IndexReport,
    entry_disagreement,
    read_index_report,
    signed_release_version,
)
from caio.update.agreement import Agreement
from caio.update.errors import from_tuf, is_retryable
from caio.update.transport import Transport

log = logging.getLogger(__name__)

MAX_INDEX_BYTES = 4 * 1024 * 1024
T = TypeVar("T")


Release = IndexEntry  # one entry of the signed release index


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for network errors; verification errors are never retried."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

    def run(self, what: str, operation: Callable[[], T]) -> T:
        """Run ``operation``, retrying retryable tuf errors; translate the final failure.

        Raises:
            UpdateError: with the code of the last failure.
        """
        for attempt in range(1, self.attempts + 1):
            try:
                return operation()
            except (tuf.RepositoryError, tuf.DownloadError) as e:
                if not is_retryable(e) or attempt == self.attempts:
                    raise from_tuf(e, what) from e
                delay = self.delay(attempt)
                log.warning("%s failed (%s); retry %d in %.1fs", what, e, attempt, delay)
                self.sleep(delay)
        raise AssertionError("unreachable")


def read_index(data: bytes) -> IndexReport:
    """The releases of a verified index file, and the entries skipped (and why).

    Raises:
        UpdateError: repository_invalid when the file is not an index.
    """
    try:
        return read_index_report(data)
    except ValueError as e:
        raise UpdateError(ErrorCode.REPOSITORY_INVALID, str(e)) from e


@dataclass(frozen=True)
class TrustedMetadataInfo:
    """Versions and expiry of the trusted top-level metadata after a refresh."""

    versions: dict[str, int]
    expires: dict[str, datetime]


@dataclass(frozen=True)
class ListedDelta:
    """A signed delta and where to fetch it: the repository that lists it, through its
    own transport (with a repository map, not every agreeing one does)."""

    info: TargetFile
    locations: list[tuple[str, Transport | None]]


class View(Protocol):
    """What a check or a job reads from a refresh: one repository's, or several agreeing."""

    releases: list[Release]
    skipped: list[str]
    metadata: TrustedMetadataInfo

    def verified_target(self, release: Release) -> TargetFile: ...

    def delta_target(self, base_version: str, version: str) -> ListedDelta | None: ...

    def refusal(self, version: str) -> UpdateError | None: ...

    def signers(self, version: str) -> tuple[str, ...]: ...

    def approvals(self) -> list[Agreement]: ...

    def locations(self, info: TargetFile, version: str) -> list[tuple[str, Transport | None]]:
        """Where the release's agreed bytes may be fetched (a delta carries its own)."""
        ...


class Repository(Protocol):
    def refresh(self) -> View: ...

    def trusted_metadata(self) -> TrustedMetadataInfo: ...


class RepositoryView:
    """One consistent, verified view of the repository (one refreshed Updater)."""

    def __init__(
        self,
        updater: Updater,
        releases: list[Release],
        metadata: TrustedMetadataInfo,
        consistent_snapshot: bool,
        targets_url: str,
        transport: Transport | None = None,
    ) -> None:
        self.updater = updater
        self.transport = transport
        self.releases = releases
        self.skipped: list[str] = []  # index entries that could not be read, and why
        self.metadata = metadata
        self.consistent_snapshot = consistent_snapshot
        self.targets_url = targets_url

    def target_info(self, path: str) -> TargetFile:
        """The signed ``TargetFile`` for ``path``.

        Raises:
            UpdateError: target_not_found when no role signs it, or a TUF code
                when delegated metadata fails to verify.
        """
        try:
            info = self.updater.get_targetinfo(path)
        except (tuf.RepositoryError, tuf.DownloadError) as e:
            raise from_tuf(e, f"looking up {path}") from e
        if info is None:
            raise UpdateError(ErrorCode.TARGET_NOT_FOUND, f"{path} is not a signed target")
        return info

    def verified_target(self, release: Release) -> TargetFile:
        """The signed ``TargetFile`` of ``release``, cross-checked against its index entry.

        Raises:
            UpdateError: target_not_found; repository_invalid when the target's signed
                metadata claims another version; index_mismatch when the index entry and
                the target's signed release fields differ.
        """
        info = self.target_info(release.target)
        signed_version = signed_release_version(info.custom)
        if signed_version != release.version:
            raise UpdateError(
                ErrorCode.REPOSITORY_INVALID,
                f"index lists {release.version} at {release.target}, "
                f"whose signed metadata says {signed_version!r}",
            )
        if disagree := entry_disagreement(release, info.custom):
            raise UpdateError(
                ErrorCode.INDEX_MISMATCH,
                f"the release index and the signed metadata of {release.target} disagree on "
                f"{', '.join(disagree)}: the repository is inconsistent; nothing was downloaded",
            )
        return info

    def delta_target(self, base_version: str, version: str) -> ListedDelta | None:
        """The signed delta from ``base_version`` to ``version``; None when none is published.

        Raises:
            UpdateError: a TUF code when the metadata that would list it fails to verify.
        """
        try:
            info = self.target_info(delta_target_path(base_version, version))
        except UpdateError as e:
            if e.error_code == ErrorCode.TARGET_NOT_FOUND:
                return None
            raise
        return ListedDelta(info, self.locations(info, version))

    def refusal(self, version: str) -> UpdateError | None:
        """Why a listed ``version`` is not offered: never, with one repository."""
        return None

    def signers(self, version: str) -> tuple[str, ...]:
        """The repositories that agree on ``version`` (only with a repository map)."""
        return ()

    def approvals(self) -> list[Agreement]:
        """Who signs each listed version (only with a repository map)."""
        return []

    def locations(self, info: TargetFile, version: str) -> list[tuple[str, Transport | None]]:
        """Where the artifact may be fetched, and through which transport."""
        return [(self.target_url(info), self.transport)]

    def target_url(self, info: TargetFile) -> str:
        """Where the artifact is served (hash-prefixed name with consistent snapshots)."""
        dirname, sep, basename = info.path.rpartition("/")
        if self.consistent_snapshot:
            basename = f"{next(iter(info.hashes.values()))}.{basename}"
        return f"{self.targets_url}{dirname}{sep}{basename}"


class TrustedRepository:
    """Makes verified views of one repository from one trust anchor."""

    def __init__(
        self,
        *,
        metadata_url: str,
        targets_url: str,
        metadata_dir: Path,
        trusted_root: bytes,
        transport: Transport,
        retry: RetryPolicy,
        user_agent: str,
        on_verified_root: Callable[[bytes], object] | None = None,
    ) -> None:
        self.metadata_url = metadata_url.rstrip("/") + "/"
        self._on_verified_root = on_verified_root
        self.targets_url = targets_url.rstrip("/") + "/"
        self.metadata_dir = metadata_dir
        self._trusted_root = trusted_root
        self._transport = transport
        self._retry = retry
        self._config = UpdaterConfig(app_user_agent=user_agent)

    def _new_updater(self) -> Updater:
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        try:
            return Updater(
                str(self.metadata_dir),
                self.metadata_url,
                target_base_url=self.targets_url,
                fetcher=self._transport,
                config=self._config,
                bootstrap=self._trusted_root,
            )
        except (tuf.RepositoryError, ValueError) as e:
            raise UpdateError(
                ErrorCode.TRUST_NOT_CONFIGURED,
                f"the trusted root is not valid TUF root metadata: {e}",
            ) from e

    def refresh_metadata(self) -> RepositoryView:
        """Refresh top-level metadata (with retries); no release index.

        Raises:
            UpdateError: with the TUF failure's code (network errors after retries).
        """

        def attempt() -> Updater:
            updater = self._new_updater()
            updater.refresh()
            return updater

        updater = self._retry.run("refreshing metadata", attempt)
        if self._on_verified_root is not None:
            self._on_verified_root((self.metadata_dir / "root.json").read_bytes())
        info, consistent_snapshot = self._read_trusted()
        return RepositoryView(
            updater, [], info, consistent_snapshot, self.targets_url, self._transport
        )

    def refresh(self) -> RepositoryView:
        """Refresh top-level metadata and read the signed release index.

        Raises:
            UpdateError: with the TUF failure's code (network errors after retries).
        """
        view = self.refresh_metadata()
        updater = view.updater
        try:
            index_info = updater.get_targetinfo(INDEX_PATH)
        except (tuf.RepositoryError, tuf.DownloadError) as e:
            raise from_tuf(e, "looking up the release index") from e
        if index_info is None:
            return view
        if index_info.length > MAX_INDEX_BYTES:
            raise UpdateError(ErrorCode.REPOSITORY_INVALID, "the release index is too large")
        # The verified index is kept beside the metadata cache; a check that finds
        # nothing new then costs what a bare refresh costs (no index download).
        cached = self.metadata_dir.parent / "release-index.json"
        path = updater.find_cached_target(index_info, str(cached))
        if path is None:
            path = self._retry.run(
                "downloading the release index",
                lambda: updater.download_target(index_info, filepath=str(cached)),
            )
        report = read_index(Path(path).read_bytes())
        view.releases, view.skipped = report.entries, report.skipped
        return view

    def trusted_metadata(self) -> TrustedMetadataInfo:
        """Versions and expiry of what the local cache trusts now (no network)."""
        return self._read_trusted()[0]

    def _read_trusted(self) -> tuple[TrustedMetadataInfo, bool]:
        """Versions, expiry and consistent_snapshot from the files ngclient just verified.

        Plain JSON reads of three fields: ngclient has checked these files, and
        building full Metadata objects (keys included) would double a check's cost.
        """
        versions: dict[str, int] = {}
        expires: dict[str, datetime] = {}
        consistent = False
        for role in ("root", "timestamp", "snapshot", "targets"):
            path = self.metadata_dir / f"{role}.json"
            try:
                signed = json.loads(path.read_bytes())["signed"]
            except (OSError, ValueError, KeyError):
                continue
            versions[role] = int(signed["version"])
            expires[role] = datetime.fromisoformat(signed["expires"].replace("Z", "+00:00"))
            if role == "root":
                consistent = bool(signed.get("consistent_snapshot", False))
        return TrustedMetadataInfo(versions, expires), consistent
