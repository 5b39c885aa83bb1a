"""A rollback: ``previous`` becomes ``current`` again, in whichever process asks.

The API's ``POST /api/v1/rollback`` and the offline ``caio rollback`` (for when
the service does not answer) both come here, so the lock, the refusal and the
audit record are the same.
"""

from __future__ import annotations

from caio.core.audit import AuditLog
from caio.core.errors import ConflictError
from caio.core.layout import InstallLayout
from caio.core.state import JobLock


def activate_previous(
    layout: InstallLayout, job_lock: JobLock, audit: AuditLog, *, by: str
) -> tuple[str, str]:
    """Make ``previous`` current; returns (the release it replaced, the one now current).

    Nothing is stopped or started: a restart (or the next start) runs it.

    Raises:
        ConflictError: ``update_in_progress`` while a job runs (in any process);
            ``no_previous_release`` when there is nothing to go back to.
    """
    with job_lock.probe() as nobody_runs_a_job:  # held while the links change
        if not nobody_runs_a_job:
            raise ConflictError("an update is running", code="update_in_progress")
        try:
            old, new = layout.swap_to_previous()
        except FileNotFoundError as e:
            raise ConflictError(str(e), code="no_previous_release") from e
    audit.append("rollback", outcome="activated", by=by, **{"from": old, "to": new})
    return old, new
