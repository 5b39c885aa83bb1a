"""A host application that embeds CAIO in its own process and restarts itself into a new release.

CAIO's API is the host's app (``create_app``), with the host's own routes
added. The restart strategy is ``embedded`` with an in-process callback:
when CAIO is asked to restart, the host stops serving gracefully and
re-executes itself. At start it puts ``$CAIO_HOME/current`` (the activated
release) first on ``sys.path``, so after the re-exec the new release's code
is what runs::

    CAIO_HOME=/var/lib/host/caio python -m examples.embedded.host_app --port 9000
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _run_activated_release() -> None:
    """Import CAIO from the activated release, if there is one (before importing caio)."""
    home = Path(os.environ.get("CAIO_HOME", Path.home() / ".caio"))
    current = home / "current"
    if current.is_dir():
        sys.path.insert(0, str(current.resolve()))


_run_activated_release()

import uvicorn  # noqa: E402 (after choosing where caio is imported from)
from fastapi import FastAPI  # noqa: E402

from caio.api import create_app  # noqa: E402
from caio.core.settings import load_settings  # noqa: E402


class Host:
    """The host process: its web server, and whether CAIO asked it to restart."""

    def __init__(self) -> None:
        self.server: uvicorn.Server | None = None
        self.restart_requested = False

    def restart(self, graceful: bool) -> None:
        """CAIO's embedded restart callback (runs after the 202 is sent)."""
        self.restart_requested = True
        if self.server is not None:
            self.server.should_exit = True
            self.server.force_exit = not graceful

    def build(self) -> FastAPI:
        settings = load_settings(restart_strategy="embedded")
        app = create_app(settings, on_restart=self.restart)

        @app.get("/host/hello")
        async def hello() -> dict[str, str]:
            return {"host": "running", "caio": app.state.version_info.version}

        return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args(argv)
    host = Host()
    config = uvicorn.Config(host.build(), host="127.0.0.1", port=args.port, log_level="warning")
    host.server = uvicorn.Server(config)
    host.server.run()
    if host.restart_requested:  # into the new release: the same command, a fresh process image
        command = [sys.executable, "-m", "examples.embedded.host_app", *sys.argv[1:]]
        os.execv(sys.executable, command)  # noqa: S606 (a fixed command: this program)
    return 0


if __name__ == "__main__":
    sys.exit(main())
