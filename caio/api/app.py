"""The app factory: builds CAIO's services from settings and keeps them on ``app.state``."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from caio.api.errors import ErrorBody, install_error_handlers
from caio.api.routes import api_v1, public_router
from caio.core.manifest import Manifest, load_manifest
from caio.core.settings import SOURCE_DIR, Settings
from caio.core.tokens import TokenStore
from caio.core.version import resolve_version_info
from caio.update import build_update_service

access_log = logging.getLogger("caio.access")


def read_manifest(settings: Settings) -> Manifest | None:
    """The manifest in force: required when configured explicitly, optional by default.

    Raises:
        ConfigError: the manifest is invalid, or configured and missing.
    """
    path = settings.manifest_path
    if settings.manifest is None and not path.exists():
        return None
    return load_manifest(path)


def create_app(settings: Settings) -> FastAPI:
    """Build the CAIO application.

    Raises:
        ConfigError: the manifest or the tokens file is invalid.
    """
    manifest = read_manifest(settings)
    version_info = resolve_version_info(manifest, source_dir=SOURCE_DIR)
    tokens = TokenStore(settings.tokens_path)
    tokens.records()  # fail at start-up, not on the first request, if unreadable

    base_url = settings.update_url or (manifest.update_url if manifest else None)
    running = manifest or Manifest(
        name="caio",
        version=version_info.version,
        build_date=version_info.build_date,
        commit=version_info.commit,
        update_url=base_url or "file:///",
        channel=settings.channel or "stable",
    )
    update_service, transport = build_update_service(settings, running, SOURCE_DIR, base_url)
    update_service.recover()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        transport.close()

    app = FastAPI(
        lifespan=lifespan,
        title="CAIO",
        version=version_info.version,
        summary="Verified self-update service",
        responses={
            401: {"model": ErrorBody, "description": "missing or unknown token"},
            403: {"model": ErrorBody, "description": "token lacks the role"},
            422: {"model": ErrorBody, "description": "invalid request"},
        },
    )
    app.state.settings = settings
    app.state.manifest = manifest
    app.state.version_info = version_info
    app.state.tokens = tokens
    app.state.update_service = update_service

    install_error_handlers(app)
    app.include_router(public_router)
    app.include_router(api_v1)

    @app.middleware("http")
    async def log_request(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
            client = request.client.host if request.client else "-"
            access_log.info(
                '%s "%s %s" %d %.1fms',
                client,
                request.method,
                request.url.path,
                status,
                elapsed_ms,
                extra={
                    "client": client,
                    "method": request.method,
                    "path": request.url.path,
                    "status": status,
                    "duration_ms": elapsed_ms,
                },
            )

    return app
