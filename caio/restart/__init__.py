"""How a new version gets to run: supervisor, systemd, embedded, exec (no FastAPI here).

This is the package's front door: code outside ``caio.restart`` imports from
here, never from its modules. Names are resolved on first use (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from caio.core.lazy import lazy_exports

if TYPE_CHECKING:
    from caio.restart.connections import (
        RateLimitedLoopErrors,
        guarded_protocol,
        raise_open_file_limit,
    )
    from caio.restart.control import EXIT_RESTART, ServiceControl, boot_command
    from caio.restart.notify import NotifyListener
    from caio.restart.process import bind, inherited_sockets, watch_supervisor
    from caio.restart.standby import standby_preflight
    from caio.restart.strategies import RestartCallback, RestartStrategy, make_strategy
    from caio.restart.supervisor import Supervisor

_HOMES = {
    "EXIT_RESTART": "control",
    "NotifyListener": "notify",
    "RateLimitedLoopErrors": "connections",
    "RestartCallback": "strategies",
    "RestartStrategy": "strategies",
    "ServiceControl": "control",
    "Supervisor": "supervisor",
    "bind": "process",
    "boot_command": "control",
    "guarded_protocol": "connections",
    "inherited_sockets": "process",
    "make_strategy": "strategies",
    "raise_open_file_limit": "connections",
    "standby_preflight": "standby",
    "watch_supervisor": "process",
}
__all__ = [
    "EXIT_RESTART",
    "NotifyListener",
    "RateLimitedLoopErrors",
    "RestartCallback",
    "RestartStrategy",
    "ServiceControl",
    "Supervisor",
    "bind",
    "boot_command",
    "guarded_protocol",
    "inherited_sockets",
    "make_strategy",
    "raise_open_file_limit",
    "standby_preflight",
    "watch_supervisor",
]


__getattr__ = lazy_exports(__name__, _HOMES)
