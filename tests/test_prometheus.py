"""Prometheus against real CAIO hosts: the shipped alert rules, and a fleet scraped for real.

Debian's `prometheus` (and its `promtool`) run as ordinary processes on
loopback with their own configuration; two real `caio serve` processes, each
with its own home, serve `/metrics` behind a viewer token.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.background import end, spawn
from tests.components import require
from tests.helpers import free_port, write_manifest
from tests.served import Served, serve
from tests.update_fixtures import NEWER, UpdateEnv

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "caio-rules.yml"


def test_the_shipped_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    promtool = require("promtool", "prometheus")
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout
    tested = subprocess.run(
        [promtool, "test", "rules", str(RULES.with_name("caio-rules.test.yml"))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.fixture
def fleet(
    update_env: UpdateEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[Served]]:
    """Two CAIO hosts (1.0.0 and 1.0.5) on one repository whose timestamp lasts 6 hours."""
    store = update_env.repo.store
    policy = store.read_policy()
    policy.expiry_days["timestamp"] = 0.25
    store.write_policy(policy)
    with monkeypatch.context() as shortened:  # an earlier expiry, on purpose
        shortened.setenv("TUF_REPO_TRUST_CLOCK", "1")
        update_env.publish(NEWER)  # re-signs the timestamp with the short expiry
    hosts = []
    for n, version in enumerate(("1.0.0", "1.0.5")):
        home = tmp_path / f"host-{n}"
        shutil.copytree(update_env.settings.home, home)
        manifest = write_manifest(
            tmp_path / f"manifest-{n}.json", version=version, update_url=update_env.repo.url
        )
        hosts.append(
            serve(
                update_env,
                CAIO_HOME=str(home),
                CAIO_MANIFEST=str(manifest),
                CAIO_HOST_ID=f"host-{n}",
            )
        )
    yield hosts
    for host in hosts:
        end(host.proc)


def start_prometheus(work: Path, config: dict[str, Any]) -> tuple[subprocess.Popen[bytes], str]:
    prometheus = require("prometheus", "prometheus")
    work.mkdir()
    (work / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    proc = spawn(
        [
            prometheus,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=(work / "prometheus.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, (work / "prometheus.log").read_text()[-3000:]
        try:
            if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("prometheus did not become ready")


def query_until(url: str, promql: str, want: int, timeout: float = 60) -> list[dict[str, Any]]:
    """Ask Prometheus' query API until ``promql`` has ``want`` series."""
    deadline = time.monotonic() + timeout
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        answer = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
        result = answer["data"]["result"]
        if len(result) == want:
            return result
        time.sleep(0.5)
    raise AssertionError(f"{promql}: {len(result)} series, wanted {want}: {result}")


def test_prometheus_shows_the_fleet_and_fires_the_expiry_alert(
    update_env: UpdateEnv, fleet: list[Served], tmp_path: Path
) -> None:
    for host in fleet:  # each host verifies the repository once: its trusted metadata
        assert host.api("GET", "/api/v1/update/check", role="viewer").status_code == 200
    token = tmp_path / "viewer.token"
    token.write_text(update_env.viewer)
    token.chmod(0o600)
    wrong = tmp_path / "wrong.token"
    wrong.write_text("caio_not-a-token")
    targets = [host.url.removeprefix("http://") for host in fleet]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "caio",
                "authorization": {"credentials_file": str(token)},
                "static_configs": [{"targets": targets}],
            },
            {
                "job_name": "caio-wrong-token",
                "authorization": {"credentials_file": str(wrong)},
                "static_configs": [{"targets": targets[:1]}],
            },
        ],
    }
    proc, url = start_prometheus(tmp_path / "prometheus", config)
    try:
        versions = query_until(url, 'caio_build_info{job="caio"}', 2)
        assert sorted(r["metric"]["version"] for r in versions) == ["1.0.0", "1.0.5"]
        assert sorted(r["metric"]["host_id"] for r in versions) == ["host-0", "host-1"]
        newest = query_until(url, "caio_release_newest_info", 2)
        assert {r["metric"]["version"] for r in newest} == {NEWER}
        firing = query_until(
            url, 'ALERTS{alertname="CaioTimestampExpiringSoon",alertstate="firing"}', 2
        )
        assert {r["metric"]["instance"] for r in firing} == set(targets)
        assert query_until(url, 'ALERTS{alertname="CaioRootOrTargetsExpiringSoon"}', 0) == []
        refused = query_until(url, 'up{job="caio-wrong-token"} == 0', 1)
        assert refused[0]["metric"]["instance"] == targets[0]  # a bad token is refused
    finally:
        end(proc)
