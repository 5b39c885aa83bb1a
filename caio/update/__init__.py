"""The update job and its collaborators; no FastAPI here.

``build_update_service(settings, running, source_dir)`` wires the real
collaborators; tests and hosts may build :class:`UpdateService` with their own.

This is the package's front door: code outside ``caio.update`` imports from
here, never from its modules. Names are resolved on first use (PEP 562), so
importing one piece (the TUF client, say) does not import the installer or
the service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from caio.core.lazy import lazy_exports

if TYPE_CHECKING:
    from caio.update.checking import CheckResult
    from caio.update.download import ArtifactDownloader
    from caio.update.repository import (
        Release,
        RepositoryView,
        RetryPolicy,
        TrustedMetadataInfo,
        TrustedRepository,
    )
    from caio.update.scheduler import Scheduler, SchedulerState
    from caio.update.service import (
        RestartPlan,
        RollbackResult,
        UpdateRequest,
        UpdateService,
    )
    from caio.update.transport import SpeedLimits, Transport, make_transport
    from caio.update.wiring import build_update_service

_HOMES = {
    "ArtifactDownloader": "download",
    "CheckResult": "checking",
    "Release": "repository",
    "RepositoryView": "repository",
    "RestartPlan": "service",
    "RetryPolicy": "repository",
    "RollbackResult": "service",
    "Scheduler": "scheduler",
    "SchedulerState": "scheduler",
    "SpeedLimits": "transport",
    "Transport": "transport",
    "TrustedMetadataInfo": "repository",
    "TrustedRepository": "repository",
    "UpdateRequest": "service",
    "UpdateService": "service",
    "build_update_service": "wiring",
    "make_transport": "transport",
}
__all__ = [
    "ArtifactDownloader",
    "CheckResult",
    "Release",
    "RepositoryView",
    "RestartPlan",
    "RetryPolicy",
    "RollbackResult",
    "Scheduler",
    "SchedulerState",
    "SpeedLimits",
    "Transport",
    "TrustedMetadataInfo",
    "TrustedRepository",
    "UpdateRequest",
    "UpdateService",
    "build_update_service",
    "make_transport",
]


__getattr__ = lazy_exports(__name__, _HOMES)
