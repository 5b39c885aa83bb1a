"""Debian's nginx as an ordinary process serving a repository with deploy/nginx/caio-repo.conf.

Each instance has its own prefix (config, logs, pid, temp files) under the
test's directory and a free loopback port; the shipped server block is used
as it is, with only its `listen` and `root` lines set for the test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.background import end, spawn
from tests.components import require
from tests.helpers import free_port

SHIPPED = Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "caio-repo.conf"
ACCESS = SHIPPED.with_name("caio-repo-access.conf")
LOG_FORMAT = '\'$request_uri $status range="$http_range" auth="$http_authorization"\''


@dataclass
class Nginx:
    prefix: Path
    root: Path
    port: int
    proc: subprocess.Popen[bytes]
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def access_log(self) -> list[str]:
        path = self.prefix / "access.log"
        return path.read_text().splitlines() if path.exists() else []

    def reload(self) -> None:
        """Re-read the configuration (graceful, as an operator's `nginx -s reload`)."""
        before = self._workers()
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._workers() & before:
            time.sleep(0.05)

    def kill_workers(self) -> None:
        """SIGKILL the workers: every connection they hold is cut; the master starts new ones."""
        for pid in self._workers():
            os.kill(pid, signal.SIGKILL)

    def _workers(self) -> set[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return {int(p) for p in children.read_text().split()}
        except OSError:
            return set()

    def stop(self) -> None:
        """Graceful stop (SIGQUIT), then the master's whole group, workers included."""
        end(self.proc, grace=10, sig=signal.SIGQUIT)


def start_nginx(
    prefix: Path,
    root: Path,
    *,
    http_extra: str = "",
    access: str | None = "",
    tls: tuple[Path, Path] | None = None,
    client_ca: Path | None = None,
) -> Nginx:
    """nginx on 127.0.0.1:<free port> serving ``root`` through the shipped server block.

    ``access``: the access file's content ("": the shipped, public one; None: no file).
    ``tls``: (certificate, key): HTTPS on that port instead of HTTP.
    ``client_ca``: with ``tls``, require client certificates signed by this CA (mTLS).
    """
    nginx = require("nginx", "nginx")
    prefix.mkdir(parents=True)
    port = free_port()
    server = SHIPPED.read_text()
    listen = f"listen 127.0.0.1:{port};"
    if tls is not None:
        listen = (
            f"listen 127.0.0.1:{port} ssl;\n    ssl_certificate {tls[0]};\n"
            f"    ssl_certificate_key {tls[1]};"
        )
        if client_ca is not None:
            listen += f"\n    ssl_client_certificate {client_ca};\n    ssl_verify_client on;"
    server = server.replace("listen 8080;", listen, 1)
    server = server.replace("root /srv/caio-repo;", f"root {root};", 1)
    (prefix / "caio-repo.conf").write_text(server)
    if access is not None:
        (prefix / "caio-repo-access.conf").write_text(access or ACCESS.read_text())
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / 'tmp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;" if os.geteuid() == 0 else ""  # workers read the test's 0700 directories
    (prefix / "nginx.conf").write_text(
        f"""{user}
worker_processes 1;
daemon off;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
    log_format caio {LOG_FORMAT};
    access_log {prefix / "access.log"} caio;
{temp}
    include caio-repo.conf;
{http_extra}
}}
"""
    )
    (prefix / "tmp").mkdir()
    proc = spawn(
        [
            nginx,
            "-p",
            str(prefix),
            "-c",
            str(prefix / "nginx.conf"),
            "-e",
            str(prefix / "error.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            end(proc)
            raise AssertionError("nginx did not start:\n" + (prefix / "error.log").read_text())
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return Nginx(prefix, root, port, proc, "https" if tls else "http")
        time.sleep(0.05)
    end(proc)
    raise AssertionError("nginx did not listen:\n" + (prefix / "error.log").read_text())
