"""How a new version gets to run: supervisor, systemd, embedded, exec (no FastAPI here).

This is the package's front door: code outside ``caio.restart`` imports from
here, never from its modules. Names are resolved on first use (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from caio.core.lazy import lazy_exports

if TYPE_CHECKING:
    from caio.restart.boots import BOOT_FILE, BootCounter, mark_when_stable, release_to_boot
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
    "BOOT_FILE": "boots",
    "BootCounter": "boots",
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
    "mark_when_stable": "boots",
    "raise_open_file_limit": "connections",
    "release_to_boot": "boots",
    "standby_preflight": "standby",
    "watch_supervisor": "process",
}
__all__ = [
    "BOOT_FILE",
    "BootCounter",
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
    "mark_when_stable",
    "raise_open_file_limit",
    "release_to_boot",
    "standby_preflight",
    "watch_supervisor",
]


__getattr__ = lazy_exports(__name__, _HOMES)
