"""The process environment contract between a supervisor (or systemd) and the serving process.

One place for the names both sides use: which descriptor is the listening
socket (``CAIO_LISTEN_FD``, or systemd's ``LISTEN_FDS``), which is the
supervisor's private control socket (``CAIO_CONTROL_FD``), the marker that a
child runs under ``caio run`` (``CAIO_SUPERVISED``), and the sd_notify field
that asks the supervisor for a restart.
"""

from __future__ import annotations

import os
import socket

SUPERVISED_ENV = "CAIO_SUPERVISED"
LISTEN_FD_ENV = "CAIO_LISTEN_FD"
CONTROL_FD_ENV = "CAIO_CONTROL_FD"
RESTART_MESSAGE = "X_CAIO_RESTART"
SD_LISTEN_FDS_START = 3
BACKLOG = 2048


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when the host has a colon)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
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
