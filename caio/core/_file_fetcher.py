"""``file://`` reads for ngclient (imported through :mod:`caio.core.files`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tuf.api.exceptions import DownloadError, DownloadHTTPError
from tuf.ngclient import FetcherInterface

from caio.core.release_format import is_safe_target_path

READ_CHUNK = 1024 * 1024


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
