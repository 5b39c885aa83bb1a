"""The sd_notify wire format: ``KEY=VALUE`` lines in one unix datagram to ``$NOTIFY_SOCKET``.

The same client code talks to systemd (``Type=notify``) and to CAIO's own
supervisor, which listens with :class:`NotifyListener`.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
from pathlib import Path

MAX_DATAGRAM = 4096


def _address(path: str) -> str:
    return "\0" + path[1:] if path.startswith("@") else path  # "@" = abstract namespace


def send(message: str, path: str | None = None) -> bool:
    """Send ``message`` (e.g. ``"READY=1\\nSTATUS=serving"``); False when no socket is set."""
    target = path or os.environ.get("NOTIFY_SOCKET")
    if not target:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.connect(_address(target))
        s.sendall(message.encode())
    return True


def parse(data: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in data.decode(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields


class NotifyListener:
    """A unix datagram socket that receives sd_notify messages from one child."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(str(path))
        path.chmod(0o600)
        self.sock.setblocking(False)

    def drain(self) -> list[dict[str, str]]:
        """Every message waiting now (non-blocking)."""
        messages: list[dict[str, str]] = []
        while True:
            try:
                data = self.sock.recv(MAX_DATAGRAM)
            except BlockingIOError:
                return messages
            messages.append(parse(data))

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def wait_any(listeners: list[NotifyListener], timeout: float) -> None:
    """Return when one of ``listeners`` has a message, or after ``timeout`` seconds."""
    select.select([listener.sock for listener in listeners], [], [], timeout)
