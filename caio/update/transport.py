"""How CAIO reaches a repository: HTTP(S) through one urllib3 pool, or a ``file://`` mirror.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import urllib3
from tuf.api.exceptions import DownloadError, DownloadHTTPError
from tuf.ngclient import FetcherInterface
from urllib3.util import parse_url

from caio.core.files import FileFetcher
from caio.core.tls import client_context
from caio.update.errors import (
    ProxyAuthError,
    ProxyUnreachableError,
    SlowRetrievalError,
    TlsClientCertError,
    TlsVerifyError,
)

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


_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port made explicit, for comparing origins."""
    u = parse_url(url)
    scheme = (u.scheme or "http").lower()
    return (scheme, (u.host or "").lower(), u.port or _DEFAULT_PORTS.get(scheme))


def authorization(token: str | None, userinfo: tuple[str, str] | None) -> str | None:
    """The ``Authorization`` value for the repository: its token, else URL userinfo as Basic."""
    if token:
        return f"Bearer {token}"
    if userinfo is not None:
        pair = f"{userinfo[0]}:{userinfo[1]}".encode()
        return "Basic " + base64.b64encode(pair).decode()
    return None


class HttpTransport(Transport):
    """HTTP(S) on urllib3 (python-tuf's own stack): one pool, timeouts, a user agent, credentials.

    The rules, written once:

    * the repository's credentials (token, or URL userinfo as Basic) go only
      to the repository's own origin (scheme, host and port);
    * redirects are followed by hand, at most ``MAX_REDIRECTS``, and every hop
      is authorised again against that origin, so credentials never travel
      to another host;
    * urllib3 retries nothing: :class:`~caio.update.repository.RetryPolicy`
      decides, and never retries what the repository signed or served wrong.
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
        ca_bundle: Path | None = None,
        client_cert: tuple[Path, Path] | None = None,
        proxy: str | None = None,
    ) -> None:
        self._origin = _origin(base_url)
        self._authorization = authorization(token, userinfo)
        self._limits = limits or SpeedLimits()
        common: dict[str, Any] = {
            "headers": {"User-Agent": user_agent},
            "timeout": urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
            "retries": False,
            "ssl_context": client_context(ca_bundle, client_cert),
        }
        self._pool: urllib3.PoolManager
        self._proxy_credentials = proxy is not None and parse_url(proxy).auth is not None
        if proxy is None:
            self._pool = urllib3.PoolManager(**common)
        else:
            # The proxy's credentials go to the proxy only (Proxy-Authorization; for
            # HTTPS inside CONNECT, so the repository never sees them).
            at = parse_url(proxy)
            auth = urllib3.util.make_headers(proxy_basic_auth=at.auth) if at.auth else None
            plain = at._replace(auth=None).url
            self._pool = urllib3.ProxyManager(plain, proxy_headers=auth, **common)

    def _proxy_refused(self, response: urllib3.BaseHTTPResponse) -> bool:
        """Whether the proxy, not the repository, refused: 407, or a 401 while only the
        proxy was given credentials (tinyproxy answers a wrong password with 401)."""
        if response.status == 407:
            return True
        return response.status == 401 and self._proxy_credentials and self._authorization is None

    def _headers(self, url: str, extra: dict[str, str]) -> dict[str, str]:
        headers = dict(extra)
        if self._authorization is not None and _origin(url) == self._origin:
            headers["Authorization"] = self._authorization
        return headers

    def _send(self, url: str, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
        for _ in range(self.MAX_REDIRECTS + 1):
            try:
                response = self._pool.request(
                    "GET",
                    url,
                    headers=self._headers(url, headers),
                    preload_content=False,
                    redirect=False,
                )
            except urllib3.exceptions.ProxyError as e:
                # http.client's CONNECT refusal; a bare "407" also matched a proxy port
                # such as 40712 in the message, and a dead proxy read as wanting a password.
                if "Tunnel connection failed: 407" in str(e):
                    raise ProxyAuthError(f"the proxy refused {url}: {e}") from e
                raise ProxyUnreachableError(f"the proxy for {url} did not answer: {e}") from e
            except urllib3.exceptions.SSLError as e:
                # An alert from the server is about our certificate; anything else, theirs.
                kind = TlsClientCertError if "alert" in str(e).lower() else TlsVerifyError
                raise kind(f"TLS with {_origin(url)[1]} failed: {e}") from e
            except urllib3.exceptions.HTTPError as e:
                raise DownloadError(f"{type(e).__name__} fetching {url}: {e}") from e
            _refuse_client_cert_errors(response, url)
            if self._proxy_refused(response):
                _discard(response)
                raise ProxyAuthError(f"HTTP {response.status} from the proxy for {url}")
            location = response.headers.get("Location")
            if response.status in _REDIRECTS and location:
                _discard(response)
                url = urljoin(url, location)
                continue
            return response
        raise DownloadError(f"too many redirects fetching {url}")

    def _stream(self, response: urllib3.BaseHTTPResponse, url: str) -> Iterator[bytes]:
        complete = False
        try:
            # read1: the bytes that have arrived, not a fixed amount, so that bytes
            # already received are not held back when the connection drops (resume),
            # and a slow stream reaches the speed floor and cancellation at once.
            while chunk := response.read1(CHUNK_SIZE):
                yield chunk
            complete = True
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise DownloadError(f"{type(e).__name__} reading {url}: {e}") from e
        finally:
            if complete:
                response.release_conn()
            else:
                _discard(response)

    def _fetch(self, url: str) -> Iterator[bytes]:
        response = self._send(url, {})
        if response.status != 200:
            _discard(response)
            raise DownloadHTTPError(f"HTTP {response.status} for {url}", response.status)
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
            if offset and response.status == 206:
                start = _content_range_start(response.headers.get("Content-Range", ""))
                if start != offset:
                    raise DownloadError(f"server answered range from {start}, asked {offset}")
            elif response.status == 200:
                offset = 0  # range ignored: start over
            else:
                raise DownloadHTTPError(f"HTTP {response.status} for {url}", response.status)
            yield RangeResponse(offset, guard_speed(self._stream(response, url), url, self._limits))
        finally:
            _discard(response)

    def close(self) -> None:
        self._pool.clear()


# nginx completes the handshake without an acceptable client certificate and answers
# 400 with one of these (its internal 495 and 496).
_CLIENT_CERT_REFUSALS = (b"No required SSL certificate was sent", b"The SSL certificate error")


def _refuse_client_cert_errors(response: urllib3.BaseHTTPResponse, url: str) -> None:
    """Raises TlsClientCertError for a server's "no or bad client certificate" answer."""
    if response.status not in (400, 495, 496) or not url.startswith("https://"):
        return
    head = response.read(1024, decode_content=True) or b""
    if any(refusal in head for refusal in _CLIENT_CERT_REFUSALS):
        _discard(response)
        raise TlsClientCertError(f"HTTP {response.status} for {url}: {head[:80]!r}")


def _discard(response: urllib3.BaseHTTPResponse) -> None:
    """Drop a response whose body is not (fully) wanted: close its connection, never drain it."""
    response.close()
    response.release_conn()


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
    ca_bundle: Path | None = None,
    client_cert: tuple[Path, Path] | None = None,
    proxy: str | None = None,
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
        ca_bundle=ca_bundle,
        client_cert=client_cert,
        proxy=proxy,
    )
