"""GET /api/v1/version: what is running (public)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from caio.api.deps import RunningDep
from caio.schemas import VersionOut

router = APIRouter(tags=["service"])


@router.get("/version", response_model=VersionOut, summary="Running version (public)")
async def version(running: RunningDep, request: Request) -> VersionOut:
    info = running.info
    return VersionOut(
        version=info.version,
        build_date=info.build_date,
        commit=info.commit,
        channel=running.channel,
        started_at=request.app.state.started_at,
        withdrawn=request.app.state.update_service.checker.running_withdrawn is not None,
    )
