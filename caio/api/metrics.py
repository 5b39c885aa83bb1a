"""``GET /metrics``: the Prometheus text format, through ``prometheus-client``.

Everything is read at scrape time from what the host keeps anyway: the audit
log (counted incrementally, so counters survive restarts), the last check
(``state/check.json``), the trusted TUF metadata on disk, the job status and
the scheduler. A scrape never touches the repository or the TUF lock.
Viewer token by default (Prometheus sends it as ``authorization:
credentials_file``); public with ``CAIO_METRICS_PUBLIC=true``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder
from prometheus_client.registry import Collector

from caio.api.deps import bearer_scheme, get_token_store, require_role
from caio.api.errors import AUTH_RESPONSES
from caio.core.audit_tally import DURATION_BUCKETS, AuditCounts, AuditTally
from caio.core.rollout import parse_time
from caio.core.running import Running
from caio.core.tokens import Role, TokenStore
from caio.update import Scheduler, UpdateService

router = APIRouter(tags=["metrics"], responses=AUTH_RESPONSES)
_viewer = require_role(Role.VIEWER)


class CaioCollector(Collector):
    """Collects CAIO's metrics from local state at each scrape."""

    def __init__(self, running: Running, service: UpdateService, scheduler: Scheduler) -> None:
        self._running = running
        self._service = service
        self._scheduler = scheduler
        self._audit = AuditTally(service.audit.path)

    def collect(self) -> Iterator[Metric]:
        counts = self._audit.read()
        yield from self._identity()
        yield from self._jobs(counts)
        yield from self._metadata()
        yield from self._releases()
        yield from self._restarts(counts)
        yield from self._schedule()

    def _identity(self) -> Iterator[Metric]:
        manifest = self._running.manifest
        yield InfoMetricFamily(
            "caio_build",
            "The running CAIO release",
            value={
                "version": manifest.version,
                "channel": self._running.channel,
                "commit": manifest.commit or "unknown",
                "host_id": self._service.host_id,
            },
        )

    def _jobs(self, counts: AuditCounts) -> Iterator[Metric]:
        jobs = CounterMetricFamily(
            "caio_update_jobs",
            "Update jobs by outcome (activated, up_to_date, not_eligible, downloaded, failed, "
            "cancelled, interrupted) and error code",
            labels=["outcome", "code"],
        )
        for (outcome, code), n in sorted(counts.jobs.items()):
            jobs.add_metric([outcome, code], n)
        yield jobs
        cumulative = [
            (f"{b:g}", n) for b, n in zip(DURATION_BUCKETS, counts.duration_buckets, strict=True)
        ]
        yield HistogramMetricFamily(
            "caio_update_job_duration_seconds",
            "Duration of finished update jobs",
            buckets=[*cumulative, ("+Inf", counts.duration_count)],
            sum_value=counts.duration_sum,
        )
        yield CounterMetricFamily(
            "caio_update_artifact_bytes",
            "Bytes of release artifacts (or their deltas) downloaded and verified by update jobs",
            value=counts.artifact_bytes,
        )
        deltas = CounterMetricFamily(
            "caio_delta_updates",
            "Updates that applied a signed delta, and those that fell back to the full "
            "download (the reason is in the audit record)",
            labels=["outcome"],
        )
        for outcome in ("applied", "fallback"):
            deltas.add_metric([outcome], counts.deltas[outcome])
        yield deltas
        yield GaugeMetricFamily(
            "caio_update_in_progress",
            "1 while an update job runs",
            value=int(self._service.status().running),
        )

    def _metadata(self) -> Iterator[Metric]:
        trusted = self._service.checker.trusted_metadata()
        expiry = GaugeMetricFamily(
            "caio_metadata_expiry_timestamp_seconds",
            "When each trusted TUF metadata role expires (Unix time)",
            labels=["role"],
        )
        version = GaugeMetricFamily(
            "caio_metadata_version", "Version of each trusted TUF metadata role", labels=["role"]
        )
        if trusted is not None:
            for role, moment in sorted(trusted.expires.items()):
                expiry.add_metric([role], moment.timestamp())
            for role, number in sorted(trusted.versions.items()):
                version.add_metric([role], number)
        yield expiry
        yield version

    def _releases(self) -> Iterator[Metric]:
        state = self._service.checker.records.read()
        for name, value, text in (
            ("caio_release_newest", state.newest, "The newest release of the channel"),
            (
                "caio_release_newest_eligible",
                state.newest_eligible,
                "The newest release this host would install by itself (rollout reached, "
                "not withdrawn, not bad)",
            ),
        ):
            info = InfoMetricFamily(name, f"{text}, at the last successful check", labels=[])
            if value is not None:
                info.add_metric([], {"version": value})
            yield info
        yield from _approvals(state.approvals)
        yield GaugeMetricFamily(
            "caio_running_withdrawn",
            "1 when the running release has been withdrawn by its publisher",
            value=int(state.withdrawal_of(self._service.running.version) is not None),
        )
        for name, moment, text in (
            ("caio_last_check_timestamp_seconds", state.last_attempt, "The last check"),
            (
                "caio_last_check_success_timestamp_seconds",
                state.last_success,
                "The last check that verified the repository",
            ),
        ):
            family = GaugeMetricFamily(name, f"{text} (Unix time)")
            if moment is not None:
                family.add_metric([], _unix(moment))
            yield family
        yield CounterMetricFamily(
            "caio_state_damaged",
            "Reads of state/check.json that found it, or a field of it, unreadable (what could "
            "be read is still reported)",
            value=self._service.checker.records.damaged,
        )
        yield GaugeMetricFamily(
            "caio_check_consecutive_failures",
            "Checks that failed since the last success",
            value=state.consecutive_failures,
        )
        yield GaugeMetricFamily(
            "caio_bad_versions",
            "Releases recorded as bad (failed their health check); never chosen again",
            value=len(self._service.layout.bad_versions()),
        )

    def _restarts(self, counts: AuditCounts) -> Iterator[Metric]:
        restarts = CounterMetricFamily(
            "caio_restarts",
            "Restarts by outcome (requested, succeeded, rolled_back)",
            labels=["outcome"],
        )
        for outcome, n in sorted(counts.restarts.items()):
            restarts.add_metric([outcome], n)
        yield restarts
        rollbacks = CounterMetricFamily(
            "caio_automatic_rollbacks",
            "Releases the supervisor rolled back, by reason (exited, unhealthy, wrong_version, "
            "crash_loop, did_not_start)",
            labels=["reason"],
        )
        for reason, n in sorted(counts.automatic_rollbacks.items()):
            rollbacks.add_metric([reason], n)
        yield rollbacks
        yield CounterMetricFamily(
            "caio_manual_rollbacks", "Rollbacks an admin asked for", value=counts.manual_rollbacks
        )
        yield CounterMetricFamily(
            "caio_child_exits", "Service processes that exited unasked", value=counts.child_exits
        )

    def _schedule(self) -> Iterator[Metric]:
        state = self._scheduler.state()
        mode = GaugeMetricFamily(
            "caio_scheduler_mode",
            "The scheduled-update mode (1 for the active one)",
            labels=["mode"],
        )
        for name in ("off", "check", "download", "install", "restart"):
            mode.add_metric([name], int(name == state.mode))
        yield mode
        next_run = GaugeMetricFamily(
            "caio_scheduler_next_run_timestamp_seconds", "The next scheduled turn (Unix time)"
        )
        if state.next_run is not None:
            next_run.add_metric([], state.next_run.timestamp())
        yield next_run
        yield GaugeMetricFamily(
            "caio_scheduler_consecutive_failures",
            "Scheduled turns that failed in a row (the interval backs off)",
            value=state.consecutive_failures,
        )
        yield GaugeMetricFamily(
            "caio_scheduler_in_maintenance_window",
            "1 inside the maintenance window (or when none is set)",
            value=int(state.in_window),
        )


def _unix(text: str) -> float:
    return parse_time(text).timestamp()


def build_registry(
    running: Running, service: UpdateService, scheduler: Scheduler
) -> CollectorRegistry:
    """A registry of its own per app: several apps in one process never share metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CaioCollector(running, service, scheduler))
    return registry


async def metrics_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    tokens: Annotated[TokenStore, Depends(get_token_store)],
) -> None:
    """A viewer token, unless the operator made the metrics public."""
    if not request.app.state.settings.metrics_public:
        await _viewer(credentials, tokens)


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics (viewer token, or public by setting)",
    responses={
        200: {
            "content": {CONTENT_TYPE_PLAIN_0_0_4: {}},
            "description": "Prometheus text format 0.0.4, or OpenMetrics when asked for",
        }
    },
)
def metrics(request: Request, _: Annotated[None, Depends(metrics_reader)]) -> Response:
    """The text format, or OpenMetrics when the scraper asks for it (as Prometheus does)."""
    registry: CollectorRegistry = request.app.state.metrics
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(registry), media_type=content_type)


__all__ = ["build_registry", "router"]


def _approvals(approvals: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    """With a repository map: who signs each listed release, and which are held back."""
    signed = GaugeMetricFamily(
        "caio_release_signed",
        "With a repository map: 1 when the repository signs the release's bytes, 0 when it "
        "does not list it, at the last successful check",
        labels=["version", "repository"],
    )
    held = GaugeMetricFamily(
        "caio_release_unapproved",
        "With a repository map: 1 for a listed release not signed by enough repositories "
        "(never offered), by code (approval_missing, repositories_disagree)",
        labels=["version", "code"],
    )
    for version, found in sorted(approvals.items()):
        for name in found["signed_by"]:
            signed.add_metric([version, name], 1)
        for name in found["missing"]:
            signed.add_metric([version, name], 0)
        if found.get("code"):
            held.add_metric([version, found["code"]], 1)
    yield signed
    yield held
