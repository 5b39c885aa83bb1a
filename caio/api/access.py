"""One access-log line per request: client, method, path, status, duration. Never the token."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("caio.access")


class AccessLog:
    """ASGI middleware that logs each request when its answer has been sent.

    Plain ASGI rather than ``@app.middleware("http")`` (Starlette's
    ``BaseHTTPMiddleware``), which runs every request through an extra task and
    memory stream: on `/api/v1/version` that was most of CAIO's own cost. The
    duration covers the whole answer; an event stream is logged when it ends.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
            client = scope.get("client")
            host = client[0] if client else "-"
            method, path = scope.get("method", "-"), scope.get("path", "-")
            access_log.info(
                '%s "%s %s" %d %.1fms',
                host,
                method,
                path,
                status,
                elapsed_ms,
                extra={
                    "client": host,
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": elapsed_ms,
                },
            )
