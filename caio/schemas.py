"""The API's request and response models: the one source for the server and its clients.

Pydantic only, no server dependencies: ``caio.api`` answers with these
models, and the host clients (``caio.client``) return them. The committed
contract ``docs/openapi.json`` is generated from them (``python -m
caio.api.openapi``), and a test keeps the two equal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from caio.core.manifest import Pep440

JobStatusName = Literal["idle", "updating", "complete", "failed"]
Stage = Literal["idle", "checking", "downloading", "verifying", "installing", "complete", "failed"]


class JobError(BaseModel):
    code: str
    message: str


class JobStatus(BaseModel):
    """The current or last update job, as the API reports it."""

    status: JobStatusName = "idle"
    stage: Stage = "idle"
    progress: int = Field(default=0, ge=0, le=100)
    message: str = "no update has run"
    requires_restart: bool = False
    error: JobError | None = None
    from_version: str | None = None
    to_version: str | None = None
    bytes_done: int = 0
    bytes_total: int | None = None
    requested_by: str | None = None
    job_id: str | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.status == "updating"


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    withdrawn: bool = Field(
        default=False,
        description="the running version was withdrawn by its publisher, as of the last "
        "check (GET /api/v1/update/check says why); the service is still live",
    )


class VersionOut(BaseModel):
    version: str
    build_date: datetime
    commit: str
    channel: str
    started_at: datetime = Field(description="when this process started serving")
    withdrawn: bool = Field(
        default=False,
        description="this version was withdrawn by its publisher, as of the last check",
    )


class RestartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    graceful: StrictBool = True


class RestartOut(BaseModel):
    status: Literal["restarting"]
    strategy: str
    from_version: str
    to_version: str | None
    message: str


class UpdateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_version: Pep440 | None = None
    allow_downgrade: StrictBool = False
    allow_withdrawn: StrictBool = False


class RolloutOut(BaseModel):
    """This host's place in the release's signed rollout plan."""

    percent_now: int
    eligible: bool
    eligible_at: datetime | None
    paused: bool
    staged: bool  # False: the release has no plan and reaches every host at once


class WithdrawnOut(BaseModel):
    reason: str
    at: datetime


class DeltaOut(BaseModel):
    """A signed delta from this host's current release to a newer one."""

    from_version: str
    bytes: int = Field(description="what the update downloads instead of the release")
    applies: bool = Field(
        description="this host kept its current release's tar; if not, the update "
        "downloads the release whole"
    )


class ReleaseOut(BaseModel):
    version: str
    target: str
    channels: list[str]
    build_date: str
    commit: str
    released_at: str
    rollout: RolloutOut | None
    withdrawn: WithdrawnOut | None
    signed_by: list[str] = Field(
        default_factory=list,
        description="with a repository map: the repositories that sign these bytes",
    )
    delta: DeltaOut | None = Field(
        default=None,
        description="on the 8 newest releases newer than the running one: the signed delta "
        "from the running release, if one is published",
    )


class UnapprovedOut(BaseModel):
    """A release some repository of the map lists, which is not offered: who signs what."""

    version: str
    target: str
    code: str = Field(description="approval_missing or repositories_disagree")
    message: str
    signed_by: list[str] = Field(description="the largest group signing the same bytes")
    missing: list[str] = Field(description="mapped repositories that do not list it")
    dissenting: list[str] = Field(description="list other bytes, or cannot verify their own")
    threshold: int


class MetadataOut(BaseModel):
    versions: dict[str, int]
    expires: dict[str, datetime]


class CheckOut(BaseModel):
    running_version: str
    channel: str
    host_id: str
    releases: list[ReleaseOut]
    latest: ReleaseOut | None
    update_available: ReleaseOut | None
    waiting_for: ReleaseOut | None = Field(
        description="a newer release whose rollout has not reached this host yet"
    )
    running_withdrawn: WithdrawnOut | None = Field(
        description="set when the running version has been withdrawn"
    )
    metadata: MetadataOut
    checked_at: datetime
    skipped_entries: list[str] = Field(
        default_factory=list,
        description="entries of the signed release index that could not be read, and why; "
        "they are never offered, and the other releases are",
    )
    unapproved: list[UnapprovedOut] = Field(
        default_factory=list,
        description="with a repository map: releases listed but not signed by enough of "
        "the repositories (never offered), and why",
    )


class WhoAmIOut(BaseModel):
    """The token a request carries: what the console may offer its holder."""

    name: str
    role: Literal["admin", "viewer"]


class LastCheckOut(BaseModel):
    attempt: datetime | None = Field(description="when the repository was last asked")
    success: datetime | None = Field(description="when it last answered with verified metadata")
    error: str | None = Field(description="the error code of the last attempt; null: it succeeded")


class HostOut(BaseModel):
    """This host now, from local state only (no repository request): it answers offline."""

    host_id: str
    running_version: str
    active_version: str | None = Field(
        description="the release `current` points to: what a restart runs"
    )
    previous_version: str | None = Field(description="what a rollback would activate")
    restart_pending: bool = Field(
        description="the active release is not the running one: a restart runs active_version"
    )
    metadata: MetadataOut | None = Field(
        description="the trusted metadata as last verified (null: none yet)"
    )
    last_check: LastCheckOut


class RollbackOut(BaseModel):
    status: str
    from_version: str
    to_version: str
    requires_restart: bool
    message: str


class IntegrityOut(BaseModel):
    """The audit log's hash chain: ``ok``, or the first record where it breaks."""

    ok: bool
    records: int
    first_bad: int | None
    reason: str | None


class HistoryOut(BaseModel):
    records: list[dict[str, Any]]
    integrity: IntegrityOut
