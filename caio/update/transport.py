"""How CAIO reaches a repository: HTTP(S) through one httpx client, or a ``file://`` mirror.

A transport is python-tuf's ``FetcherInterface`` (ngclient fetches metadata
through ``fetch``) plus ``open_range`` for the artifact downloader, which
streams from an offset so an interrupted transfer resumes. Every transport
failure surfaces as tuf's ``DownloadError`` (retryable); HTTP errors as
``DownloadHTTPError`` with the status.

Slow retrieval (TUF's slow-retrieval attack, or a sick link): every transfer
must keep an average speed above a floor over a sliding window, and a
metadata file must arrive within an overall deadline; otherwise the transfer
fails with :class:`SlowRetrievalError` (retried like any network error).
"""

from __future__ import annotations

import abc
import base64
import collections
import contextlib
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

import httpx
from tuf.api.exceptions import DownloadError, DownloadHTTPError
from tuf.ngclient import FetcherInterface

from caio.core.files import FileFetcher
from caio.update.errors import SlowRetrievalError

CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class SpeedLimits:
    """The slow-retrieval floor: bytes per second averaged over a sliding window.

    ``metadata_deadline`` bounds the whole transfer of one metadata file.
    """

    min_bytes_per_second: float = 2048.0
    window_seconds: float = 30.0
    metadata_deadline: float = 60.0


def guard_speed(
    chunks: Iterator[bytes],
    url: str,
    limits: SpeedLimits,
    *,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[bytes]:
    """Pass ``chunks`` through, failing when the transfer is too slow.

    Raises:
        SlowRetrievalError: the average speed over the last window fell below
            the floor, or the transfer outlived ``deadline`` seconds.
    """
    start = clock()
    samples: collections.deque[tuple[float, int]] = collections.deque([(start, 0)])
    total = 0
    for chunk in chunks:
        now = clock()
        total += len(chunk)
        samples.append((now, total))
        if deadline is not None and now - start > deadline:
            raise SlowRetrievalError(f"{url}: not received within {deadline:g}s")
        while len(samples) > 2 and samples[1][0] <= now - limits.window_seconds:
            samples.popleft()
        if now - start >= limits.window_seconds:
            since, base = samples[0]
            speed = (total - base) / max(now - since, 1e-9)
            if speed < limits.min_bytes_per_second:
                raise SlowRetrievalError(
                    f"{url}: {speed:.0f} bytes/s over the last {limits.window_seconds:g}s, "
                    f"below the floor of {limits.min_bytes_per_second:g} bytes/s"
                )
        yield chunk


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


def authorization(token: str | None, userinfo: tuple[str, str] | None) -> str | None:
    """The ``Authorization`` value for the repository: its token, else URL userinfo as Basic."""
    if token:
        return f"Bearer {token}"
    if userinfo is not None:
        pair = f"{userinfo[0]}:{userinfo[1]}".encode()
        return "Basic " + base64.b64encode(pair).decode()
    return None


class _RepositoryOriginAuth(httpx.Auth):
    """Adds the repository credentials only to requests for the repository's own origin."""

    def __init__(self, header: str, origin: tuple[str, str, int | None]) -> None:
        self._header = header
        self._origin = origin

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if _origin(request.url) == self._origin:
            request.headers["Authorization"] = self._header
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
        userinfo: tuple[str, str] | None = None,
        timeout: float = 30.0,
        limits: SpeedLimits | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        header = authorization(token, userinfo)
        self._auth = _RepositoryOriginAuth(header, _origin(base_url)) if header else None
        self._limits = limits or SpeedLimits()
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
        return guard_speed(
            self._stream(response, url),
            url,
            self._limits,
            deadline=self._limits.metadata_deadline,
        )

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
            yield RangeResponse(offset, guard_speed(self._stream(response, url), url, self._limits))
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


class FileTransport(FileFetcher, Transport):
    """A ``file://`` mirror (air-gapped installations): :class:`FileFetcher` plus ranges."""

    @contextlib.contextmanager
    def open_range(self, url: str, offset: int) -> Iterator[RangeResponse]:
        yield RangeResponse(offset, self.read_from(url, offset))


def make_transport(
    base_url: str,
    *,
    user_agent: str,
    token: str | None,
    timeout: float,
    userinfo: tuple[str, str] | None = None,
    limits: SpeedLimits | None = None,
) -> Transport:
    """The transport for a repository URL (``http(s)://`` or ``file://``) without userinfo."""
    if base_url.startswith("file://"):
        return FileTransport()
    return HttpTransport(
        base_url,
        user_agent=user_agent,
        token=token,
        userinfo=userinfo,
        timeout=timeout,
        limits=limits,
    )
