"""Connection hygiene for the serving process: survive floods of idle or slow clients.

uvicorn waits for a request head for ever, and accepts connections until the
process runs out of file descriptors; a stranger holding a thousand slow
connections then locks everybody out, ``/health`` included. This module:

* raises the soft ``RLIMIT_NOFILE`` to the hard limit at start;
* gives every connection ``header_timeout`` seconds to send each request
  head (after connecting, and again after each response on a kept-alive
  connection), then closes it;
* closes a connection that makes no progress for ``idle_timeout`` seconds
  while it waits on the peer: a request body that stopped coming, or an
  answer the peer does not read (pipelined requests whose answers are never
  read included); a request the app is still working on is not waiting on
  the peer, and an event stream between two events is not either;
* caps open connections: past ``max_connections`` the connection that has
  waited longest on its peer (for a request head, or stalled as above) is
  closed to make room, so a flood of idle connections cannot keep a real
  request out;
* at a graceful shutdown, answers connections that were accepted but had
  not sent their first request yet (uvicorn closes them unanswered, which
  breaks a zero-downtime restart): they get ``DRAIN_GRACE`` seconds to send
  it, and are closed after that one answer;
* logs the same event-loop error at most once a second;
* over TLS, tells the app what client certificate the peer presented (the
  ASGI ``tls`` extension), for ``CAIO_TLS_CLIENT_CA``.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
import time
from typing import Any, cast

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

log = logging.getLogger("caio.connections")
DRAIN_GRACE = 2.0


def raise_open_file_limit() -> tuple[int, int]:
    """Set the soft ``RLIMIT_NOFILE`` to the hard limit; returns (old soft, new soft)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as e:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, e)
            return soft, soft
        return soft, hard
    return soft, soft


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head timeout and a shared connection cap."""

    max_connections = 512
    header_timeout = 10.0
    idle_timeout = 30.0

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_timer: asyncio.TimerHandle | None = None
        self._awaiting_head_since: float | None = None
        self._served = False  # has this connection had a request yet
        self._draining = False
        self._progress_at = time.monotonic()  # the last byte in, or the last unsent byte out
        self._unsent = 0  # the write buffer at the last look
        self._progress_timer: asyncio.TimerHandle | None = None
        self._tls: dict[str, Any] | None = None  # the ASGI tls extension, over TLS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._tls = tls_extension(transport)
        self._await_head()
        self._watch_progress()
        if len(self.connections) > self.max_connections:
            self._shed()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        if self._progress_timer is not None:
            self._progress_timer.cancel()
            self._progress_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._progress_at = time.monotonic()
        super().data_received(data)

    # --- progress -----------------------------------------------------------------
    def _watch_progress(self) -> None:
        self._progress_timer = self.loop.call_later(
            min(1.0, self.idle_timeout / 4), self._check_progress
        )

    def _check_progress(self) -> None:
        self._progress_timer = None
        if self.transport.is_closing():
            return
        unsent = self.transport.get_write_buffer_size()
        if unsent < self._unsent:  # the peer reads what we send
            self._progress_at = time.monotonic()
        self._unsent = unsent
        if self._waits_on_peer() and self._idle_for() >= self.idle_timeout:
            self.transport.close()
            return
        self._watch_progress()

    def _waits_on_peer(self) -> bool:
        """An answer sits unread, or a request body stopped coming (head waits: the head timer)."""
        if self.transport.get_write_buffer_size() > 0:
            return True
        body_due = self.cycle is not None and self.conn.their_state is h11.SEND_BODY
        return body_due and not self.flow.read_paused

    def _idle_for(self) -> float:
        return time.monotonic() - self._progress_at

    def _stalled_since(self) -> float | None:
        """Since when this connection has waited on its peer, or None if it does not.

        It does while it waits for a request head, while an answer sits unread
        in its write buffer, and while a request body it reads stops coming.
        A connection with requests pipelined ahead of their answers counts too,
        for the shedding only: under a flood it is the first to go.
        """
        if self._awaiting_head_since is not None:
            return self._awaiting_head_since
        if self._waits_on_peer() or self.conn.trailing_data[0]:
            return self._progress_at
        return None

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:
            self._stop_head_timer()  # a request head arrived: the app's turn now
            self._served = True
            if self.cycle is not None and self._tls is not None:
                scope = cast(dict[str, Any], self.cycle.scope)
                scope.setdefault("extensions", {})["tls"] = self._tls
            if self._draining and self.cycle is not None:
                self.cycle.keep_alive = False  # one answer, then close

    def shutdown(self) -> None:
        """Graceful shutdown: a fresh connection still gets its first request answered."""
        if self.cycle is None and not self._served and not self.transport.is_closing():
            self._draining = True
            self._stop_head_timer()
            self._awaiting_head_since = time.monotonic()
            self._head_timer = self.loop.call_later(DRAIN_GRACE, self._head_timed_out)
            return
        super().shutdown()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.our_state is h11.IDLE:
            self._await_head()

    def _await_head(self) -> None:
        self._stop_head_timer()
        self._awaiting_head_since = time.monotonic()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._awaiting_head_since = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _shed(self) -> None:
        """Close the connection that has waited longest on its peer (head, body or reading)."""
        waiting = [
            (since, c)
            for c in self.connections
            if isinstance(c, GuardedH11Protocol) and (since := c._stalled_since()) is not None
        ]
        if not waiting:
            self.transport.close()  # every other connection is mid-request: refuse this one
            return
        _, victim = min(waiting, key=lambda pair: pair[0])
        victim._stop_head_timer()
        victim.transport.close()


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI ``tls`` scope extension for a connection; None when it is not TLS.

    The handshake has verified a presented client certificate already; this
    says whether there was one (``client_cert_chain`` is empty otherwise).
    """
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    version = ssl_object.version()
    return {
        "server_cert": None,
        "client_cert_chain": [] if der is None else [ssl.DER_cert_to_PEM_cert(der)],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version or ""),
        "cipher_suite": None,
    }


_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}  # as the ASGI spec numbers them


def guarded_protocol(
    max_connections: int, header_timeout: float, idle_timeout: float = 30.0
) -> type[GuardedH11Protocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with these limits."""
    return type(
        "CaioH11Protocol",
        (GuardedH11Protocol,),
        {
            "max_connections": max_connections,
            "header_timeout": header_timeout,
            "idle_timeout": idle_timeout,
        },
    )


class RateLimitedLoopErrors:
    """An event-loop exception handler that reports each kind of error once a second."""

    def __init__(self, interval: float = 1.0) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        key = f"{context.get('message')}|{type(exc).__name__ if exc else ''}"
        now = time.monotonic()
        if now - self._last.get(key, -self._interval) < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        dropped = self._suppressed.pop(key, 0)
        suffix = f" ({dropped} more like it in the last second)" if dropped else ""
        log.error("%s: %s%s", context.get("message"), exc or "", suffix)
