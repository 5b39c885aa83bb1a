"""POST /api/v1/restart: bring the current release up through the configured strategy."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Request, status
from pydantic import BaseModel, ConfigDict

from caio.api.deps import AdminDep
from caio.api.errors import ErrorBody
from caio.api.routes.update import ServiceDep
from caio.core.errors import ConflictError
from caio.restart import RestartStrategy

router = APIRouter(tags=["restart"])


def get_restart_strategy(request: Request) -> RestartStrategy:
    strategy: RestartStrategy = request.app.state.restart_strategy
    return strategy


class RestartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    graceful: bool = True


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
    responses={409: {"model": ErrorBody, "description": "restart_failed or update_in_progress"}},
    summary="Restart into the current release (admin)",
)
def restart(
    who: AdminDep,
    service: ServiceDep,
    strategy: Annotated[RestartStrategy, Depends(get_restart_strategy)],
    background: BackgroundTasks,
    body: RestartIn | None = None,
) -> RestartOut:
    graceful = (body or RestartIn()).graceful
    if service.status().running:
        raise ConflictError("an update is running; restart when it ends", code="update_in_progress")
    strategy.check()
    service.audit.append(
        "restart",
        outcome="requested",
        by=who.name,
        strategy=strategy.name,
        graceful=graceful,
        running=service.running.version,
        current=service.layout.current_version,
    )
    background.add_task(strategy.restart, graceful)
    return RestartOut(
        status="restarting",
        strategy=strategy.name,
        from_version=service.running.version,
        to_version=service.layout.current_version or service.running.version,
        message=strategy.describe(),
    )
