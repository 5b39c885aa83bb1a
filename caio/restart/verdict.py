"""A release judged sick: ``current`` goes back to the good one, the bad one is remembered,
and the verdict is written where operators look (the audit log and ``GET /api/v1/update``).

The supervisor (a new child that failed its health check, a crash loop) and
``caio serve-current`` (a release that did not stay up for several boots under
systemd) judge alike.
"""

from __future__ import annotations

import logging

from caio.core.audit import AuditLog
from caio.core.layout import InstallLayout
from caio.core.state import JobError, JobLock, JobStatus, StateStore, utcnow

log = logging.getLogger("caio.supervisor")


class Verdicts:
    """Where a host's verdicts on releases go: its layout, audit log, job status and lock."""

    def __init__(self, layout: InstallLayout) -> None:
        self.layout = layout
        self.audit = AuditLog(layout.state_dir / "audit.jsonl")
        self.state = StateStore(layout.state_dir / "update.json")
        self.job_lock = JobLock(layout.state_dir / "job.lock")

    def roll_back(self, bad: str, good: str, failure: tuple[str, str]) -> None:
        """Make ``good`` current again and ``bad`` a bad version; ``failure``: (kind, reason),
        the kind one of a fixed set (the reason label of the rollback metric)."""
        kind, reason = failure
        if self.layout.previous_version == good:
            self.layout.swap_to_previous()
        else:
            self.layout.point(self.layout.current_link, good)
        self.layout.mark_bad(bad)
        self.audit.append(
            "restart", outcome="rolled_back", kind=kind, reason=reason, **{"from": good, "to": bad}
        )
        self.record_failure(
            "health_check_failed",
            f"{bad} failed its health check ({reason}); rolled back to {good}",
            good,
            bad,
        )

    def record_failure(self, code: str, message: str, good: str, bad: str | None) -> None:
        """Show the failure in ``GET /api/v1/update``, unless a process runs a job (it owns it)."""
        log.error("%s: %s", code, message)
        now = utcnow()
        with self.job_lock.probe() as nobody_runs_a_job:
            if not nobody_runs_a_job:
                log.warning("an update job is running; the failure is in the audit log only")
                return
            self.state.save(
                JobStatus(
                    status="failed",
                    stage="failed",
                    progress=100,
                    message=message,
                    error=JobError(code=code, message=message),
                    from_version=good,
                    to_version=bad,
                    started_at=now,
                    updated_at=now,
                    finished_at=now,
                )
            )
