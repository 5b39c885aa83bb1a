"""GET /health: liveness and the running version (public)."""

from __future__ import annotations

from fastapi import APIRouter

from caio.api.deps import RunningDep, ServiceDep
from caio.schemas import Health

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health, summary="Liveness and running version")
async def health(running: RunningDep, service: ServiceDep) -> Health:
    # Live whatever was withdrawn: a supervisor's health gate must not roll back for it.
    withdrawn = service.checker.running_withdrawn is not None
    return Health(status="ok", version=running.info.version, withdrawn=withdrawn)
