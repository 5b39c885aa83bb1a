"""The process environment contract between a supervisor (or systemd) and the serving process.

One place for the names both sides use: which descriptor is the listening
socket (``CAIO_LISTEN_FD``, or systemd's ``LISTEN_FDS``), which is the
supervisor's private control socket (``CAIO_CONTROL_FD``), the marker that a
child runs under ``caio run`` (``CAIO_SUPERVISED``) and its supervisor's pid
(``CAIO_SUPERVISOR_PID``), and the sd_notify field that asks the supervisor
for a restart.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

SUPERVISED_ENV = "CAIO_SUPERVISED"
SUPERVISOR_PID_ENV = "CAIO_SUPERVISOR_PID"  # a child whose parent is no longer this pid ends
LISTEN_FD_ENV = "CAIO_LISTEN_FD"
CONTROL_FD_ENV = "CAIO_CONTROL_FD"
RESTART_MESSAGE = "X_CAIO_RESTART"
# The standby protocol (caio.restart.standby): a child asks for the next release to be
# booted as its preflight; the standby says it is ready (or why not) and waits for a
# byte on the pipe CAIO_STANDBY_FD names before it serves.
FEATURES_ENV = "CAIO_SUPERVISOR_FEATURES"  # what this supervisor can do, e.g. "standby"
PREPARE_MESSAGE = "X_CAIO_PREPARE"  # =version
REQUEST_FIELD = "X_CAIO_REQUEST"  # =a nonce the verdict repeats
STANDBY_FD_ENV = "CAIO_STANDBY_FD"
STANDBY_READY = "X_CAIO_STANDBY_READY"  # =the version it imported
STANDBY_FAILED = "X_CAIO_STANDBY_FAILED"  # =the last lines of its traceback
SD_LISTEN_FDS_START = 3
BACKLOG = 2048
ORPHAN_POLL_SECONDS = 0.5

log = logging.getLogger("caio")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when the host has a colon)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says it is TCP. With protocol 0 every keep-alive answer waited for
    # the client's delayed ACK (Nagle): about 40 ms each.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    return sock


def inherited_sockets(environ: dict[str, str]) -> list[socket.socket]:
    """Sockets handed over by a supervisor, an exec, or systemd socket activation."""
    found = []
    if LISTEN_FD_ENV in environ:
        found.append(socket.socket(fileno=int(environ[LISTEN_FD_ENV])))
    elif environ.get("LISTEN_PID") == str(os.getpid()) and "LISTEN_FDS" in environ:
        count = int(environ["LISTEN_FDS"])
        found.extend(socket.socket(fileno=SD_LISTEN_FDS_START + i) for i in range(count))
    if CONTROL_FD_ENV in environ:
        found.append(socket.socket(fileno=int(environ[CONTROL_FD_ENV])))
    return found


def watch_supervisor(
    environ: Mapping[str, str], ask_stop: Callable[[], None], grace: float, done: threading.Event
) -> None:
    """In a child of ``caio run``: end when the supervisor is gone (run in a thread).

    The kernel sends SIGTERM when the supervisor dies (``PR_SET_PDEATHSIG``);
    this covers a child that ignores it, or that missed it: it asks the
    server to stop (graceful), and exits at once if it still runs ``grace``
    seconds later. An orphan must not keep serving and hold the port
    against the next supervisor. Returns when ``done`` is set.
    """
    expected = environ.get(SUPERVISOR_PID_ENV, "")
    if not expected.isdigit():
        return  # not supervised, or by a supervisor that does not say its pid
    while not done.wait(ORPHAN_POLL_SECONDS):
        if os.getppid() == int(expected):
            continue
        log.warning("the supervisor (pid %s) is gone: stopping", expected)
        ask_stop()
        if not done.wait(grace):
            log.error("still running %gs after the supervisor went: exiting now", grace)
            os._exit(70)
        return
