"""Two-party approval end to end: a real `caio serve`, the vendor's repository behind nginx,
the approval repository on its own server, both published and approved with the real CLI.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from caio.api import create_app
from tests.browser import Browser
from tests.helpers import map_doc, write_map
from tests.nginx_fixtures import Nginx, start_nginx
from tests.served import Served, run
from tests.update_fixtures import NEWER, UpdateEnv

pytestmark = [pytest.mark.slow, pytest.mark.nginx, pytest.mark.browser]


def cli(module: str, *args: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def vendor_nginx(update_env: UpdateEnv, tmp_path: Path) -> Iterator[Nginx]:
    nginx = start_nginx(tmp_path / "nginx", update_env.repo.dir)
    yield nginx
    nginx.stop()


def approve(approval: UpdateEnv, vendor: UpdateEnv, version: str) -> str:
    """What the organisation's approver runs: the vendor's release, read through TUF."""
    return cli(
        "tuf_repo",
        "approve",
        "--repo",
        approval.repo.dir,
        "--keys",
        approval.repo.keys,
        "--from",
        vendor.repo.dir,
        "--trusted-root",
        vendor.repo.trusted_root,
        version,
        "--yes",
    )


def host(vendor: UpdateEnv, approval: UpdateEnv, nginx: Nginx, tmp_path: Path) -> dict[str, str]:
    """The host's map (the vendor behind nginx) and both anchors, as an operator installs them."""
    path = write_map(
        tmp_path / "map.json", map_doc({"vendor": nginx.url, "approval": approval.repo.url})
    )
    env = {"CAIO_HOME": str(vendor.settings.home), "CAIO_REPOSITORY_MAP": str(path)}
    for name, repo in (("vendor", vendor), ("approval", approval)):
        anchor = repo.repo.trusted_root
        cli("caio", "trust", "install", "--repository", name, anchor, env=env)
    return {"CAIO_REPOSITORY_MAP": str(path)}


def check(served: Served) -> dict[str, Any]:
    answer = served.api("GET", "/api/v1/update/check", role="viewer")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_a_host_installs_only_what_the_vendor_and_its_approvers_both_sign(
    update_env: UpdateEnv,
    approval_env: UpdateEnv,
    vendor_nginx: Nginx,
    started: list[Served],
    browser: Browser,
    tmp_path: Path,
) -> None:
    vendor = update_env
    vendor.publish(NEWER)
    vendor.publish("1.2.0")  # never approved: as if the vendor's keys were stolen
    assert "approved caio/1.1.0/caio-1.1.0.tar.gz" in approve(approval_env, vendor, NEWER)
    # The approval repository's keys stolen: a release the vendor never signed (1.3.0),
    # and other bytes under a version the vendor signs (1.2.0).
    stolen = approval_env.repo.publisher()
    for version in ("1.2.0", "1.3.0"):
        stolen.add_release(
            approval_env.repo.build(version, body="# not the vendor's\n"), ["stable"]
        )
    mapped = host(vendor, approval_env, vendor_nginx, tmp_path)
    served = run(vendor, started, **mapped)

    offered = check(served)
    assert [r["version"] for r in offered["releases"]] == [NEWER]
    plain = cli(  # plain ngclient Updaters over HTTP, the rule written out again
        "examples.tap4_decision",
        mapped["CAIO_REPOSITORY_MAP"],
        "--anchor",
        f"vendor={vendor.repo.trusted_root}",
        "--anchor",
        f"approval={approval_env.repo.trusted_root}",
    )
    caio = {r["version"]: "offered" for r in offered["releases"]}
    caio |= {held["version"]: held["code"] for held in offered["unapproved"]}
    assert json.loads(plain) == caio
    assert caio == {
        NEWER: "offered",
        "1.2.0": "repositories_disagree",
        "1.3.0": "approval_missing",
    }
    # What the operator sees: caio remote check, and the console in Chromium.
    table = cli("caio", "remote", "check", "--url", served.url, env={"CAIO_TOKEN": vendor.viewer})
    assert f"{NEWER}" in table and "signed by vendor + approval" in table
    assert "NOT OFFERED 1.2.0 (repositories_disagree)" in table
    assert "NOT OFFERED 1.3.0 (approval_missing)" in table
    browser.open(served.url + "/")
    browser.use_token(vendor.viewer)
    browser.wait(lambda: "signed by vendor + approval" in browser.text("release-rows"))
    rows = browser.text("release-rows")
    assert "NOT OFFERED (approval_missing)" in rows and "missing from vendor" in rows
    assert "NOT OFFERED (repositories_disagree)" in rows
    roles = browser.text("roles").split()
    assert {"vendor/timestamp", "approval/timestamp", "approval/root"} <= set(roles)
    assert browser.violations() == []
    refused = served.api("POST", "/api/v1/update", json={"target_version": "1.2.0"})
    assert refused.status_code == 202
    failed = served.wait_job()
    assert failed["error"]["code"] == "repositories_disagree", failed
    assert "vendor:" in failed["error"]["message"] and "approval:" in failed["error"]["message"]
    served.api("POST", "/api/v1/update", json={"target_version": "1.3.0"})
    missing = served.wait_job()
    assert missing["error"]["code"] == "approval_missing", missing
    assert "signed by approval, missing from vendor" in missing["error"]["message"]

    assert served.api("POST", "/api/v1/update", json={}).status_code == 202
    done = served.wait_job()
    assert (done["status"], done["to_version"]) == ("complete", NEWER), done
    history = served.api("GET", "/api/v1/update/history", role="viewer").json()["records"]
    assert history[-1]["signed_by"] == ["vendor", "approval"]
    # The approval repository holds metadata only: the bytes came from the vendor's nginx.
    assert any(f"caio-{NEWER}.tar.gz" in line for line in vendor_nginx.access_log())

    # Restart into it (exec), then the approvers revoke it: the host says it runs a
    # withdrawn release, and nothing chooses it any more.
    assert served.api("POST", "/api/v1/restart", json={"graceful": True}).status_code == 202
    wait_for_version(served, NEWER)
    cli(
        "tuf_repo",
        "revoke-approval",
        "--repo",
        approval_env.repo.dir,
        "--keys",
        approval_env.repo.keys,
        NEWER,
        "--reason",
        "found a flaw",
    )
    after = check(served)
    assert after["running_withdrawn"]["reason"] == "found a flaw"
    assert served.api("GET", "/api/v1/version", role=None).json()["withdrawn"] is True

    # A root rotation in either repository is followed; each anchor advances on its own.
    for name, env in (("approval", approval_env), ("vendor", vendor)):
        cli("tuf_repo", "rotate", "--repo", env.repo.dir, "--keys", env.repo.keys, "root")
        check(served)
        anchor = vendor.layout.repository_dir(name) / "trusted_root.json"
        assert json.loads(anchor.read_text())["signed"]["version"] == 2, name

    # The approval repository down: no decision from the vendor alone, and still healthy.
    approval_env.repo.server.stop()
    down = served.api("GET", "/api/v1/update/check", role="viewer")
    assert down.status_code == 502
    assert down.json()["error"]["code"] == "repository_unreachable"
    assert "repository 'approval'" in down.json()["error"]["message"]
    assert served.api("GET", "/health", role=None).status_code == 200


def wait_for_version(served: Served, version: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError):  # it is restarting
            if served.api("GET", "/api/v1/version", role=None).json()["version"] == version:
                return
        time.sleep(0.2)
    raise AssertionError(f"{version} did not come up:\n" + "".join(served.log[-20:]))


def test_each_repository_has_its_own_credentials_kept_secret(
    update_env: UpdateEnv, approval_env: UpdateEnv, tmp_path: Path
) -> None:
    """The vendor's nginx wants a password (userinfo in its mirror URL); the approval
    repository is public. The password reaches the vendor only, and is never shown."""
    secret = "vendor-s3cret-password"
    basic = base64.b64encode(f"host:{secret}".encode()).decode()
    locked = f'if ($http_authorization != "Basic {basic}") {{ return 401; }}\n'
    nginx = start_nginx(tmp_path / "locked", update_env.repo.dir, access=locked)
    try:
        update_env.publish(NEWER)
        approve(approval_env, update_env, NEWER)
        layout = update_env.layout
        for name, env in (("vendor", update_env), ("approval", approval_env)):
            anchor = layout.repository_dir(name) / "trusted_root.json"
            anchor.parent.mkdir(parents=True, exist_ok=True)
            anchor.write_bytes(env.repo.trusted_root.read_bytes())

        def app_with(password: str) -> TestClient:
            vendor_url = f"http://host:{password}@127.0.0.1:{nginx.port}"
            path = write_map(
                tmp_path / f"map-{password}.json",
                map_doc({"vendor": vendor_url, "approval": approval_env.repo.url}),
            )
            settings = update_env.settings.model_copy(update={"repository_map": path})
            return TestClient(create_app(settings))

        wrong = app_with("not-the-password").get(
            "/api/v1/update/check", headers=update_env.auth("viewer")
        )
        assert wrong.status_code == 502
        assert wrong.json()["error"]["code"] == "repository_unauthorized"
        assert "repository 'vendor'" in wrong.json()["error"]["message"]
        client = app_with(secret)
        check = client.get("/api/v1/update/check", headers=update_env.auth("viewer"))
        assert check.status_code == 200 and secret not in check.text
        done = update_env.run_update(client)
        assert (done["status"], done["to_version"]) == ("complete", NEWER), done
        assert all(f'auth="Basic {basic}"' in line for line in nginx.access_log()[-3:])
        state = layout.state_dir
        for name in ("update.json", "check.json", "audit.jsonl"):
            assert secret not in (state / name).read_text(), name
    finally:
        nginx.stop()
