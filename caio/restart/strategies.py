"""How a new version gets to run: one small interface, four implementations.

========== ================================================================
supervisor ask the parent ``caio run`` (sd_notify message on NOTIFY_SOCKET);
           it starts the new child on the same socket, health-gates it,
           and drains the old one, or rolls back
systemd    stop gracefully (STOPPING=1) and exit with EXIT_RESTART (75);
           the unit restarts on it, socket activation queues connections
embedded   the host decides: an in-process callback, a signal to the parent,
           or stop and exit with EXIT_RESTART
exec       stop gracefully, then ``execve`` into ``current`` keeping the
           listening socket open across the exec
========== ================================================================
"""

from __future__ import annotations

import abc
import os
import signal
from collections.abc import Callable
from pathlib import Path

from caio.core.errors import RestartError
from caio.restart import notify
from caio.restart.control import EXIT_RESTART, ServiceControl, boot_command
from caio.restart.process import LISTEN_FD_ENV, RESTART_MESSAGE, SUPERVISED_ENV

RestartCallback = Callable[[bool], None]


class RestartStrategy(abc.ABC):
    """Brings the current release up in place of the running one."""

    name: str

    @abc.abstractmethod
    def check(self) -> None:
        """Raises RestartError if a restart cannot be done now."""

    @abc.abstractmethod
    def restart(self, graceful: bool) -> None:
        """Start the restart; runs after the 202 answer has been sent."""

    def describe(self) -> str:
        return f"restarting through the {self.name} strategy"


class SupervisorRestart(RestartStrategy):
    name = "supervisor"

    def __init__(self, environ: dict[str, str]) -> None:
        self._socket = environ.get("NOTIFY_SOCKET") if environ.get(SUPERVISED_ENV) else None

    def check(self) -> None:
        if not self._socket:
            raise RestartError(
                "not running under `caio run`; start CAIO with it, or choose another "
                "CAIO_RESTART_STRATEGY (systemd, embedded, exec)"
            )

    def restart(self, graceful: bool) -> None:
        notify.send(f"{RESTART_MESSAGE}=1\nX_CAIO_GRACEFUL={int(graceful)}", self._socket)

    def describe(self) -> str:
        return (
            "the supervisor is starting the current release; the old one serves until it is healthy"
        )


class _StoppingStrategy(RestartStrategy):
    def __init__(self, control: ServiceControl) -> None:
        self._control = control

    def check(self) -> None:
        if not self._control.serving:
            raise RestartError(f"the {self.name} strategy needs a server started by caio")


class SystemdRestart(_StoppingStrategy):
    name = "systemd"

    def restart(self, graceful: bool) -> None:
        self._control.exit_code = EXIT_RESTART
        self._control.stop(graceful=graceful)

    def describe(self) -> str:
        return f"stopping with exit code {EXIT_RESTART}; systemd starts the current release"


class ExecRestart(_StoppingStrategy):
    name = "exec"

    def __init__(self, control: ServiceControl, current: Path, listen_fd: int | None) -> None:
        super().__init__(control)
        self._current = current
        self._listen_fd = listen_fd

    def check(self) -> None:
        super().check()
        if not self._current.is_dir():
            raise RestartError(f"no current release at {self._current}")

    def restart(self, graceful: bool) -> None:
        env = dict(os.environ)
        env.pop("CAIO_MANIFEST", None)  # the release brings its own manifest
        if self._listen_fd is not None:
            os.set_inheritable(self._listen_fd, True)
            env[LISTEN_FD_ENV] = str(self._listen_fd)
        self._control.exec_after_stop(boot_command(str(self._current.resolve())), env)
        self._control.stop(graceful=graceful)

    def describe(self) -> str:
        return "stopping gracefully, then running the current release in this process"


class EmbeddedRestart(RestartStrategy):
    """The host decides: callback, else a signal to the host that registered, else exit 75.

    The signal goes only to ``CAIO_RESTART_PID``, the host's own pid, and only
    while that very process lives (its start time is checked, so a reused pid
    is not signalled). It is never guessed from CAIO's parent: a launcher that
    exited at once leaves CAIO to a subreaper, which must not get the signal.
    """

    name = "embedded"

    def __init__(
        self,
        control: ServiceControl,
        callback: RestartCallback | None,
        host_signal: signal.Signals | None,
        host_pid: int | None,
    ) -> None:
        self._control = control
        self._callback = callback
        self._signal = host_signal
        self._host_pid = host_pid
        self._host_started = _started(host_pid) if host_pid is not None else None

    def _host_alive(self) -> bool:
        if self._host_pid is None or self._host_started is None:
            return False
        return _started(self._host_pid) == self._host_started

    def check(self) -> None:
        if self._callback is None and self._signal is None and not self._control.serving:
            raise RestartError("embedded: no on_restart callback, signal, or server to stop")
        if self._callback is None and self._signal is not None and not self._host_alive():
            raise RestartError(
                f"the host process that registered (CAIO_RESTART_PID={self._host_pid}) is "
                "gone; nobody is signalled"
            )

    def restart(self, graceful: bool) -> None:
        if self._callback is not None:
            self._callback(graceful)
        elif self._signal is not None:
            if self._host_alive() and self._host_pid is not None:  # again: it may have died
                os.kill(self._host_pid, self._signal)
        else:
            self._control.exit_code = EXIT_RESTART
            self._control.stop(graceful=graceful)

    def describe(self) -> str:
        if self._callback is not None:
            return "the host application was asked to restart CAIO"
        if self._signal is not None:
            return f"sent {self._signal.name} to the host process (pid {self._host_pid})"
        return f"stopping with exit code {EXIT_RESTART} for the host to restart"


def _started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), or None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: fields after "(comm)" start at 3


def make_strategy(
    name: str,
    *,
    control: ServiceControl,
    current: Path,
    on_restart: RestartCallback | None,
    host_signal: str | None,
    host_pid: int | None,
    listen_fd: int | None,
    environ: dict[str, str],
) -> RestartStrategy:
    if name == "supervisor":
        return SupervisorRestart(environ)
    if name == "systemd":
        return SystemdRestart(control)
    if name == "exec":
        return ExecRestart(control, current, listen_fd)
    sig = signal.Signals[host_signal] if host_signal else None
    return EmbeddedRestart(control, on_restart, sig, host_pid)
