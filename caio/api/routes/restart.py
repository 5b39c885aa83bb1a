"""POST /api/v1/restart: bring the current release up through the configured strategy."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, status
from pydantic import BaseModel, ConfigDict, StrictBool

from caio.api.body import body_schema, json_body
from caio.api.deps import AdminDep, ServiceDep, StrategyDep
from caio.api.errors import ErrorBody
from caio.core.errors import ConflictError

router = APIRouter(tags=["restart"])


class RestartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    graceful: StrictBool = True


class RestartOut(BaseModel):
    status: Literal["restarting"]
    strategy: str
    from_version: str
    to_version: str | None
    message: str


@router.post(
    "/restart",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RestartOut,
    responses={
        409: {"model": ErrorBody, "description": "restart_failed or update_in_progress"},
        413: {"model": ErrorBody, "description": "payload_too_large: the body exceeds the limit"},
    },
    summary="Restart into the current release (admin)",
    openapi_extra=body_schema(RestartIn),
)
def restart(
    who: AdminDep,
    service: ServiceDep,
    strategy: StrategyDep,
    background: BackgroundTasks,
    body: Annotated[RestartIn, Depends(json_body(RestartIn))],
) -> RestartOut:
    if service.status().running:
        raise ConflictError(
            "an update is running; wait for it to end, or cancel it (DELETE /api/v1/update) "
            "and then restart",
            code="update_in_progress",
        )
    strategy.check()
    service.audit.append(
        "restart",
        outcome="requested",
        by=who.name,
        strategy=strategy.name,
        graceful=body.graceful,
        running=service.running.version,
        current=service.layout.current_version,
    )
    background.add_task(strategy.restart, body.graceful)
    return RestartOut(
        status="restarting",
        strategy=strategy.name,
        from_version=service.running.version,
        to_version=service.layout.current_version or service.running.version,
        message=strategy.describe(),
    )
