"""Update routes: start, status, events (SSE), check, history, rollback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, field_validator
from sse_starlette import EventSourceResponse, ServerSentEvent

from caio.api.deps import AdminDep, ViewerDep
from caio.api.errors import ErrorBody
from caio.core.state import JobStatus
from caio.update import Release, UpdateRequest, UpdateService

router = APIRouter(tags=["update"])

HEARTBEAT_SECONDS = 15


def get_update_service(request: Request) -> UpdateService:
    service: UpdateService = request.app.state.update_service
    return service


ServiceDep = Annotated[UpdateService, Depends(get_update_service)]


class UpdateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_version: str | None = None
    allow_downgrade: bool = False

    @field_validator("target_version")
    @classmethod
    def _pep440(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(Version(value))
        except InvalidVersion as e:
            raise ValueError(f"not a PEP 440 version: {value!r}") from e


class ReleaseOut(BaseModel):
    version: str
    target: str
    channels: list[str]
    build_date: str
    commit: str

    @classmethod
    def of(cls, release: Release | None) -> ReleaseOut | None:
        if release is None:
            return None
        return cls(
            version=release.version,
            target=release.target,
            channels=list(release.channels),
            build_date=release.build_date,
            commit=release.commit,
        )


class MetadataOut(BaseModel):
    versions: dict[str, int]
    expires: dict[str, datetime]


class CheckOut(BaseModel):
    running_version: str
    channel: str
    releases: list[ReleaseOut]
    latest: ReleaseOut | None
    update_available: ReleaseOut | None
    metadata: MetadataOut


class RollbackOut(BaseModel):
    status: str
    from_version: str
    to_version: str
    requires_restart: bool
    message: str


class HistoryOut(BaseModel):
    records: list[dict[str, Any]]


CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "a job is running"}
}


@router.post(
    "/update",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobStatus,
    responses=CONFLICT,
    summary="Start an update (admin)",
)
def start_update(who: AdminDep, service: ServiceDep, body: UpdateIn | None = None) -> JobStatus:
    body = body or UpdateIn()
    return service.start(
        UpdateRequest(target_version=body.target_version, allow_downgrade=body.allow_downgrade),
        requested_by=who.name,
    )


@router.get("/update", response_model=JobStatus, summary="Current or last job")
def update_status(_: ViewerDep, service: ServiceDep) -> JobStatus:
    return service.status()


@router.get(
    "/update/events",
    summary="Server-Sent Events of job status until the job ends",
    response_class=EventSourceResponse,
)
async def update_events(_: ViewerDep, service: ServiceDep) -> EventSourceResponse:
    queue = service.feed.subscribe()

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            current = service.status()
            yield ServerSentEvent(data=current.model_dump_json(), event="status")
            while current.running:
                try:
                    current = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    current = service.status()
                yield ServerSentEvent(data=current.model_dump_json(), event="status")
        finally:
            service.feed.unsubscribe(queue)

    return EventSourceResponse(events(), ping=HEARTBEAT_SECONDS)


@router.get(
    "/update/check",
    response_model=CheckOut,
    responses={
        502: {"model": ErrorBody, "description": "the repository failed (network or TUF error)"},
        503: {"model": ErrorBody, "description": "no trust anchor or repository configured"},
    },
    summary="Available releases",
)
async def check(_: ViewerDep, service: ServiceDep) -> CheckOut:
    result = await run_in_threadpool(service.check)
    return CheckOut(
        running_version=result.running_version,
        channel=result.channel,
        releases=[r for r in map(ReleaseOut.of, result.releases) if r is not None],
        latest=ReleaseOut.of(result.latest),
        update_available=ReleaseOut.of(result.update_available),
        metadata=MetadataOut(versions=result.metadata.versions, expires=result.metadata.expires),
    )


@router.get("/update/history", response_model=HistoryOut, summary="Audit records")
def history(
    _: ViewerDep, service: ServiceDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> HistoryOut:
    return HistoryOut(records=service.audit.records(limit))


@router.post(
    "/rollback",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RollbackOut,
    responses={409: {"model": ErrorBody, "description": "job running or no previous release"}},
    summary="Activate the previous release (admin)",
)
def rollback(who: AdminDep, service: ServiceDep) -> RollbackOut:
    result = service.rollback(who.name)
    return RollbackOut(
        status="rolled_back",
        from_version=result.from_version,
        to_version=result.to_version,
        requires_restart=True,
        message=f"{result.to_version} is active again; restart to run it",
    )
