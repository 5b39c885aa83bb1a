"""A static server for a published repository: metadata/ and targets/ only, loopback by default.

Supports single byte ranges (``Range: bytes=N-`` and ``bytes=N-M``) so clients can
resume interrupted downloads. For development, tests and the demo; production
repositories are served by any static web server or CDN.
"""

from __future__ import annotations

import http.server
import re
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_SERVED = ("metadata", "targets")
_CHUNK = 256 * 1024


class RepoRequestHandler(http.server.BaseHTTPRequestHandler):
    """GET and HEAD of files under metadata/ and targets/; 404 for anything else."""

    server_version = "tuf-repo"
    repo_dir: Path

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def _resolve(self) -> Path | None:
        parts = [p for p in unquote(urlparse(self.path).path).split("/") if p]
        if not parts or parts[0] not in _SERVED or any(p in (".", "..") for p in parts):
            return None
        path = self.repo_dir.joinpath(*parts)
        return path if path.is_file() else None

    def _serve(self, *, send_body: bool) -> None:
        path = self._resolve()
        if path is None:
            self.send_error(404, "not found")
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        status = 200
        header = self.headers.get("Range")
        if header:
            match = _RANGE.match(header.strip())
            if not match or int(match[1]) >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = int(match[1])
            end = min(int(match[2]), size - 1) if match[2] else size - 1
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not send_body:
            return
        with path.open("rb") as f:
            f.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = f.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.quiet:  # type: ignore[attr-defined]
            return
        super().log_message(format, *args)


class RepoServer(http.server.ThreadingHTTPServer):
    """``RepoServer(dir, host, port)``; ``start()`` serves in a daemon thread."""

    daemon_threads = True

    def __init__(
        self,
        repo_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        quiet: bool = False,
        handler_class: type[RepoRequestHandler] = RepoRequestHandler,
    ) -> None:
        handler = type("BoundHandler", (handler_class,), {"repo_dir": repo_dir.resolve()})
        super().__init__((host, port), handler)
        self.quiet = quiet
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> RepoServer:
        # A short poll interval: stop() (shutdown) waits up to one interval.
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
