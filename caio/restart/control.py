"""The running server as restart strategies see it: stop it, then exit or exec."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Protocol

# Runs in a fresh interpreter (python -I -c BOOT_SCRIPT RELEASE_DIR): put the
# release first on sys.path and run its caio.main, so the new code, not the
# installed package, is what serves. As a standby (CAIO_STANDBY_FD set, see
# caio.restart.standby) it first proves the release the way the preflight does:
# caio comes from the release, the whole application imports, the manifest's
# version; it says so over NOTIFY_SOCKET and waits for one byte on the pipe ("1":
# serve; end of file: not needed, exit). Standard library only until the release is
# imported: the release may be older or newer than the supervisor running this.
BOOT_SCRIPT = """
import os, runpy, sys
release = os.path.realpath(sys.argv[1])
sys.path[:0] = [release, os.path.join(release, "site-packages")]
standby = os.environ.pop("CAIO_STANDBY_FD", None)
if standby is not None:
    import socket, traceback
    def tell(field, value):
        path = os.environ["NOTIFY_SOCKET"]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect("\\0" + path[1:] if path.startswith("@") else path)
            s.sendall(f"{field}={value}".encode())
    try:
        import caio
        origin = os.path.realpath(caio.__file__)
        if not origin.startswith(release + os.sep):
            raise ImportError(f"imported caio from {origin}, not from the new release")
        import caio.api.app, caio.main, caio.core.release_format
        from pathlib import Path
        from caio.core.manifest import load_manifest
        version = load_manifest(Path(release) / "manifest.json").version
    except BaseException:
        lines = traceback.format_exc().strip().splitlines()[-5:]
        tell("X_CAIO_STANDBY_FAILED", " | ".join(lines)[-1500:])
        sys.exit(1)
    tell("X_CAIO_STANDBY_READY", version)
    if os.read(int(standby), 1) != b"1":
        sys.exit(0)
    os.close(int(standby))
sys.argv = [os.path.join(release, "caio", "main.py")]
served = sys.modules.get("caio.main")  # a standby imported it: run it, not a second copy
if served is not None and hasattr(served, "main"):
    sys.exit(served.main())
runpy.run_module("caio.main", run_name="__main__", alter_sys=True)
"""

EXIT_RESTART = 75  # EX_TEMPFAIL: "run me again"; the systemd unit restarts on it


def boot_command(release_dir: str, python: str = sys.executable) -> list[str]:
    """The command that runs the service from ``release_dir``."""
    return [python, "-I", "-c", BOOT_SCRIPT, release_dir]


class StoppableServer(Protocol):
    should_exit: bool
    force_exit: bool


@dataclass
class ServiceControl:
    """Handle on the serving process: what to do once the server stops."""

    server: StoppableServer | None = None
    exit_code: int = 0
    exec_command: list[str] | None = None
    exec_env: dict[str, str] = field(default_factory=dict)

    @property
    def serving(self) -> bool:
        return self.server is not None

    def stop(self, *, graceful: bool) -> None:
        """Stop serving: graceful lets in-flight requests finish (up to the server's timeout)."""
        if self.server is None:
            raise RuntimeError("no server to stop")
        self.server.should_exit = True
        if not graceful:
            self.server.force_exit = True

    def exec_after_stop(self, command: list[str], env: dict[str, str]) -> None:
        self.exec_command = command
        self.exec_env = env

    def finish(self) -> int:
        """Called after the server returned: exec into the new release, or give the exit code."""
        if self.exec_command is not None:
            os.execve(self.exec_command[0], self.exec_command, self.exec_env)  # noqa: S606
        return self.exit_code
