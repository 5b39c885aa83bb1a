"""GET /health: liveness and the running version (public)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from caio.api.deps import RunningDep

router = APIRouter(tags=["service"])


class Health(BaseModel):
    status: Literal["ok"]
    version: str


@router.get("/health", response_model=Health, summary="Liveness and running version")
async def health(running: RunningDep) -> Health:
    return Health(status="ok", version=running.info.version)
