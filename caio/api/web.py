"""The pages: the operator console at ``/``, and the API docs at ``/docs`` and ``/redoc``.

Everything a page loads comes from CAIO itself: the console's HTML, CSS and
JavaScript ship in the package (``caio/api/console/``, no build step), and
the Swagger UI and ReDoc bundles come from the ``fastapi-offline`` package,
so the pages work on an air-gapped host. Every answer carries strict
security headers (:class:`SecurityHeaders`): no inline script or style, no
framing, no MIME sniffing, no referrer.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caio.api.errors import ApiError, error_response

CONSOLE_DIR = Path(__file__).resolve().parent / "console"
CONSOLE_ASSETS = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "docs.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
}
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # Swagger UI draws its icons as data: SVG
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# ReDoc styles itself with styled-components, which writes <style> elements that no
# hash or nonce can cover; that page alone may apply inline styles. Its scripts are as
# strict as everywhere else: only CAIO's own files run.
REDOC_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate CSP 2
    "Cross-Origin-Opener-Policy": "same-origin",
}
# A day: the assets change only with a new release, and a restart into it reloads the page.
ASSET_CACHE = "public, max-age=86400"

router = APIRouter(include_in_schema=False)


class SecurityHeaders:
    """ASGI middleware: the same strict headers on every answer, pages and API alike.

    Plain ASGI rather than ``BaseHTTPMiddleware``: it only adds headers to the
    response start, and leaves streaming bodies and background tasks alone.
    A header the route set itself (``/redoc``'s CSP) is kept.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


class CloseUnreadBodies:
    """ASGI middleware: an answer that leaves a request body unread closes the connection.

    On every route, 404 and 405 included: the answer carries
    ``Connection: close`` and the server drops the connection after it,
    rather than keeping it open for (and reading) whatever the client is
    still sending. A stranger's one body byte after the answer then holds
    nothing.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length", b"0").strip()
        unread = [b"transfer-encoding" in headers or declared not in (b"0", b"")]

        async def reading() -> Message:
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                unread[0] = False
            return message

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and unread[0]:
                present = {name.lower() for name, _ in message.get("headers", [])}
                if b"connection" not in present:
                    extra = (b"connection", b"close")
                    message = {**message, "headers": [*message.get("headers", []), extra]}
            await send(message)

        await self.app(scope, reading, closing)


@cache
def _page(name: str) -> str:
    return (CONSOLE_DIR / name).read_text(encoding="utf-8")


@cache
def docs_assets_dir() -> Path:
    """Where ``fastapi-offline`` keeps the Swagger UI and ReDoc bundles (not imported)."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fastapi-offline is not installed: the docs pages need its assets")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@router.get("/", response_class=HTMLResponse)
async def console() -> HTMLResponse:
    """The operator console: public page; what it shows beyond the version needs a token."""
    return HTMLResponse(_page("index.html"), headers={"Cache-Control": "no-cache"})


@router.get("/console/{name}")
async def console_asset(name: str) -> FileResponse:
    if name not in CONSOLE_ASSETS:
        raise ApiError(404, "not_found", f"no console asset {name!r}")
    return FileResponse(
        CONSOLE_DIR / name, media_type=CONSOLE_ASSETS[name], headers={"Cache-Control": "no-cache"}
    )


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui() -> HTMLResponse:
    return HTMLResponse(_page("docs.html"))


@router.get("/redoc", response_class=HTMLResponse)
async def redoc() -> HTMLResponse:
    return HTMLResponse(_page("redoc.html"), headers={"Content-Security-Policy": REDOC_CSP})


# ReDoc's sidebar footer shows a logo from a CDN; the CSP blocks the request, and the
# browser logs a violation on every visit. The bundle is served with CAIO's own icon instead.
REDOC_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


@cache
def _redoc_bundle() -> bytes:
    bundle = (docs_assets_dir() / "redoc.standalone.js").read_bytes()
    return bundle.replace(REDOC_CDN_LOGO, b"/console/favicon.svg")


@router.get("/docs/assets/{name}", response_model=None)
async def docs_asset(name: str) -> FileResponse | Response:
    if name not in DOCS_ASSETS:
        raise ApiError(404, "not_found", f"no docs asset {name!r}")
    if name == "redoc.standalone.js":
        return Response(
            _redoc_bundle(), media_type=DOCS_ASSETS[name], headers={"Cache-Control": ASSET_CACHE}
        )
    return FileResponse(
        docs_assets_dir() / name,
        media_type=DOCS_ASSETS[name],
        headers={"Cache-Control": ASSET_CACHE},
    )


class ClientCertificateRequired:
    """ASGI middleware for ``CAIO_TLS_CLIENT_CA``: an HTTPS caller without a client
    certificate gets 403 ``client_cert_required``, whatever it asks, before any route.

    The TLS handshake has already refused certificates from other CAs. The
    supervisor's private control socket is plain HTTP and not concerned.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tls = scope.get("extensions", {}).get("tls") or {}
        if (
            scope["type"] == "http"
            and scope.get("scheme") == "https"
            and not tls.get("client_cert_chain")
        ):
            refused = error_response(
                403,
                "client_cert_required",
                "this CAIO admits only callers with a TLS client certificate from its "
                "CA (CAIO_TLS_CLIENT_CA): present one (client_cert=, caio remote "
                "--client-cert)",
                headers={"Connection": "close"},
            )
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)
