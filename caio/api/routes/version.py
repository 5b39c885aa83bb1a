"""GET /api/v1/version: what is running (public)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel

from caio.api.deps import VersionInfoDep

router = APIRouter(tags=["service"])


class VersionOut(BaseModel):
    version: str
    build_date: datetime
    commit: str
    channel: str | None


@router.get("/version", response_model=VersionOut, summary="Running version (public)")
def version(info: VersionInfoDep, request: Request) -> VersionOut:
    manifest = request.app.state.manifest
    return VersionOut(
        version=info.version,
        build_date=info.build_date,
        commit=info.commit,
        channel=manifest.channel if manifest is not None else None,
    )
