"""GET /api/v1/version: what is running (public)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from caio.api.deps import RunningDep

router = APIRouter(tags=["service"])


class VersionOut(BaseModel):
    version: str
    build_date: datetime
    commit: str
    channel: str
    started_at: datetime = Field(description="when this process started serving")


@router.get("/version", response_model=VersionOut, summary="Running version (public)")
async def version(running: RunningDep, request: Request) -> VersionOut:
    info = running.info
    return VersionOut(
        version=info.version,
        build_date=info.build_date,
        commit=info.commit,
        channel=running.channel,
        started_at=request.app.state.started_at,
    )
