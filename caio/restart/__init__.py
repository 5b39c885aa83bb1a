"""How a new version gets to run: supervisor, systemd, embedded, exec (no FastAPI here)."""

from caio.restart.control import EXIT_RESTART, ServiceControl, boot_command
from caio.restart.strategies import RestartStrategy, make_strategy

__all__ = ["EXIT_RESTART", "RestartStrategy", "ServiceControl", "boot_command", "make_strategy"]
