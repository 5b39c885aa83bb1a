"""The serving process: ``python -m caio.main`` (also what ``caio run`` starts as its child).

It listens on an inherited socket when given one (``CAIO_LISTEN_FD`` from the
supervisor or an exec, ``LISTEN_FDS`` from systemd socket activation) or binds
``CAIO_HOST:CAIO_PORT`` itself; it reports ``READY=1`` once it serves and
``STOPPING=1`` when it stops, over ``$NOTIFY_SOCKET``; it sends ``WATCHDOG=1``
when systemd asks for it; and when it stops for a restart it exits with the
strategy's code or execs into the current release.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import sys
import threading
from collections.abc import Callable

import uvicorn

from caio.api import create_app
from caio.core.errors import CaioError, ConfigError, ListenError
from caio.core.layout import InstallLayout
from caio.core.logs import configure_logging
from caio.core.running import load_running
from caio.core.settings import Settings, load_settings
from caio.core.tls import api_context
from caio.restart import (
    BOOT_FILE,
    BootCounter,
    RateLimitedLoopErrors,
    ServiceControl,
    bind,
    guarded_protocol,
    inherited_sockets,
    mark_when_stable,
    notify,
    raise_open_file_limit,
    watch_supervisor,
)

ACCEPT_BURST = 64


class NotifyingServer(uvicorn.Server):
    """uvicorn, plus sd_notify READY=1 once it accepts and STOPPING=1 when it stops.

    With ``tls``, the public sockets serve HTTPS and a handshake must end within
    ``handshake_timeout`` (a connection counts against the cap only once it has
    one); the supervisor's private control socket stays plain HTTP.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        version: str,
        *,
        tls: ssl.SSLContext | None = None,
        handshake_timeout: float = 10.0,
        on_stopping: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.version = version
        self.tls = tls
        self.handshake_timeout = handshake_timeout
        self.on_stopping = on_stopping

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(RateLimitedLoopErrors())
        if self.tls is None or sockets is None:
            await super().startup(sockets)
        else:
            private = [s for s in sockets if s.family == socket.AF_UNIX]
            await super().startup(private)
            config = self.config

            def protocol() -> asyncio.Protocol:
                return config.http_protocol_class(  # type: ignore[call-arg]
                    config=config,
                    server_state=self.server_state,
                    app_state=self.lifespan.state,
                    _loop=loop,
                )

            for sock in sockets:
                if sock.family != socket.AF_UNIX:
                    self.servers.append(
                        await loop.create_server(
                            protocol,
                            sock=sock,
                            ssl=self.tls,
                            backlog=config.backlog,
                            ssl_handshake_timeout=self.handshake_timeout,
                        )
                    )
        if self.started:
            notify.send(
                f"READY=1\nSTATUS=serving caio {self.version}\nX_CAIO_VERSION={self.version}"
            )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """A graceful stop (a signal, or a restart's): uvicorn re-raises a signal after it,
        so what must be said about a clean stop is said here, before."""
        notify.send("STOPPING=1")
        if self.started and self.on_stopping is not None:
            self.on_stopping()
        await super().shutdown(sockets)

    def ask_exit(self) -> None:
        """Stop gracefully, as on SIGTERM (safe from any thread)."""
        self.should_exit = True


def _watchdog(stop: threading.Event) -> None:
    """Ping systemd at half the watchdog interval while serving."""
    interval = int(os.environ.get("WATCHDOG_USEC", "0")) / 2_000_000
    if interval <= 0:
        return
    while not stop.wait(interval):
        notify.send("WATCHDOG=1")


def serve(settings: Settings) -> int:
    """Serve until stopped; returns the exit code (or execs into a new release).

    Raises:
        ConfigError: settings, manifest or tokens file are invalid.
        ListenError: the address cannot be had (another program holds it).
    """
    configure_logging(settings.log_level, settings.log_format)
    raise_open_file_limit()
    load_running(settings)  # a bad manifest is named before the port is taken
    tls = api_context(settings)  # so is a bad certificate; read at every start (rotation)
    sockets = inherited_sockets(dict(os.environ))
    if not sockets or sockets[0].family == socket.AF_UNIX:
        try:
            sockets.insert(0, bind(settings.host, settings.port))
        except OSError as e:
            raise ListenError.from_os_error(settings.host, settings.port, e) from e
    # A private copy of the listening socket survives uvicorn's close, for an exec restart.
    listen_copy = os.dup(sockets[0].fileno())
    control = ServiceControl()
    app = create_app(settings, control=control, listen_fd=listen_copy)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.drain_seconds),
        http=guarded_protocol(
            settings.max_connections,
            settings.header_timeout_seconds,
            settings.idle_timeout_seconds,
        ),
        # Connections asyncio accepts per wake-up, before the cap can shed any: small, so
        # a burst cannot overshoot the cap by thousands of descriptors.
        backlog=ACCEPT_BURST,
    )
    # Under `caio serve-current` (systemd) this boot is counted: it says when it has stayed
    # up, and that it stopped cleanly (caio/restart/boots.py). Elsewhere nothing is counted.
    boots = BootCounter(InstallLayout(settings.home).state_dir / BOOT_FILE)
    version = app.state.version_info.version
    counted = boots.counting(version)
    server = NotifyingServer(
        config,
        version,
        tls=tls,
        handshake_timeout=settings.header_timeout_seconds,
        on_stopping=(lambda: boots.mark(version, "stopped")) if counted else None,
    )
    host, port = sockets[0].getsockname()[:2] if sockets[0].family != socket.AF_UNIX else ("", 0)
    logging.getLogger("caio").info(
        "caio %s listening on %s://%s:%s",
        app.state.version_info.version,
        settings.api_scheme,
        host,
        port,
    )
    control.server = server
    stop_watchdog = threading.Event()
    threading.Thread(target=_watchdog, args=(stop_watchdog,), daemon=True).start()
    if counted:
        threading.Thread(
            target=mark_when_stable,
            args=(boots, version, lambda: server.started, settings.stable_seconds, stop_watchdog),
            daemon=True,
        ).start()
    threading.Thread(
        target=watch_supervisor,
        args=(os.environ, server.ask_exit, settings.drain_seconds + 5, stop_watchdog),
        daemon=True,
    ).start()
    try:
        server.run(sockets=sockets)
    finally:
        stop_watchdog.set()
    return control.finish()


def main() -> int:
    """Exit codes as the ``caio`` command's: 2 for a bad setting or manifest, 1 otherwise."""
    try:
        return serve(load_settings())
    except CaioError as e:
        print(f"caio: error [{e.code}]: {e.message}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1


if __name__ == "__main__":
    sys.exit(main())
