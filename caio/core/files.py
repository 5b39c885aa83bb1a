"""File access shared by CAIO and tuf_repo: crash-safe writes, and ``file://`` reads for ngclient.

Writes go to a temp file in the same directory, are fsynced, then
``os.replace``-d. :class:`FileFetcher` serves a ``file://`` repository (an
air-gapped mirror, or ``tuf-repo verify``) to python-tuf's ngclient.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tuf.api.exceptions import DownloadError, DownloadHTTPError
from tuf.ngclient import FetcherInterface

from caio.core.release_format import is_safe_target_path

READ_CHUNK = 1024 * 1024


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a mix.

    Raises:
        OSError: the directory is not writable, the disk is full, ...
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            os.fchmod(tmp.fileno(), mode)
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any, *, mode: int = 0o644) -> None:
    """Atomically write ``obj`` as pretty, key-sorted JSON with a trailing newline."""
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(path, text.encode(), mode=mode)


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileFetcher(FetcherInterface):
    """Serves ``file://`` URLs to ngclient, with the semantics of HTTP.

    A missing file is a 404. Reads stay inside the repository: a path that
    would climb out (a signed target ``caio/../../x``, or a percent-encoded
    ``..``) is refused, never opened.
    """

    def _fetch(self, url: str) -> Iterator[bytes]:
        return self.read_from(url, 0)

    def read_from(self, url: str, offset: int) -> Iterator[bytes]:
        """The file's bytes from ``offset``, in chunks.

        Raises:
            DownloadHTTPError: 404 for a missing file or a path that climbs out.
            DownloadError: the file cannot be read.
        """
        raw = unquote(urlsplit(url).path)
        if not raw.startswith("/") or not is_safe_target_path(raw.lstrip("/")):
            raise DownloadHTTPError(f"refusing {raw!r}: not a plain path in the mirror", 404)
        path = Path(raw)
        try:
            f = path.open("rb")
        except FileNotFoundError as e:
            raise DownloadHTTPError(f"{raw} not found", 404) from e
        except OSError as e:
            raise DownloadError(f"{raw}: {e.strerror}") from e
        f.seek(offset)

        def chunks() -> Iterator[bytes]:
            with f:
                while chunk := f.read(READ_CHUNK):
                    yield chunk

        return chunks()
