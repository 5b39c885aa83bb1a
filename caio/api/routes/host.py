"""GET /api/v1/whoami and /api/v1/host: who is asking, and this host's state (viewer).

Both read local state only, so they answer while the repository is unreachable:
the console shows the running, active and previous releases, the host id and
the trusted metadata whatever a check says.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter

from caio.api.deps import ServiceDep, ViewerDep
from caio.api.errors import AUTH_RESPONSES
from caio.core.rollout import parse_time
from caio.schemas import HostOut, LastCheckOut, MetadataOut, WhoAmIOut

router = APIRouter(tags=["service"], responses=AUTH_RESPONSES)


@router.get("/whoami", response_model=WhoAmIOut, summary="The token's name and role")
async def whoami(who: ViewerDep) -> WhoAmIOut:
    return WhoAmIOut(name=who.name, role=who.role.value)


@router.get("/host", response_model=HostOut, summary="This host: releases, trust, last check")
def host(_: ViewerDep, service: ServiceDep) -> HostOut:
    running = service.running.version
    active = service.layout.current_version
    trusted = service.checker.trusted_metadata()
    last = service.checker.records.read()
    return HostOut(
        host_id=service.host_id,
        running_version=running,
        active_version=active,
        previous_version=service.layout.previous_version,
        restart_pending=active is not None and active != running,
        metadata=MetadataOut(versions=trusted.versions, expires=trusted.expires)
        if trusted is not None
        else None,
        last_check=LastCheckOut(
            attempt=_time(last.last_attempt), success=_time(last.last_success), error=last.error
        ),
    )


def _time(text: str | None) -> datetime | None:
    return parse_time(text) if text else None
