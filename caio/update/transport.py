"""How CAIO reaches a repository: HTTP(S) through one httpx client, or a ``file://`` mirror.

A transport is python-tuf's ``FetcherInterface`` (ngclient fetches metadata
through ``fetch``) plus ``open_range`` for the artifact downloader, which
streams from an offset so an interrupted transfer resumes. Every transport
failure surfaces as tuf's ``DownloadError`` (retryable); HTTP errors as
``DownloadHTTPError`` with the status.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
from tuf.api.exceptions import DownloadError, DownloadHTTPError
from tuf.ngclient import FetcherInterface

CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class RangeResponse:
    """An open body stream: ``offset`` is where it starts (0 when a range was ignored)."""

    offset: int
    chunks: Iterator[bytes]


class Transport(FetcherInterface):
    """A fetcher for ngclient that can also stream an artifact from an offset."""

    @abc.abstractmethod
    def open_range(self, url: str, offset: int) -> contextlib.AbstractContextManager[RangeResponse]:
        """Stream ``url`` from byte ``offset`` (or from 0 if the server ignores ranges)."""

    def close(self) -> None:
        """Release connections."""


def _origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    u = httpx.URL(str(url))
    return (u.scheme, u.host, u.port)


class _RepositoryTokenAuth(httpx.Auth):
    """Adds the bearer token only to requests for the repository's own origin."""

    def __init__(self, token: str, origin: tuple[str, str, int | None]) -> None:
        self._token = token
        self._origin = origin

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if _origin(request.url) == self._origin:
            request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


class HttpTransport(Transport):
    """HTTP(S) with one reused client, timeouts, a user agent and an optional token.

    Redirects are followed by hand so that the token never travels to another
    origin: each hop is re-authorised against the repository origin.
    """

    MAX_REDIRECTS = 5

    def __init__(
        self,
        base_url: str,
        *,
        user_agent: str,
        token: str | None = None,
        timeout: float = 30.0,
        client: httpx.Client | None = None,
    ) -> None:
        self._auth = _RepositoryTokenAuth(token, _origin(base_url)) if token else None
        self._client = client or httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"User-Agent": user_agent},
            follow_redirects=False,
        )

    def _send(self, url: str, headers: dict[str, str]) -> httpx.Response:
        for _ in range(self.MAX_REDIRECTS + 1):
            request = self._client.build_request("GET", url, headers=headers)
            try:
                response = self._client.send(request, auth=self._auth, stream=True)
            except httpx.HTTPError as e:
                raise DownloadError(f"{type(e).__name__} fetching {url}: {e}") from e
            if response.is_redirect and "location" in response.headers:
                response.close()
                url = str(response.url.join(response.headers["location"]))
                continue
            return response
        raise DownloadError(f"too many redirects fetching {url}")

    def _stream(self, response: httpx.Response, url: str) -> Iterator[bytes]:
        try:
            # Chunks as they arrive: a fixed chunk size would hold back bytes
            # already received when the connection drops, defeating resume.
            yield from response.iter_bytes()
        except httpx.HTTPError as e:
            raise DownloadError(f"{type(e).__name__} reading {url}: {e}") from e
        finally:
            response.close()

    def _fetch(self, url: str) -> Iterator[bytes]:
        response = self._send(url, {})
        if response.status_code != 200:
            response.close()
            raise DownloadHTTPError(f"HTTP {response.status_code} for {url}", response.status_code)
        return self._stream(response, url)

    @contextlib.contextmanager
    def open_range(self, url: str, offset: int) -> Iterator[RangeResponse]:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        response = self._send(url, headers)
        try:
            if offset and response.status_code == 206:
                start = _content_range_start(response.headers.get("content-range", ""))
                if start != offset:
                    raise DownloadError(f"server answered range from {start}, asked {offset}")
            elif response.status_code == 200:
                offset = 0  # range ignored: start over
            else:
                raise DownloadHTTPError(
                    f"HTTP {response.status_code} for {url}", response.status_code
                )
            yield RangeResponse(offset, self._stream(response, url))
        finally:
            response.close()

    def close(self) -> None:
        self._client.close()


def _content_range_start(header: str) -> int | None:
    try:
        unit, _, rest = header.partition(" ")
        return int(rest.split("-", 1)[0]) if unit == "bytes" else None
    except ValueError:
        return None


class FileTransport(Transport):
    """A ``file://`` mirror (air-gapped installations); same semantics as HTTP."""

    def _path(self, url: str) -> Path:
        return Path(unquote(urlsplit(url).path))

    def _fetch(self, url: str) -> Iterator[bytes]:
        return self._read(url, 0)

    def _read(self, url: str, offset: int) -> Iterator[bytes]:
        path = self._path(url)
        try:
            f = path.open("rb")
        except FileNotFoundError as e:
            raise DownloadHTTPError(f"{path} not found", 404) from e
        except OSError as e:
            raise DownloadError(f"{path}: {e.strerror}") from e
        f.seek(offset)

        def chunks() -> Iterator[bytes]:
            with f:
                while chunk := f.read(CHUNK_SIZE):
                    yield chunk

        return chunks()

    @contextlib.contextmanager
    def open_range(self, url: str, offset: int) -> Iterator[RangeResponse]:
        yield RangeResponse(offset, self._read(url, offset))


def make_transport(
    base_url: str, *, user_agent: str, token: str | None, timeout: float
) -> Transport:
    """The transport for a repository URL (``http(s)://`` or ``file://``)."""
    if base_url.startswith("file://"):
        return FileTransport()
    return HttpTransport(base_url, user_agent=user_agent, token=token, timeout=timeout)
