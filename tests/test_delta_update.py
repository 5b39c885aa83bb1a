"""Delta updates on the host: a signed delta applied to a kept base, or the full download.

A real repository published by tuf_repo (its deltas signed by `add`), served on
loopback; the host's update service in-process, and one real `caio serve`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from selenium.webdriver.common.by import By

import caio.update.checking as checking_module
from caio.core.delta import build_delta, delta_target_path
from caio.remote_view import check_lines
from caio.schemas import CheckOut
from tests.browser import Browser
from tests.served import Served, run
from tests.update_fixtures import (
    NEWER,
    RUNNING,
    UpdateEnv,
    built_release,
    cut_after,
    in_thread,
    paced,
    sse_events,
)

LATER = "1.2.0"
NEWEST = "1.3.0"
ALONE = "1.4.0"


def audit(env: UpdateEnv) -> list[dict[str, Any]]:
    lines = (env.layout.state_dir / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def activated(env: UpdateEnv) -> dict[str, Any]:
    return next(r for r in reversed(audit(env)) if r.get("outcome") == "activated")


def served_file(env: UpdateEnv, target: str) -> Path:
    directory, _, name = target.rpartition("/")
    return next((env.repo.dir / "targets" / directory).glob(f"*.{name}"))


def full_artifact(env: UpdateEnv, version: str) -> Path:
    return served_file(env, f"caio/{version}/caio-{version}.tar.gz")


def files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def kept(env: UpdateEnv) -> list[str]:
    return sorted(p.name for p in (env.settings.home / "bases").iterdir())


@pytest.fixture
def host(update_env: UpdateEnv) -> tuple[UpdateEnv, TestClient]:
    """A host that installed NEWER by a full download (and kept its tar), with LATER out."""
    update_env.publish(NEWER)
    client = update_env.client()
    first = update_env.run_update(client)
    assert first["status"] == "complete", first
    assert "delta" not in activated(update_env)  # nothing kept yet to apply one to
    assert kept(update_env) == [f"{NEWER}.tar"]
    update_env.publish(LATER)  # `add` signs the delta from NEWER with it
    return update_env, client


def test_a_delta_update_installs_the_same_files_as_the_full_download(
    host: tuple[UpdateEnv, TestClient], tmp_path: Path
) -> None:
    env, client = host
    final = env.run_update(client)
    assert final["status"] == "complete", final
    record = activated(env)
    delta = served_file(env, delta_target_path(NEWER, LATER)).stat().st_size
    assert record["delta"] == {"from": NEWER, "bytes": delta}
    assert record["bytes"] == delta  # what was downloaded
    assert delta * 10 < full_artifact(env, LATER).stat().st_size
    fetched = [path for path, _ in env.requests if "/targets/" in path]
    assert not any(path.endswith(f"caio-{LATER}.tar.gz") for path in fetched)
    assert env.layout.current_version == LATER
    assert kept(env) == [f"{NEWER}.tar", f"{LATER}.tar"]  # current and previous
    assert env.leftovers() == []

    whole = tmp_path / "whole"  # what the full download would have installed
    with tarfile.open(full_artifact(env, LATER)) as tar:
        tar.extractall(whole, filter="data")
    assert files(env.layout.release_dir(LATER)) == files(whole / f"caio-{LATER}")
    metrics = client.get("/metrics", headers=env.auth("viewer")).text
    assert 'caio_delta_updates_total{outcome="applied"} 1.0' in metrics


def _resign_delta(env: UpdateEnv, change: dict[str, Any] | None, data: bytes | None) -> None:
    """Sign the delta target again with the repository's real key, lying in one way."""
    store = env.repo.store
    targets = store.load("targets")
    path = delta_target_path(NEWER, LATER)
    target = targets.signed.targets[path]
    if change is not None:
        target.unrecognized_fields["custom"]["delta"].update(change)
    if data is not None:
        digest = hashlib.sha256(data).hexdigest()
        store.put_target(path, digest, data)
        target.length, target.hashes = len(data), {"sha256": digest}
    env.repo.publisher().commit({"targets": targets})


def _other_bytes_delta(env: UpdateEnv, tmp_path: Path) -> bytes:
    """A well-formed delta from NEWER's tar to a tar that is not LATER's."""
    base = env.settings.home / "bases" / f"{NEWER}.tar"
    other = tmp_path / "other.tar"
    data = gzip.decompress(full_artifact(env, LATER).read_bytes())
    other.write_bytes(data.replace(b"Verified self-update", b"Verified sel-fupdate", 1))
    out = io.BytesIO()
    build_delta(base, other, out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("no kept base", f"kept no tar of {NEWER}"),
        ("kept base changed on disk", f"not the {NEWER} tar"),
        ("delta damaged on the server", "does not match the signed"),
        ("delta signed for another base", f"signed as the delta from 1.0.0 to {LATER}"),
        ("delta signed to make other bytes", "not the signed"),
    ],
)
def test_any_failure_of_the_delta_falls_back_to_the_full_download(
    host: tuple[UpdateEnv, TestClient], tmp_path: Path, damage: str, reason: str
) -> None:
    env, client = host
    base = env.settings.home / "bases" / f"{NEWER}.tar"
    if damage == "no kept base":
        base.unlink()
    elif damage == "kept base changed on disk":
        data = bytearray(base.read_bytes())
        data[2000] ^= 0xFF
        base.write_bytes(bytes(data))
    elif damage == "delta damaged on the server":
        served = served_file(env, delta_target_path(NEWER, LATER))
        data = bytearray(served.read_bytes())
        data[-10] ^= 0xFF
        served.write_bytes(bytes(data))
    elif damage == "delta signed for another base":
        _resign_delta(env, {"from": "1.0.0"}, None)
    else:
        _resign_delta(env, None, _other_bytes_delta(env, tmp_path))

    final = env.run_update(client)
    assert final["status"] == "complete", final
    assert env.layout.current_version == LATER  # the signed release, whole
    record = activated(env)
    assert "delta" not in record
    assert reason in record["delta_fallback"], record["delta_fallback"]
    assert record["bytes"] == full_artifact(env, LATER).stat().st_size
    with tarfile.open(full_artifact(env, LATER)) as tar:
        tar.extractall(tmp_path / "whole", filter="data")
    assert files(env.layout.release_dir(LATER)) == files(tmp_path / "whole" / f"caio-{LATER}")
    assert env.leftovers() == []
    metrics = client.get("/metrics", headers=env.auth("viewer")).text
    assert 'caio_delta_updates_total{outcome="fallback"} 1.0' in metrics


def test_a_check_shows_each_newer_release_s_delta_and_whether_it_applies(
    host: tuple[UpdateEnv, TestClient],
) -> None:
    env, client = host
    env.publish(NEWEST)  # deltas from LATER and from NEWER (the two newest before it)
    alone = built_release(ALONE, env.repo.work / "dist")
    env.repo.publisher().add_release(alone, ("stable",), delta_from=0)  # no delta at all

    def offered() -> dict[str, Any]:
        answer = client.get("/api/v1/update/check", headers=env.auth("viewer")).json()
        assert answer["update_available"]["version"] == ALONE
        assert answer["update_available"]["delta"] is None
        return {r["version"]: r["delta"] for r in answer["releases"]}

    def size(version: str) -> int:
        return served_file(env, delta_target_path(NEWER, version)).stat().st_size

    deltas = offered()
    assert deltas == {
        NEWER: None,  # the release this host runs (installed, not yet restarted into)
        LATER: {"from_version": NEWER, "bytes": size(LATER), "applies": True},
        NEWEST: {"from_version": NEWER, "bytes": size(NEWEST), "applies": True},
        ALONE: None,  # published without deltas: an update downloads it whole
    }
    (env.settings.home / "bases" / f"{NEWER}.tar").unlink()
    assert offered()[LATER] == {"from_version": NEWER, "bytes": size(LATER), "applies": False}

    # A host far behind looks up the deltas of the newest few only (each may read a bin).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checking_module, "DELTA_OFFERS", 2)
        capped = offered()
    assert capped[LATER] is None and capped[NEWEST] is not None  # ALONE, NEWEST: the two


def test_a_delta_cut_mid_way_resumes_with_a_range_request(
    host: tuple[UpdateEnv, TestClient],
) -> None:
    env, client = host
    served = served_file(env, delta_target_path(NEWER, LATER))
    size = served.stat().st_size
    env.behaviours[served.name] = cut_after(size // 2)
    final = env.run_update(client)
    assert final["status"] == "complete", final
    assert activated(env)["delta"] == {"from": NEWER, "bytes": size}
    ranges = [r for path, r in env.requests if path.endswith(served.name)]
    assert ranges == [None, f"bytes={size // 2}-"]


def test_the_event_stream_follows_the_delta_path_to_the_end(
    host: tuple[UpdateEnv, TestClient],
) -> None:
    env, client = host
    served = served_file(env, delta_target_path(NEWER, LATER))
    env.behaviours[served.name] = paced(chunks=4, pause=0.5)  # time to watch it download
    collected: list[dict[str, Any]] = []
    assert client.post("/api/v1/update", json={}, headers=env.auth()).status_code == 202
    reader = in_thread(lambda: collected.extend(sse_events(client, env.auth("viewer"))))
    reader.join(90)
    assert not reader.is_alive()
    downloading = [e for e in collected if e["stage"] == "downloading"]
    assert downloading, collected
    assert all(f"the delta from {NEWER} to {LATER}" in e["message"] for e in downloading)
    assert "verifying" in [e["stage"] for e in collected]
    assert downloading[0]["bytes_total"] == served.stat().st_size
    assert collected[-1]["stage"] == "complete" and collected[-1]["to_version"] == LATER
    progress = [e["progress"] for e in collected]
    assert progress == sorted(progress)


def test_a_host_whose_release_was_removed_still_updates_through_the_delta_from_it(
    host: tuple[UpdateEnv, TestClient],
) -> None:
    env, client = host
    env.repo.publisher().remove(NEWER)  # `tuf-repo remove`: the deltas from it stay
    answer = client.get("/api/v1/update/check", headers=env.auth("viewer")).json()
    assert NEWER not in [r["version"] for r in answer["releases"]]
    running = answer["running_version"]  # what `caio remote check` prints says so
    summary = check_lines(CheckOut.model_validate(answer), datetime.now(UTC))[1]
    assert f"{running} is not listed on this channel" in summary
    assert answer["update_available"]["delta"]["from_version"] == NEWER
    final = env.run_update(client)
    assert (final["status"], final["to_version"]) == ("complete", LATER), final
    assert activated(env)["delta"]["from"] == NEWER


def test_with_deltas_off_the_host_downloads_the_release_whole(
    host: tuple[UpdateEnv, TestClient],
) -> None:
    env, _ = host
    env.settings = env.settings.model_copy(update={"delta": "off"})
    final = env.run_update(env.client())
    assert final["status"] == "complete", final
    record = activated(env)
    assert "delta" not in record and "delta_fallback" not in record
    assert record["bytes"] == full_artifact(env, LATER).stat().st_size


@pytest.mark.slow
def test_a_real_caio_serve_updates_through_a_delta_and_says_so(
    host: tuple[UpdateEnv, TestClient], started: list[Served]
) -> None:
    env, _ = host
    served = run(env, started)
    delta = served_file(env, delta_target_path(NEWER, LATER)).stat().st_size
    check = subprocess.run(
        [sys.executable, "-m", "caio", "remote", "check", "--url", served.url],
        env={**os.environ, "CAIO_TOKEN": env.viewer},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    row = next(line for line in check.stdout.splitlines() if line.startswith(f"{LATER} "))
    assert f"delta from {NEWER}: {delta:,} bytes" in row, check.stdout

    assert served.api("POST", "/api/v1/update", json={}).status_code == 202
    final = served.wait_job()
    assert final["status"] == "complete", final
    assert activated(env)["delta"] == {"from": NEWER, "bytes": delta}
    fetched = [path for path, _ in env.requests if "/targets/" in path]
    assert any(path.endswith(f"caio-{LATER}.from-{NEWER}.delta") for path in fetched)
    assert not any(path.endswith(f"caio-{LATER}.tar.gz") for path in fetched)
    history = served.api("GET", "/api/v1/update/history", role="viewer").json()["records"]
    assert {"from": NEWER, "bytes": delta} in [r.get("delta") for r in history]


@pytest.mark.slow
@pytest.mark.browser
def test_the_console_shows_the_delta_an_update_would_download(
    host: tuple[UpdateEnv, TestClient], started: list[Served], browser: Browser
) -> None:
    env, _ = host
    served = run(env, started)
    delta = served_file(env, delta_target_path(NEWER, LATER)).stat().st_size
    browser.open(served.url + "/")
    browser.use_token(env.viewer)
    browser.wait(lambda: LATER in browser.text("would-install"), message="no check shown")
    # The process runs this source tree's 1.0.0, which the repository does not list.
    assert f"{RUNNING} is not listed on this channel" in browser.text("would-install")
    row = browser.driver.find_element(By.CSS_SELECTOR, f'#release-rows tr[data-version="{LATER}"]')
    assert f"delta from {NEWER}: {delta:,} bytes" in row.text
    assert "no kept base" not in row.text
