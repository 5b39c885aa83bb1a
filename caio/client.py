"""Clients for a host application (TAI): ``CaioClient`` (sync) and ``AsyncCaioClient`` (asyncio).

Both have the same methods and return the API's own models (``caio.schemas``)::

    with CaioClient("http://127.0.0.1:8000", token=admin_token) as caio:
        caio.start_update()
        final = caio.wait(on_status=lambda s: print(s.stage, s.progress), timeout=600)
        if final.status == "failed":
            print(final.error.code if final.error else "unknown")

    async with AsyncCaioClient("http://127.0.0.1:8000", token=admin_token) as caio:
        await caio.start_update()
        final = await caio.wait(timeout=600)

Errors are a small tree under :class:`CaioApiError`, each with the API's
stable ``code``: :class:`AuthError` (401, 403), :class:`NotFoundError` (404),
:class:`ConflictError` (409, e.g. ``update_in_progress``),
:class:`ServerError` (5xx), :class:`UnreachableError` (no answer) and
:class:`WaitTimeoutError`. Idempotent calls (the GETs) are retried with
backoff when the connection fails; calls that change something never are.
Server-Sent Events are read with ``httpx-sse``. Every wait has a timeout; a
sync wait also stops when its ``cancel`` event is set, an async one when
its task is cancelled.

A CAIO that serves HTTPS under a private CA: pass ``ca_bundle`` (a PEM file or
a directory), and ``client_cert=(cert, key)`` when it requires mutual TLS.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
from httpx_sse import aconnect_sse, connect_sse
from pydantic import BaseModel, ValidationError

from caio.core.tls import client_context
from caio.schemas import (
    CheckOut,
    Health,
    HistoryOut,
    JobStatus,
    RestartOut,
    RollbackOut,
    VersionOut,
)

__all__ = [
    "AsyncCaioClient",
    "AuthError",
    "CaioApiError",
    "CaioClient",
    "ConflictError",
    "NotFoundError",
    "RestartFailedError",
    "ServerError",
    "UnreachableError",
    "WaitTimeoutError",
]

M = TypeVar("M", bound=BaseModel)
StatusCallback = Callable[[JobStatus], object]
EVENTS = "/api/v1/update/events"


class CaioApiError(Exception):
    """An error of the CAIO API: HTTP status (0: no answer), stable code, message."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"HTTP {status_code} [{code}] {message}" if status_code else message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details


class AuthError(CaioApiError):
    """401: no or an unknown token; 403: the token lacks the role."""


class NotFoundError(CaioApiError):
    """404."""


class ConflictError(CaioApiError):
    """409: e.g. ``update_in_progress``, ``no_update_in_progress``, ``restart_failed``."""


class ServerError(CaioApiError):
    """5xx: the repository failed (502), no trust configured (503), a slow repository (504)."""


class UnreachableError(CaioApiError):
    """CAIO did not answer (connection refused, reset or timed out)."""


class WaitTimeoutError(CaioApiError):
    """A wait ran out of time (``wait_timeout``) or was cancelled (``wait_cancelled``)."""


class RestartFailedError(CaioApiError):
    """The release a restart was waited for was recorded as failed (e.g. the supervisor's
    ``health_check_failed``: it was rolled back); code and message are the record's."""


def _failed_since(before: JobStatus | None, now: JobStatus, version: str) -> CaioApiError | None:
    """The failure of ``version`` recorded after ``before`` (the record read before the
    restart was asked), if there is one: the restart will not bring it up."""
    if before is None or now == before or now.error is None or now.to_version != version:
        return None
    return RestartFailedError(0, now.error.code, now.message)


def _error(response: httpx.Response) -> CaioApiError:
    try:
        body = response.json()["error"]
        code, message = str(body["code"]), str(body["message"])
        details = body.get("details")
    except (ValueError, KeyError, TypeError):
        code, message, details = f"http_{response.status_code}", response.text[:200], None
    status = response.status_code
    kind: type[CaioApiError] = CaioApiError
    if status in (401, 403):
        kind = AuthError
    elif status == 404:
        kind = NotFoundError
    elif status == 409:
        kind = ConflictError
    elif status >= 500:
        kind = ServerError
    return kind(status, code, message, details)


def _parse(response: httpx.Response, model: type[M]) -> M:
    if response.is_error:
        raise _error(response)
    try:
        return model.model_validate_json(response.content)
    except ValidationError as e:
        raise CaioApiError(
            response.status_code, "bad_answer", f"not a {model.__name__}: {e}"
        ) from e


def _update_body(
    target_version: str | None, allow_downgrade: bool, allow_withdrawn: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {"allow_downgrade": allow_downgrade, "allow_withdrawn": allow_withdrawn}
    if target_version is not None:
        body["target_version"] = target_version
    return body


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _tls_refusal(error: httpx.TransportError) -> str | None:
    """The code of a TLS failure that a retry cannot change, or None."""
    if "CERTIFICATE_VERIFY_FAILED" in str(error):
        return "tls_verify_failed"
    if "alert" in str(error).lower():
        return "tls_client_cert_refused"
    return None


def _unreachable(base_url: httpx.URL, error: httpx.TransportError) -> UnreachableError:
    code = _tls_refusal(error)
    if code == "tls_verify_failed":
        return UnreachableError(
            0,
            code,
            f"{base_url}: its certificate is not trusted ({error}); "
            "pass the CA that issued it (ca_bundle, caio remote --ca-bundle)",
        )
    if code == "tls_client_cert_refused":
        return UnreachableError(
            0,
            code,
            f"{base_url}: the TLS handshake was refused ({error}); it may require a "
            "client certificate (client_cert, caio remote --client-cert)",
        )
    return UnreachableError(0, "unreachable", f"{base_url}: {error}")


def _verify(
    ca_bundle: str | Path | None, client_cert: tuple[str | Path, str | Path] | None
) -> ssl.SSLContext | bool:
    """What httpx verifies an HTTPS CAIO with: its private CA, and our certificate for
    mutual TLS; True: the system's CAs."""
    context = client_context(
        None if ca_bundle is None else Path(ca_bundle),
        None if client_cert is None else (Path(client_cert[0]), Path(client_cert[1])),
    )
    return True if context is None else context


class CaioClient:
    """The CAIO API from synchronous code (httpx ``Client``)."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
        ca_bundle: str | Path | None = None,
        client_cert: tuple[str | Path, str | Path] | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=_headers(token),
            timeout=timeout,
            transport=transport,
            verify=_verify(ca_bundle, client_cert),
        )
        self._retries = retries
        self._backoff = backoff

    def __enter__(self) -> CaioClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempts = self._retries if method == "GET" else 1  # only what is safe to repeat
        for attempt in range(1, attempts + 1):
            try:
                return self._http.request(method, path, **kwargs)
            except httpx.TransportError as e:
                if attempt == attempts or _tls_refusal(e) is not None:
                    raise _unreachable(self._http.base_url, e) from e
                time.sleep(self._backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    # --- public -----------------------------------------------------------
    def version(self) -> VersionOut:
        return _parse(self._send("GET", "/api/v1/version"), VersionOut)

    def health(self) -> Health:
        return _parse(self._send("GET", "/health"), Health)

    # --- viewer -----------------------------------------------------------
    def status(self) -> JobStatus:
        return _parse(self._send("GET", "/api/v1/update"), JobStatus)

    def check(self) -> CheckOut:
        return _parse(self._send("GET", "/api/v1/update/check"), CheckOut)

    def history(self, limit: int = 100) -> HistoryOut:
        return _parse(
            self._send("GET", "/api/v1/update/history", params={"limit": limit}), HistoryOut
        )

    # --- admin ------------------------------------------------------------
    def start_update(
        self,
        target_version: str | None = None,
        *,
        allow_downgrade: bool = False,
        allow_withdrawn: bool = False,
    ) -> JobStatus:
        """Start a job (202). Raises ConflictError ``update_in_progress`` if one runs."""
        body = _update_body(target_version, allow_downgrade, allow_withdrawn)
        return _parse(self._send("POST", "/api/v1/update", json=body), JobStatus)

    def cancel(self) -> JobStatus:
        """Cancel the running job. Raises ConflictError ``no_update_in_progress``."""
        return _parse(self._send("DELETE", "/api/v1/update"), JobStatus)

    def restart(self, *, graceful: bool = True) -> RestartOut:
        """Restart into the current release (202). Raises ConflictError ``restart_failed``."""
        return _parse(
            self._send("POST", "/api/v1/restart", json={"graceful": graceful}), RestartOut
        )

    def rollback(self) -> RollbackOut:
        return _parse(self._send("POST", "/api/v1/rollback"), RollbackOut)

    # --- following a job --------------------------------------------------
    def events(self, *, read_timeout: float | None = None) -> Iterator[JobStatus]:
        """Status updates from the event stream, the current one first, until the job ends."""
        timeout = httpx.Timeout(self._http.timeout.connect, read=read_timeout)
        try:
            with connect_sse(self._http, "GET", EVENTS, timeout=timeout) as source:
                if source.response.is_error:
                    source.response.read()
                    raise _error(source.response)
                for event in source.iter_sse():
                    if event.event == "status":
                        yield JobStatus.model_validate_json(event.data)
        except httpx.ConnectError as e:
            raise UnreachableError(0, "unreachable", f"{self._http.base_url}: {e}") from e

    def wait(
        self,
        on_status: StatusCallback | None = None,
        *,
        timeout: float = 3600,
        cancel: threading.Event | None = None,
        poll: float = 1.0,
    ) -> JobStatus:
        """Follow the job until it ends; returns its final status.

        The stream is read in slices of ``poll`` seconds, so a timeout or a
        ``cancel`` is noticed within that; a dropped stream is reopened.

        Raises:
            WaitTimeoutError: ``wait_timeout`` after ``timeout`` seconds,
                ``wait_cancelled`` once ``cancel`` is set.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                for status in self.events(read_timeout=poll):
                    if on_status is not None:
                        on_status(status)
                    if not status.running:
                        return status
                    _check_wait(deadline, timeout, cancel)
            except (httpx.ReadTimeout, httpx.RemoteProtocolError, UnreachableError):
                pass  # a quiet or dropped stream: look at the clock, then open it again
            _check_wait(deadline, timeout, cancel)
            time.sleep(min(poll, 0.2))

    def wait_for_version(
        self,
        version: str,
        *,
        timeout: float = 120,
        cancel: threading.Event | None = None,
        before: JobStatus | None = None,
    ) -> VersionOut:
        """Ask ``/api/v1/version`` until it reports ``version`` (after a restart).

        With ``before`` (``status()`` read before the restart was asked), a failure of
        ``version`` recorded since (the supervisor rolled it back) ends the wait at once.

        Raises:
            RestartFailedError: ``version`` was recorded as failed since ``before``.
            WaitTimeoutError: not running in time, or cancelled.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = self.version()
                if info.version == version:
                    return info
                failed = _failed_since(before, self.status(), version)
            except CaioApiError:
                failed = None  # restarting: the socket may briefly not answer
            if failed is not None:
                raise failed
            late = f"{version} was not running after {timeout:g}s"
            _check_wait(deadline, timeout, cancel, f"{version} to run", late)
            time.sleep(0.2)


def _check_wait(
    deadline: float,
    timeout: float,
    cancel: threading.Event | None,
    what: str = "the job",
    late: str | None = None,
) -> None:
    if cancel is not None and cancel.is_set():
        raise WaitTimeoutError(0, "wait_cancelled", f"stopped waiting for {what}: cancelled")
    if time.monotonic() > deadline:
        message = late or f"{what} did not end within {timeout:g}s"
        raise WaitTimeoutError(0, "wait_timeout", message)


class AsyncCaioClient:
    """The CAIO API from asyncio code (httpx ``AsyncClient``): the same methods, awaited."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
        ca_bundle: str | Path | None = None,
        client_cert: tuple[str | Path, str | Path] | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=_headers(token),
            timeout=timeout,
            transport=transport,
            verify=_verify(ca_bundle, client_cert),
        )
        self._retries = retries
        self._backoff = backoff

    async def __aenter__(self) -> AsyncCaioClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempts = self._retries if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                return await self._http.request(method, path, **kwargs)
            except httpx.TransportError as e:
                if attempt == attempts or _tls_refusal(e) is not None:
                    raise _unreachable(self._http.base_url, e) from e
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    async def version(self) -> VersionOut:
        return _parse(await self._send("GET", "/api/v1/version"), VersionOut)

    async def health(self) -> Health:
        return _parse(await self._send("GET", "/health"), Health)

    async def status(self) -> JobStatus:
        return _parse(await self._send("GET", "/api/v1/update"), JobStatus)

    async def check(self) -> CheckOut:
        return _parse(await self._send("GET", "/api/v1/update/check"), CheckOut)

    async def history(self, limit: int = 100) -> HistoryOut:
        response = await self._send("GET", "/api/v1/update/history", params={"limit": limit})
        return _parse(response, HistoryOut)

    async def start_update(
        self,
        target_version: str | None = None,
        *,
        allow_downgrade: bool = False,
        allow_withdrawn: bool = False,
    ) -> JobStatus:
        body = _update_body(target_version, allow_downgrade, allow_withdrawn)
        return _parse(await self._send("POST", "/api/v1/update", json=body), JobStatus)

    async def cancel(self) -> JobStatus:
        return _parse(await self._send("DELETE", "/api/v1/update"), JobStatus)

    async def restart(self, *, graceful: bool = True) -> RestartOut:
        response = await self._send("POST", "/api/v1/restart", json={"graceful": graceful})
        return _parse(response, RestartOut)

    async def rollback(self) -> RollbackOut:
        return _parse(await self._send("POST", "/api/v1/rollback"), RollbackOut)

    async def events(self) -> AsyncIterator[JobStatus]:
        """Status updates from the event stream, the current one first, until the job ends."""
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        try:
            async with aconnect_sse(self._http, "GET", EVENTS, timeout=timeout) as source:
                if source.response.is_error:
                    await source.response.aread()
                    raise _error(source.response)
                async for event in source.aiter_sse():
                    if event.event == "status":
                        yield JobStatus.model_validate_json(event.data)
        except httpx.ConnectError as e:
            raise UnreachableError(0, "unreachable", f"{self._http.base_url}: {e}") from e

    async def wait(
        self, on_status: StatusCallback | None = None, *, timeout: float = 3600
    ) -> JobStatus:
        """Follow the job until it ends (cancel the task to stop waiting).

        Raises:
            WaitTimeoutError: ``wait_timeout`` after ``timeout`` seconds.
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        async for status in self.events():
                            if on_status is not None:
                                on_status(status)
                            if not status.running:
                                return status
                    except (httpx.RemoteProtocolError, httpx.ReadError, UnreachableError):
                        await asyncio.sleep(0.2)  # a dropped stream: open it again
        except TimeoutError as e:
            raise WaitTimeoutError(
                0, "wait_timeout", f"the job did not end within {timeout:g}s"
            ) from e

    async def wait_for_version(
        self, version: str, *, timeout: float = 120, before: JobStatus | None = None
    ) -> VersionOut:
        """Ask ``/api/v1/version`` until it reports ``version`` (after a restart); with
        ``before``, a failure of ``version`` recorded since raises RestartFailedError."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        info = await self.version()
                        if info.version == version:
                            return info
                        failed = _failed_since(before, await self.status(), version)
                    except CaioApiError:
                        failed = None  # restarting: the socket may briefly not answer
                    if failed is not None:
                        raise failed
                    await asyncio.sleep(0.2)
        except TimeoutError as e:
            raise WaitTimeoutError(
                0, "wait_timeout", f"{version} was not running after {timeout:g}s"
            ) from e
