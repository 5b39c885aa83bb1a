"""POST /api/v1/restart: bring the current release up through the configured strategy."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, status

from caio.api.body import body_schema, json_body
from caio.api.deps import AdminDep, ServiceDep, StrategyDep
from caio.api.errors import AUTH_RESPONSES
from caio.schemas import ErrorBody, RestartIn, RestartOut

router = APIRouter(tags=["restart"], responses=AUTH_RESPONSES)


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
    plan = service.prepare_restart(strategy, requested_by=who.name, graceful=body.graceful)
    background.add_task(strategy.restart, body.graceful)
    return RestartOut(
        status="restarting",
        strategy=plan.strategy,
        from_version=plan.from_version,
        to_version=plan.to_version,
        message=plan.message,
    )
