"""GET /health: liveness and the running version (public)."""

from __future__ import annotations

from fastapi import APIRouter

from caio.api.deps import RunningDep
from caio.schemas import Health

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health, summary="Liveness and running version")
async def health(running: RunningDep) -> Health:
    return Health(status="ok", version=running.info.version)
