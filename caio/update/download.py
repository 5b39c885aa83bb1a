"""Single-pass verified download: stream once to ``.part`` while hashing, resume with Range.

Unlike ngclient's ``download_target`` (download to a temp file, hash it, copy
it), the artifact is read exactly once: every chunk is written and hashed as
it arrives, the stream is cut at the signed length, and the file is renamed
into place only after its length and every signed hash match. An interrupted
transfer keeps its ``.part`` and resumes from there; the bytes already on disk
are hashed again so the whole file is always verified.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from tuf.api import exceptions as tuf
from tuf.api.metadata import TargetFile

from caio.core.errors import ErrorCode, UpdateError
from caio.update.errors import from_os_error, from_tuf, is_retryable
from caio.update.repository import RetryPolicy
from caio.update.transport import Transport

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
_READ_CHUNK = 1024 * 1024


class _EndedShort(Exception):
    """The stream ended before the signed length: resume (the network may have cut it)."""


def _hashers(info: TargetFile) -> dict[str, hashlib._Hash]:
    try:
        return {alg: hashlib.new(alg) for alg in info.hashes}
    except ValueError as e:
        raise UpdateError(ErrorCode.REPOSITORY_INVALID, f"unsupported hash in metadata: {e}") from e


class ArtifactDownloader:
    """Downloads artifacts into ``downloads/`` and verifies them against their TargetFile."""

    def __init__(
        self, transport: Transport | None, downloads_dir: Path, retry: RetryPolicy
    ) -> None:
        self._transport = transport
        self._dir = downloads_dir
        self._retry = retry

    @property
    def directory(self) -> Path:
        return self._dir

    def prune(self, keep: list[Path]) -> list[str]:
        """Remove every file in ``downloads/`` but ``keep``; returns the names removed.

        Called when a job ends, so the directory holds at most the one partial
        download a later job can resume.
        """
        removed: list[str] = []
        if not self._dir.is_dir():
            return removed
        for path in self._dir.iterdir():
            if path not in keep and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path.name)
        return removed

    def paths(self, info: TargetFile) -> tuple[Path, Path]:
        """(verified file, partial file) for a target; named by hash, so never confused."""
        digest = info.hashes.get("sha256") or next(iter(info.hashes.values()))
        name = f"{digest}.{Path(info.path).name}"
        return self._dir / name, self._dir / f"{name}.part"

    def fetch(
        self,
        url: str,
        info: TargetFile,
        progress: Progress,
        transport: Transport | None = None,
    ) -> Path:
        """Download ``url`` and verify it against ``info``; returns the verified file.

        ``transport``: the repository's own (its credentials); default: the downloader's.

        Raises:
            UpdateError: length_mismatch (short, long or endless), hash_mismatch,
                repository_unreachable (after retries), disk_full, permission_denied.
        """
        transport = transport or self._transport
        if transport is None:
            raise UpdateError(ErrorCode.TRUST_NOT_CONFIGURED, "no repository is configured")
        final, part = self.paths(info)
        if final.exists() and self._matches(final, info):
            progress(info.length, info.length)
            return final
        self._dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, self._retry.attempts + 1):
            try:
                hashers = self._transfer(transport, url, info, part, progress)
                break
            except (_EndedShort, tuf.DownloadError) as e:
                if isinstance(e, tuf.DownloadHTTPError) and e.status_code == 416:
                    self._discard(part)
                    raise UpdateError(
                        ErrorCode.LENGTH_MISMATCH,
                        f"{info.path}: server has fewer bytes than signed",
                    ) from e
                retryable = isinstance(e, _EndedShort) or is_retryable(e)
                if not retryable or attempt == self._retry.attempts:
                    if isinstance(e, _EndedShort):
                        self._discard(part)
                        raise UpdateError(ErrorCode.LENGTH_MISMATCH, f"{info.path}: {e}") from e
                    raise from_tuf(e, f"downloading {info.path}") from e
                delay = self._retry.delay(attempt)
                log.warning("download of %s interrupted (%s); resuming in %.1fs", url, e, delay)
                self._retry.sleep(delay)
            except OSError as e:
                self._discard(part)
                raise from_os_error(e, f"writing {part.name}") from e
            except UpdateError:
                self._discard(part)
                raise
        for alg, hasher in hashers.items():
            if hasher.hexdigest() != info.hashes[alg]:
                self._discard(part)
                raise UpdateError(
                    ErrorCode.HASH_MISMATCH,
                    f"{info.path}: {alg} {hasher.hexdigest()} does not match the signed "
                    f"{info.hashes[alg]}",
                )
        os.replace(part, final)  # not synced either: after a power loss we re-verify or resume
        return final

    def _transfer(
        self, transport: Transport, url: str, info: TargetFile, part: Path, progress: Progress
    ) -> dict[str, hashlib._Hash]:
        """One attempt: hash what ``part`` holds, then append from the server up to the length."""
        hashers = _hashers(info)
        offset = part.stat().st_size if part.exists() else 0
        if offset > info.length:
            self._discard(part)
            offset = 0
        with transport.open_range(url, offset) as response:
            done = response.offset  # 0 when the server ignored the range: start over
            self._rehash_partial(part, done, hashers)
            update = [h.update for h in hashers.values()]
            progress(done, info.length)
            with part.open("ab") as out:
                for chunk in response.chunks:
                    if len(chunk) > info.length - done:
                        raise UpdateError(
                            ErrorCode.LENGTH_MISMATCH,
                            f"{info.path}: server sent more than the signed {info.length} bytes",
                        )
                    out.write(chunk)
                    for hash_update in update:
                        hash_update(chunk)
                    done += len(chunk)
                    progress(done, info.length)
        # No fsync: a verified artifact is re-hashed before any reuse (_matches),
        # so one torn by a power loss is detected and fetched again. Syncing
        # 200 MB would cost more than the download itself.
        if done < info.length:
            raise _EndedShort(f"stream ended at {done} of {info.length} signed bytes")
        return hashers

    @staticmethod
    def _rehash_partial(part: Path, keep: int, hashers: dict[str, hashlib._Hash]) -> None:
        """Cut ``part`` to ``keep`` bytes and feed those bytes to the hashers."""
        with part.open("ab") as f:
            f.truncate(keep)
        with part.open("rb") as f:
            while chunk := f.read(min(_READ_CHUNK, keep - f.tell())):
                for h in hashers.values():
                    h.update(chunk)

    @staticmethod
    def _matches(path: Path, info: TargetFile) -> bool:
        try:
            with path.open("rb") as f:
                info.verify_length_and_hashes(f)
            return True
        except (OSError, tuf.LengthOrHashMismatchError):
            return False

    @staticmethod
    def _discard(path: Path) -> None:
        path.unlink(missing_ok=True)
