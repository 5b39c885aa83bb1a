"""The whole update flow through the API, against a repository published by tuf_repo."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from caio.api import create_app
from caio.core.audit import AuditLog
from caio.schemas import JobStatus
from caio.update.checks import CheckRecord
from tests.helpers import write_manifest
from tests.update_fixtures import NEWER, RUNNING, UpdateEnv, in_thread, paced, sse_events


@pytest.fixture(autouse=True)
def _fixture(update_env: UpdateEnv) -> None:
    """Every test here starts with 1.0.0 running and 1.0.0 and 1.1.0 published."""
    update_env.publish(RUNNING)
    update_env.publish(NEWER)


def test_update_installs_activates_and_keeps_the_previous_release(update_env: UpdateEnv) -> None:
    client = update_env.client()
    status = update_env.run_update(client)
    assert status["status"] == "complete", status
    assert status["stage"] == "complete"
    assert status["progress"] == 100
    assert status["requires_restart"] is True
    assert (status["from_version"], status["to_version"]) == (RUNNING, NEWER)
    assert status["error"] is None
    assert status["bytes_done"] == status["bytes_total"] > 0
    layout = update_env.layout
    assert (layout.current_version, layout.previous_version) == (NEWER, RUNNING)
    release = layout.release_dir(NEWER)
    assert (release / "caio" / "api" / "app.py").is_file()
    assert not os.access(release / "manifest.json", os.W_OK) or os.geteuid() == 0
    assert update_env.leftovers() == []
    assert list(layout.downloads.iterdir()) == []  # the verified artifact is not kept

    history = client.get("/api/v1/update/history", headers=update_env.auth("viewer")).json()
    record = history["records"][-1]
    assert record["event"] == "update"
    assert record["outcome"] == "activated"
    assert (record["from"], record["to"], record["by"]) == (RUNNING, NEWER, "ops")
    assert len(record["sha256"]) == 64
    assert record["metadata_versions"]["timestamp"] >= 1


def test_status_is_persisted_across_restarts(update_env: UpdateEnv) -> None:
    update_env.run_update(update_env.client())
    again = update_env.client().get("/api/v1/update", headers=update_env.auth("viewer")).json()
    assert (again["status"], again["to_version"]) == ("complete", NEWER)


def test_once_the_new_version_runs_the_status_no_longer_asks_for_a_restart(
    update_env: UpdateEnv, tmp_path: Path
) -> None:
    done = update_env.run_update(update_env.client())
    assert done["requires_restart"] and "restart to run it" in done["message"]
    manifest = write_manifest(
        tmp_path / "new.json", version=NEWER, update_url=update_env.repo.url
    )  # what the restarted process runs
    restarted = create_app(update_env.settings.model_copy(update={"manifest": manifest}))
    status = TestClient(restarted).get("/api/v1/update", headers=update_env.auth()).json()
    assert (status["status"], status["requires_restart"]) == ("complete", False)
    assert status["message"] == f"{NEWER} is installed and running"


def test_event_stream_reports_every_stage_until_the_end(update_env: UpdateEnv) -> None:
    client = update_env.client()
    collected: list[dict[str, Any]] = []
    started = client.post("/api/v1/update", json={}, headers=update_env.auth())
    assert started.status_code == 202
    reader = in_thread(lambda: collected.extend(sse_events(client, update_env.auth("viewer"))))
    reader.join(90)
    assert not reader.is_alive()
    stages = [e["stage"] for e in collected]
    assert stages[-1] == "complete"
    assert {"installing", "complete"} <= set(stages)
    progress = [e["progress"] for e in collected]
    assert progress == sorted(progress)


def test_check_lists_the_channel_releases_and_metadata_expiry(update_env: UpdateEnv) -> None:
    update_env.publish("1.2.0b1", channels=("beta",))
    body = update_env.client().get("/api/v1/update/check", headers=update_env.auth("viewer")).json()
    assert body["running_version"] == RUNNING
    assert body["channel"] == "stable"
    assert [r["version"] for r in body["releases"]] == [RUNNING, NEWER]
    assert body["latest"]["version"] == NEWER
    assert body["update_available"]["version"] == NEWER
    assert set(body["metadata"]["expires"]) == {"root", "timestamp", "snapshot", "targets"}


def test_up_to_date_completes_without_restart(update_env: UpdateEnv) -> None:
    client = update_env.client()
    update_env.run_update(client)
    update_env.settings.manifest.write_text(  # type: ignore[union-attr]
        update_env.settings.manifest.read_text().replace(RUNNING, NEWER)  # type: ignore[union-attr]
    )
    status = update_env.run_update(update_env.client())
    assert status["status"] == "complete"
    assert status["requires_restart"] is False
    assert "already up to date" in status["message"]


def test_exact_target_version_and_downgrade_rules(update_env: UpdateEnv) -> None:
    client = update_env.client()
    update_env.settings.manifest.write_text(  # type: ignore[union-attr]
        update_env.settings.manifest.read_text().replace(RUNNING, "1.0.5")  # type: ignore[union-attr]
    )
    client = update_env.client()
    refused = update_env.run_update(client, {"target_version": RUNNING})
    assert refused["error"]["code"] == "downgrade_refused"
    missing = update_env.run_update(client, {"target_version": "7.0"})
    assert missing["error"]["code"] == "target_not_found"
    allowed = update_env.run_update(client, {"target_version": RUNNING, "allow_downgrade": True})
    assert (allowed["status"], allowed["to_version"]) == ("complete", RUNNING)
    assert update_env.layout.current_version == RUNNING


def test_malformed_version_is_rejected_before_any_job(update_env: UpdateEnv) -> None:
    client = update_env.client()
    response = client.post(
        "/api/v1/update", json={"target_version": "one.two"}, headers=update_env.auth()
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    unknown = client.post("/api/v1/update", json={"surprise": 1}, headers=update_env.auth())
    assert unknown.status_code == 422
    assert client.get("/api/v1/update", headers=update_env.auth()).json()["status"] == "idle"


def test_versions_recorded_as_bad_are_skipped_unless_named(update_env: UpdateEnv) -> None:
    update_env.layout.ensure()
    update_env.layout.mark_bad(NEWER)
    client = update_env.client()
    skipped = update_env.run_update(client)
    assert (skipped["status"], skipped["requires_restart"]) == ("complete", False)
    named = update_env.run_update(client, {"target_version": NEWER})
    assert (named["status"], named["to_version"]) == ("complete", NEWER)


def test_concurrent_update_requests_give_exactly_one_202(update_env: UpdateEnv) -> None:
    client = update_env.client()

    def post(_: int) -> int:
        code: int = client.post("/api/v1/update", json={}, headers=update_env.auth()).status_code
        return code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(post, range(8)))
    assert sorted(codes) == [202] + [409] * 7
    conflict = client.post("/api/v1/update", json={}, headers=update_env.auth())
    if conflict.status_code == 409:
        assert conflict.json()["error"]["code"] == "update_in_progress"
    update_env.wait(client)


def test_rollback_activates_the_previous_release(update_env: UpdateEnv) -> None:
    client = update_env.client()
    none_yet = client.post("/api/v1/rollback", headers=update_env.auth())
    assert none_yet.status_code == 409
    assert none_yet.json()["error"]["code"] == "no_previous_release"
    update_env.run_update(client)
    response = client.post("/api/v1/rollback", headers=update_env.auth())
    assert response.status_code == 202
    body = response.json()
    assert (body["from_version"], body["to_version"], body["requires_restart"]) == (
        NEWER,
        RUNNING,
        True,
    )
    layout = update_env.layout
    assert (layout.current_version, layout.previous_version) == (RUNNING, NEWER)
    records = client.get("/api/v1/update/history", headers=update_env.auth()).json()["records"]
    assert records[-1]["event"] == "rollback"


def test_without_a_trust_anchor_updates_fail_clearly_and_the_service_runs(
    update_env: UpdateEnv,
) -> None:
    (update_env.settings.home / "trusted_root.json").unlink()
    client = update_env.client()
    status = update_env.run_update(client)
    assert status["error"]["code"] == "trust_not_configured"
    assert "caio trust install" in status["error"]["message"]
    check = client.get("/api/v1/update/check", headers=update_env.auth())
    assert check.status_code == 503
    assert check.json()["error"]["code"] == "trust_not_configured"
    assert client.get("/health").status_code == 200


VIEWER_ROUTES = [
    ("get", "/api/v1/update"),
    ("get", "/api/v1/update/check"),
    ("get", "/api/v1/update/history"),
    ("get", "/api/v1/update/events"),
    ("get", "/api/v1/host"),
    ("get", "/api/v1/whoami"),
]
ADMIN_ROUTES = [("post", "/api/v1/update"), ("post", "/api/v1/rollback")]


@pytest.mark.parametrize(("method", "path"), VIEWER_ROUTES + ADMIN_ROUTES)
def test_auth_matrix_on_every_endpoint(update_env: UpdateEnv, method: str, path: str) -> None:
    client: TestClient = update_env.client()
    none = client.request(method, path)
    wrong = client.request(method, path, headers={"Authorization": "Bearer caio_nope"})
    viewer = client.request(method, path, headers=update_env.auth("viewer"))
    assert none.status_code == wrong.status_code == 401
    if (method, path) in ADMIN_ROUTES:
        assert viewer.status_code == 403
        admin = client.request(method, path, headers=update_env.auth())
        assert admin.status_code in (202, 409)
    else:
        assert viewer.status_code == 200
    update_env.wait(client)


def test_version_and_health_stay_public(update_env: UpdateEnv) -> None:
    client = update_env.client()
    assert client.get("/api/v1/version").status_code == 200
    assert client.get("/health").json()["version"] == RUNNING


def test_host_and_whoami_answer_from_local_state_while_the_repository_is_down(
    update_env: UpdateEnv,
) -> None:
    """What the console shows beside a failed check: one truth about this host, offline."""
    client = update_env.client()
    viewer = update_env.auth("viewer")
    assert client.get("/api/v1/update/check", headers=viewer).status_code == 200
    update_env.run_update(client)

    def down(handler: Any) -> None:
        handler.send_error(503)

    update_env.behaviours["timestamp.json"] = down
    check = client.get("/api/v1/update/check", headers=viewer)
    assert check.status_code == 502, check.text
    host = client.get("/api/v1/host", headers=viewer).json()
    assert (host["running_version"], host["active_version"], host["previous_version"]) == (
        RUNNING,
        NEWER,
        RUNNING,
    )
    assert host["restart_pending"] is True  # a restart would run NEWER
    assert host["host_id"] == update_env.layout.host_id()
    assert host["metadata"]["versions"]["timestamp"] >= 1  # as last verified
    assert host["last_check"]["error"] == check.json()["error"]["code"]
    assert host["last_check"]["success"] is not None
    client.post("/api/v1/rollback", headers=update_env.auth())
    after = client.get("/api/v1/host", headers=viewer).json()
    assert (after["active_version"], after["restart_pending"]) == (RUNNING, False)

    assert client.get("/api/v1/whoami", headers=viewer).json()["role"] == "viewer"
    admin = client.get("/api/v1/whoami", headers=update_env.auth()).json()
    assert admin == {"name": "ops", "role": "admin"}
    assert client.get("/api/v1/host").status_code == 401


def test_history_pages_back_and_records_the_version_asked_for(update_env: UpdateEnv) -> None:
    client = update_env.client()
    missing = update_env.run_update(client, {"target_version": "7.0"})
    assert missing["error"]["code"] == "target_not_found"
    audit = AuditLog(update_env.layout.state_dir / "audit.jsonl")
    first = audit.read()[1].records
    assert audit.read()[0][-1]["asked"] == "7.0"  # history shows what was asked, not "?"
    for n in range(5):
        audit.append("probe", n=n)
    viewer = update_env.auth("viewer")
    page = client.get("/api/v1/update/history?limit=2&offset=1", headers=viewer).json()
    assert [r["n"] for r in page["records"]] == [2, 3]
    assert page["integrity"]["records"] == first + 5  # the total, for "older" paging
    end = client.get("/api/v1/update/history?limit=10&offset=4", headers=viewer).json()
    assert [r.get("n") for r in end["records"]][-1] == 0
    assert len(end["records"]) == first + 1


def test_progress_is_published_at_every_step_and_saved_about_once_a_second(
    update_env: UpdateEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 23, item 3: subscribers see every percent; update.json is not rewritten for each."""
    update_env.behaviours[f"caio-{NEWER}.tar.gz"] = paced(chunks=40, pause=0.02)
    client = update_env.client()
    service = client.app.state.update_service  # type: ignore[attr-defined]
    saved: list[tuple[str, str, int]] = []
    published: list[int] = []
    save, publish = service._state.save, service.feed.publish

    def counted_save(status: JobStatus) -> None:
        saved.append((status.status, status.stage, status.progress))
        save(status)

    def counted_publish(status: JobStatus) -> None:
        published.append(status.progress)
        publish(status)

    monkeypatch.setattr(service._state, "save", counted_save)
    monkeypatch.setattr(service.feed, "publish", counted_publish)
    began = time.monotonic()
    done = update_env.run_update(client)
    seconds = time.monotonic() - began
    assert done["status"] == "complete"
    downloading = [p for status, stage, p in saved if stage == "downloading"]
    assert len(set(published)) >= 20  # the stream saw the bar move, percent by percent
    assert len(downloading) <= seconds + 2  # the file: once a second at most, and at the start
    stages = {stage for _, stage, _ in saved}
    assert {"checking", "downloading", "installing", "complete"} <= stages  # every stage saved
    assert saved[-1] == ("complete", "complete", 100)


def test_a_check_writes_its_record_without_fsync(
    update_env: UpdateEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check.json is a cache of the last check: atomic, but not worth two fsyncs a check."""
    client = update_env.client()
    assert client.get("/api/v1/update/check", headers=update_env.auth()).status_code == 200
    synced: list[int] = []
    real_fsync = os.fsync

    def counted_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counted_fsync)
    service = client.app.state.update_service  # type: ignore[attr-defined]
    service.checker.check()
    assert synced == []
    assert service.checker.records.read().last_success is not None


def test_a_check_that_finds_the_same_rewrites_its_record_only_now_and_then(
    tmp_path: Path,
) -> None:
    """A rename costs more than the rest of a check's bookkeeping: same findings, new times."""
    path = tmp_path / "check.json"
    record = CheckRecord(path)
    noon = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

    def found(seconds: int, newest: str) -> None:
        at = noon + timedelta(seconds=seconds)
        record.succeeded(at, newest=newest, newest_eligible=None, running_withdrawn=False)

    found(0, RUNNING)
    first = path.stat()
    found(5, RUNNING)
    assert path.stat().st_ino == first.st_ino  # not rewritten
    assert json_of(path)["last_success"] == "2026-12-06T12:00:00Z"
    assert record.read().last_success == "2026-12-06T12:00:05Z"  # this process: the newest

    found(6, NEWER)
    assert path.stat().st_ino != first.st_ino  # a different finding is written at once
    assert (json_of(path)["newest"], json_of(path)["last_success"]) == (
        NEWER,
        "2026-12-06T12:00:06Z",
    )

    found(7, NEWER)
    path.write_text(json.dumps({**json_of(path), "newest": "9.9.9"}))  # someone else's write
    assert record.read().newest == "9.9.9"  # the file wins over what memory holds

    record.REWRITE_SECONDS = 0  # and the times reach the file now and then
    found(8, "9.9.9")
    assert json_of(path)["last_success"] == "2026-12-06T12:00:08Z"


def json_of(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data
