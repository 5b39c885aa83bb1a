"""The running server as restart strategies see it: stop it, then exit or exec."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Protocol

# Runs in a fresh interpreter (python -I -c BOOT_SCRIPT RELEASE_DIR): put the
# release first on sys.path and run its caio.main, so the new code, not the
# installed package, is what serves.
BOOT_SCRIPT = """
import os, runpy, sys
release = os.path.realpath(sys.argv[1])
sys.path[:0] = [release, os.path.join(release, "site-packages")]
sys.argv = [os.path.join(release, "caio", "main.py")]
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
