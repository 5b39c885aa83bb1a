"""Update routes: start, cancel, status, events (SSE), check, history, rollback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from caio.api.body import body_schema, json_body
from caio.api.deps import AdminDep, ServiceDep, ViewerDep
from caio.api.errors import AUTH_RESPONSES, ApiError
from caio.core.rollout import Withdrawal
from caio.core.state import JobStatus
from caio.schemas import (
    CheckOut,
    DeltaOut,
    ErrorBody,
    HistoryOut,
    IntegrityOut,
    MetadataOut,
    ReleaseOut,
    RollbackOut,
    RolloutOut,
    UnapprovedOut,
    UpdateIn,
    WithdrawnOut,
)
from caio.update import CheckResult, Release, UpdateRequest

router = APIRouter(tags=["update"], responses=AUTH_RESPONSES)

HEARTBEAT_SECONDS = 15


def release_out(release: Release | None, result: CheckResult) -> ReleaseOut | None:
    if release is None:
        return None
    place = result.eligibility.get(release.version)
    return ReleaseOut(
        version=release.version,
        target=release.target,
        channels=list(release.channels),
        build_date=release.build_date,
        commit=release.commit,
        released_at=release.released_at,
        rollout=RolloutOut(
            percent_now=place.percent_now,
            eligible=place.eligible,
            eligible_at=place.eligible_at,
            paused=place.paused,
            staged=release.rollout is not None,
        )
        if place is not None
        else None,
        withdrawn=_withdrawn(release.withdrawn),
        signed_by=next(
            (list(a.signed_by) for a in result.approvals if a.version == release.version), []
        ),
        delta=_delta(result, release.version),
    )


def _delta(result: CheckResult, version: str) -> DeltaOut | None:
    """The signed delta from the running release to ``version``, if one is listed."""
    offer = result.deltas.get(version)
    if offer is None:
        return None
    return DeltaOut(from_version=offer.base_version, bytes=offer.length, applies=offer.applies)


def _withdrawn(withdrawal: Withdrawal | None) -> WithdrawnOut | None:
    if withdrawal is None:
        return None
    return WithdrawnOut(reason=withdrawal.reason, at=withdrawal.at)


CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "a job is running"}
}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "payload_too_large: the body exceeds the limit"},
}


@router.post(
    "/update",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobStatus,
    responses={**CONFLICT, **BODY_ERRORS},
    summary="Start an update (admin)",
    openapi_extra=body_schema(UpdateIn),
)
def start_update(
    who: AdminDep,
    service: ServiceDep,
    body: Annotated[UpdateIn, Depends(json_body(UpdateIn))],
) -> JobStatus:
    return service.start(
        UpdateRequest(
            target_version=body.target_version,
            allow_downgrade=body.allow_downgrade,
            allow_withdrawn=body.allow_withdrawn,
        ),
        requested_by=who.name,
    )


@router.delete(
    "/update",
    response_model=JobStatus,
    responses={409: {"model": ErrorBody, "description": "no_update_in_progress"}},
    summary="Cancel the running update (admin)",
)
async def cancel_update(who: AdminDep, service: ServiceDep) -> JobStatus:
    return service.cancel(who.name)


@router.get("/update", response_model=JobStatus, summary="Current or last job")
async def update_status(_: ViewerDep, service: ServiceDep) -> JobStatus:
    return service.status()


@router.get(
    "/update/events",
    summary="Server-Sent Events of job status until the job ends",
    response_class=EventSourceResponse,
    responses={503: {"model": ErrorBody, "description": "too_many_streams"}},
)
async def update_events(_: ViewerDep, service: ServiceDep, request: Request) -> EventSourceResponse:
    settings = request.app.state.settings
    streams: set[object] = request.app.state.event_streams  # one per open stream
    if len(streams) >= settings.max_event_streams:
        raise ApiError(
            503,
            "too_many_streams",
            f"{len(streams)} event streams are open (CAIO_MAX_EVENT_STREAMS); poll "
            "GET /api/v1/update instead, or try again when one ends",
        )
    stream = object()
    streams.add(stream)
    queue = service.feed.subscribe()

    def closed() -> None:  # idempotent: from the stream's end and from the response's
        service.feed.unsubscribe(queue)
        streams.discard(stream)

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
            closed()

    # A subscriber that does not read what is sent within the idle timeout is dropped.
    return EventSourceResponse(
        events(),
        ping=HEARTBEAT_SECONDS,
        send_timeout=settings.idle_timeout_seconds,
        background=BackgroundTask(closed),
    )


@router.get(
    "/update/check",
    response_model=CheckOut,
    responses={
        502: {"model": ErrorBody, "description": "the repository failed (network or TUF error)"},
        503: {"model": ErrorBody, "description": "no trust anchor or repository configured"},
        504: {"model": ErrorBody, "description": "check_timeout: the repository is slow"},
    },
    summary="Available releases",
)
async def check(_: ViewerDep, service: ServiceDep, request: Request) -> Response:
    wait: float = request.app.state.settings.check_wait_seconds
    flight = asyncio.wrap_future(service.checker.shared())
    flight.add_done_callback(_retrieve)  # a caller that stopped waiting still reads the outcome
    # asyncio.wait leaves the flight running when it times out (no shield, no extra task).
    done, _pending = await asyncio.wait((flight,), timeout=wait)
    if not done:
        raise ApiError(
            504,
            "check_timeout",
            f"the repository did not answer within {wait:g}s; the check goes on in the "
            "background (the slow-retrieval limits end it); ask again later",
        )
    result = flight.result()
    answer = CheckOut(
        running_version=result.running_version,
        channel=result.channel,
        host_id=result.host_id,
        releases=[r for r in (release_out(x, result) for x in result.releases) if r],
        latest=release_out(result.latest, result),
        update_available=release_out(result.update_available, result),
        waiting_for=release_out(result.waiting, result),
        running_withdrawn=_withdrawn(result.running_withdrawn),
        metadata=MetadataOut(versions=result.metadata.versions, expires=result.metadata.expires),
        checked_at=result.checked_at,
        skipped_entries=result.skipped_entries,
        unapproved=[
            UnapprovedOut(
                version=a.version,
                target=a.target,
                code=a.problem.code,
                message=a.problem.message,
                signed_by=list(a.signed_by),
                missing=list(a.missing),
                dissenting=list(a.dissenting),
                threshold=a.threshold,
            )
            for a in result.approvals
            if a.problem is not None
        ],
    )
    # Built and validated once here: FastAPI would validate and encode it a second time.
    return Response(answer.model_dump_json(), media_type="application/json")


def _retrieve(future: asyncio.Future[CheckResult]) -> None:
    if not future.cancelled():
        future.exception()


@router.get("/update/history", response_model=HistoryOut, summary="Audit records")
def history(
    _: ViewerDep,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[
        int, Query(ge=0, le=100_000, description="skip this many of the newest records")
    ] = 0,
) -> HistoryOut:
    records, integrity = service.audit.read(limit, skip=offset)
    return HistoryOut(
        records=records, integrity=IntegrityOut.model_validate(integrity, from_attributes=True)
    )


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
