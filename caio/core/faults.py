"""Named fault points: where the crash tests kill CAIO with SIGKILL.

Inert unless ``CAIO_FAULT_POINT`` names the point (the fault-injection tests
set it for one process). Each point marks a step boundary of the update or
restart whose crash safety is claimed and tested.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "CAIO_FAULT_POINT"
POINTS = (
    "after_download",
    "during_extraction",
    "during_preflight",
    "before_activation",
    "during_switch",
    "after_switch",
    "during_restart",
)


def fault_point(name: str) -> None:
    """Die here, at once and without cleanup, if this is the configured fault point."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
