"""The app factory: builds CAIO's services from settings and keeps them on ``app.state``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from caio.api.access import AccessLog
from caio.api.errors import install_error_handlers
from caio.api.metrics import build_registry
from caio.api.metrics import router as metrics_router
from caio.api.routes import api_v1, public_router
from caio.api.web import ClientCertificateRequired, CloseUnreadBodies, SecurityHeaders
from caio.api.web import router as web_router
from caio.core.layout import InstallLayout
from caio.core.running import load_running
from caio.core.settings import SOURCE_DIR, Settings
from caio.core.tokens import TokenStore
from caio.restart import RestartCallback, ServiceControl, make_strategy, standby_preflight
from caio.schemas import ErrorBody
from caio.update import Scheduler, build_update_service


def create_app(
    settings: Settings,
    *,
    on_restart: RestartCallback | None = None,
    control: ServiceControl | None = None,
    listen_fd: int | None = None,
) -> FastAPI:
    """Build the CAIO application.

    ``on_restart(graceful)`` is the embedded strategy's hook for a host that
    runs CAIO in-process; ``control`` and ``listen_fd`` come from the serving
    process (``caio.main``) so the systemd and exec strategies can stop it.

    Raises:
        ConfigError: the manifest or the tokens file is invalid.
    """
    running = load_running(settings)
    version_info = running.info
    tokens = TokenStore(settings.tokens_path)
    tokens.records()  # fail at start-up, not on the first request, if unreadable

    # Under caio run, the update's preflight boots the next release as the standby child.
    preflight = standby_preflight(
        os.environ, InstallLayout(settings.home).state_dir, settings.preflight_timeout
    )
    update_service = build_update_service(settings, running, SOURCE_DIR, preflight)
    update_service.recover()
    restart_strategy = make_strategy(
        settings.restart_strategy,
        control=control or ServiceControl(),
        current=update_service.layout.current_link,
        on_restart=on_restart,
        host_signal=settings.restart_signal,
        host_pid=settings.restart_pid,
        listen_fd=listen_fd,
        environ=dict(os.environ),
    )

    def scheduled_restart() -> None:
        update_service.prepare_restart(restart_strategy, requested_by="scheduler", graceful=True)
        restart_strategy.restart(True)

    scheduler = Scheduler(
        update_service,
        mode=settings.auto_update,
        interval=settings.check_interval,
        window=settings.window,
        restart=scheduled_restart,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        yield
        scheduler.stop()
        update_service.shutdown()  # a restart cancels a running job, and says so
        update_service.close()

    app = FastAPI(
        lifespan=lifespan,
        title="CAIO",
        version=version_info.version,
        summary="Verified self-update service",
        # Served by caio.api.web from packaged assets (no CDN) under a strict CSP.
        docs_url=None,
        redoc_url=None,
        responses={422: {"model": ErrorBody, "description": "invalid request"}},
    )
    app.state.settings = settings
    app.state.started_at = datetime.now(UTC)
    app.state.running = running
    app.state.version_info = version_info
    app.state.tokens = tokens
    app.state.update_service = update_service
    app.state.restart_strategy = restart_strategy
    app.state.scheduler = scheduler
    app.state.event_streams = set()  # open /api/v1/update/events streams
    app.state.metrics = build_registry(running, update_service, scheduler)

    install_error_handlers(app)
    app.include_router(public_router)
    app.include_router(api_v1)
    app.include_router(metrics_router)
    app.include_router(web_router)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(CloseUnreadBodies)
    if settings.tls_client_ca is not None:
        app.add_middleware(ClientCertificateRequired)

    app.add_middleware(AccessLog)  # outermost: it sees every answer, errors included

    return app
