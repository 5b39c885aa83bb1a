"""``CaioClient``: what a host application (TAI) uses to drive CAIO over HTTP.

client = CaioClient("http://127.0.0.1:8000", token=admin_token)
client.start_update()
final = client.wait(on_status=lambda s: print(s["stage"], s["progress"]))
if final["status"] == "failed":
    print(final["error"]["code"])
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

__all__ = ["CaioApiError", "CaioClient"]

Status = dict[str, Any]


class CaioApiError(Exception):
    """An error answer of the CAIO API: HTTP status, stable code and message."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status_code} [{code}] {message}")
        self.status_code = status_code
        self.code = code
        self.message = message


class CaioClient:
    """A small, typed-enough client for the CAIO API (httpx underneath)."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> CaioClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise CaioApiError(0, "unreachable", f"{self._http.base_url}: {e}") from e
        if response.is_error:
            try:
                error = response.json()["error"]
                raise CaioApiError(response.status_code, error["code"], error["message"])
            except (ValueError, KeyError, TypeError):
                raise CaioApiError(
                    response.status_code, "http_error", response.text[:200]
                ) from None
        return response.json()

    # --- public endpoints -------------------------------------------------
    def version(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/api/v1/version")
        return result

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    # --- update -------------------------------------------------------------
    def status(self) -> Status:
        result: Status = self._call("GET", "/api/v1/update")
        return result

    def check(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/api/v1/update/check")
        return result

    def history(self, limit: int = 100) -> dict[str, Any]:
        """``{"records": [...], "integrity": {...}}``: audit records and the chain's state."""
        result: dict[str, Any] = self._call(
            "GET", "/api/v1/update/history", params={"limit": limit}
        )
        return result

    def start_update(
        self,
        target_version: str | None = None,
        *,
        allow_downgrade: bool = False,
        allow_withdrawn: bool = False,
    ) -> Status:
        """Start a job (202). Raises CaioApiError 409 ``update_in_progress`` if one runs."""
        body: dict[str, Any] = {
            "allow_downgrade": allow_downgrade,
            "allow_withdrawn": allow_withdrawn,
        }
        if target_version is not None:
            body["target_version"] = target_version
        result: Status = self._call("POST", "/api/v1/update", json=body)
        return result

    def restart(self, *, graceful: bool = True) -> dict[str, Any]:
        """Ask CAIO to run the current release (202). Raises CaioApiError 409 ``restart_failed``."""
        result: dict[str, Any] = self._call("POST", "/api/v1/restart", json={"graceful": graceful})
        return result

    def wait_for_version(self, version: str, *, timeout: float = 120) -> dict[str, Any]:
        """Poll ``/api/v1/version`` until it reports ``version`` (after a restart).

        Raises:
            CaioApiError: ``restart_timeout`` when it does not in time.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                info = self.version()
                if info["version"] == version:
                    return info
            except CaioApiError:
                pass  # restarting: the socket may briefly not answer
            time.sleep(0.2)
        raise CaioApiError(0, "restart_timeout", f"{version} was not running after {timeout:g}s")

    def cancel(self) -> Status:
        """Cancel the running job. Raises CaioApiError 409 ``no_update_in_progress``."""
        result: Status = self._call("DELETE", "/api/v1/update")
        return result

    def rollback(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/api/v1/rollback")
        return result

    def events(self) -> Iterator[Status]:
        """Status updates from the event stream until the job ends."""
        with self._http.stream("GET", "/api/v1/update/events", timeout=None) as response:
            if response.is_error:
                response.read()
                error = response.json().get("error", {})
                raise CaioApiError(
                    response.status_code, error.get("code", "http_error"), error.get("message", "")
                )
            data: list[str] = []
            for line in response.iter_lines():
                if line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif not line and data:
                    yield json.loads("\n".join(data))
                    data = []

    def wait(
        self, on_status: Callable[[Status], None] | None = None, *, timeout: float = 3600
    ) -> Status:
        """Follow the job until it ends; falls back to polling if the stream drops."""
        deadline = time.monotonic() + timeout
        last: Status = self.status()
        try:
            for status in self.events():
                last = status
                if on_status:
                    on_status(status)
                if status["status"] != "updating" or time.monotonic() > deadline:
                    return status
        except (httpx.HTTPError, CaioApiError):
            pass  # the stream dropped (e.g. a restart): fall back to polling below
        while last["status"] == "updating" and time.monotonic() < deadline:
            time.sleep(0.5)
            last = self.status()
            if on_status:
                on_status(last)
        return last
