"""GET /metrics: who may read it, what it says, and counters that outlive a restart."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from caio.api import create_app
from caio.core.audit_tally import AuditTally
from caio.core.state import AuditLog
from tests.update_fixtures import NEWER, RUNNING, UpdateEnv


def scrape(
    client: Any, headers: dict[str, str]
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, parsed by prometheus-client's own parser."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_metrics_need_a_viewer_token_unless_made_public(update_env: UpdateEnv) -> None:
    client = update_env.client()
    assert client.get("/metrics").status_code == 401
    bad = client.get("/metrics", headers={"Authorization": "Bearer caio_nope"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "unauthorized"
    assert client.get("/metrics", headers=update_env.auth("viewer")).status_code == 200
    assert client.get("/metrics", headers=update_env.auth("admin")).status_code == 200
    public = create_app(update_env.settings.model_copy(update={"metrics_public": True}))
    from fastapi.testclient import TestClient

    assert TestClient(public).get("/metrics").status_code == 200


def test_metrics_describe_the_host_its_trust_and_its_updates(update_env: UpdateEnv) -> None:
    update_env.publish(NEWER)
    client = update_env.client()
    viewer = update_env.auth("viewer")
    assert update_env.run_update(client)["to_version"] == NEWER
    client.get("/api/v1/update/check", headers=viewer)
    m = scrape(client, viewer)

    host_id = client.get("/api/v1/update/check", headers=viewer).json()["host_id"]
    build = (
        "caio_build_info",
        (("channel", "stable"), ("commit", "abc123"), ("host_id", host_id), ("version", RUNNING)),
    )
    assert m[build] == 1
    assert m[("caio_update_jobs_total", (("code", ""), ("outcome", "activated")))] == 1
    artifact = update_env.repo.work / "dist" / f"caio-{NEWER}.tar.gz"
    assert m[("caio_update_artifact_bytes_total", ())] == artifact.stat().st_size
    assert m[("caio_update_job_duration_seconds_count", ())] == 1
    assert m[("caio_release_newest_info", (("version", NEWER),))] == 1
    assert m[("caio_running_withdrawn", ())] == 0
    assert m[("caio_check_consecutive_failures", ())] == 0
    assert m[("caio_metadata_version", (("role", "root"),))] == 1
    timestamp = update_env.repo.store.load("timestamp").signed.expires.timestamp()
    assert m[("caio_metadata_expiry_timestamp_seconds", (("role", "timestamp"),))] == timestamp
    assert m[("caio_scheduler_mode", (("mode", "off"),))] == 1


def test_failed_checks_and_jobs_are_counted_with_their_code(update_env: UpdateEnv) -> None:
    update_env.publish(NEWER)
    client = update_env.client()
    update_env.behaviours[f"caio-{NEWER}.tar.gz"] = lambda h: h.send_error(404)
    assert update_env.run_update(client)["status"] == "failed"
    update_env.repo.server.stop()
    assert client.get("/api/v1/update/check", headers=update_env.auth()).status_code == 502
    m = scrape(client, update_env.auth("viewer"))
    failed = [k for k in m if k[0] == "caio_update_jobs_total" and ("outcome", "failed") in k[1]]
    assert len(failed) == 1 and m[failed[0]] == 1
    assert m[("caio_check_consecutive_failures", ())] == 1


def test_counters_outlive_a_restart_and_count_each_record_once(update_env: UpdateEnv) -> None:
    log = AuditLog(update_env.settings.home / "state" / "audit.jsonl")
    log.append("restart", outcome="rolled_back", kind="unhealthy", reason="not ready")
    log.append("restart", outcome="rolled_back", kind="crash_loop", reason="crash loop")
    log.append("restart", outcome="succeeded")
    log.append("rollback", outcome="activated")
    first = scrape(update_env.client(), update_env.auth("viewer"))
    again = update_env.client()  # a new process: counts come from the log
    scrape(again, update_env.auth("viewer"))
    m = scrape(again, update_env.auth("viewer"))
    counters = [k for k in first if k[0].endswith("_total")]  # a second scrape adds nothing
    assert counters and all(m[k] == first[k] for k in counters)
    assert m[("caio_automatic_rollbacks_total", (("reason", "unhealthy"),))] == 1
    assert m[("caio_automatic_rollbacks_total", (("reason", "crash_loop"),))] == 1
    assert m[("caio_restarts_total", (("outcome", "rolled_back"),))] == 2
    assert m[("caio_manual_rollbacks_total", ())] == 1


def test_the_tally_reads_only_new_lines_and_starts_over_on_a_new_log(tmp_path: Any) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    tally = AuditTally(path)
    log.append("update", outcome="failed", code="hash_mismatch", seconds=2.0)
    assert tally.read().jobs == {("failed", "hash_mismatch"): 1}
    with path.open("ab") as f:
        f.write(b'{"event": "update", "outcome": "activated"')  # a line still being written
    assert tally.read().jobs == {("failed", "hash_mismatch"): 1}
    with path.open("ab") as f:
        f.write(b', "seconds": 700}\n')
    counts = tally.read()
    assert counts.jobs == {("failed", "hash_mismatch"): 1, ("activated", ""): 1}
    assert counts.duration_count == 2 and counts.duration_sum == 702.0
    assert counts.duration_buckets[0] == 0 and counts.duration_buckets[1] == 1  # <=1 s, <=5 s

    path.unlink()  # rotated away: the next log is counted from its start
    AuditLog(path).append("update", outcome="bogus-outcome", code="../../etc")
    assert tally.read().jobs == {("other", ""): 1}  # a new log, and labels stay bounded
