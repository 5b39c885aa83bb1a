"""Repositories behind a real forward proxy: Debian's tinyproxy, started as a plain process."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from caio.api import create_app
from tests.background import end, spawn
from tests.components import require
from tests.helpers import free_port
from tests.nginx_fixtures import Nginx, start_nginx
from tests.pki import make_pki
from tests.update_fixtures import NEWER, UpdateEnv

pytestmark = [pytest.mark.slow, pytest.mark.proxy]

PASSWORD = "proxy-s3cret-password"


@dataclass
class Tinyproxy:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[str]:
        """What the proxy was asked for: 'GET http://...' or 'CONNECT host:port'."""
        if not self.log.exists():
            return []
        return [
            line.split("): ", 1)[1]
            for line in self.log.read_text().splitlines()
            if "Request (file descriptor" in line
        ]


def start_tinyproxy(prefix: Path, *, password: str | None = None) -> Tinyproxy:
    binary = require("tinyproxy", "tinyproxy")
    prefix.mkdir(parents=True)
    port = free_port()
    auth = f"BasicAuth caio {password}\n" if password else ""
    conf = prefix / "tinyproxy.conf"
    conf.write_text(
        f'Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile "{prefix / "log"}"\n'
        f'LogLevel Info\nPidFile "{prefix / "pid"}"\nMaxClients 50\nAllow 127.0.0.1\n{auth}'
    )
    proc = spawn(
        [binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return Tinyproxy(port, proc, prefix / "log")
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    end(proc)
    raise AssertionError("tinyproxy did not start")


@pytest.fixture
def proxies(tmp_path: Path) -> Iterator[list[Tinyproxy]]:
    started: list[Tinyproxy] = []
    yield started
    for proxy in started:
        end(proxy.proc)


def check(env: UpdateEnv, **settings: Any) -> dict[str, Any]:
    app = create_app(env.settings.model_copy(update=settings))
    answer: dict[str, Any] = (
        TestClient(app).get("/api/v1/update/check", headers=env.auth("viewer")).json()
    )
    return answer


def test_through_a_proxy_from_the_environment_and_around_it_with_no_proxy(
    update_env: UpdateEnv,
    proxies: list[Tinyproxy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    update_env.publish(NEWER)
    proxy = start_tinyproxy(tmp_path / "open")
    proxies.append(proxy)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    assert check(update_env)["update_available"]["version"] == NEWER
    asked = proxy.requests()
    assert any(f"GET {update_env.repo.url}/metadata/timestamp.json" in r for r in asked), asked
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
    assert check(update_env)["update_available"]["version"] == NEWER
    assert proxy.requests() == asked  # NO_PROXY: straight to the repository
    monkeypatch.delenv("no_proxy")
    dead = f"http://127.0.0.1:{free_port()}"
    gone = check(update_env, proxy=dead)  # CAIO_PROXY overrides the environment
    assert gone["error"]["code"] == "proxy_unreachable", gone
    assert "CAIO_PROXY" in gone["error"]["message"]


def test_a_dead_proxy_whose_port_holds_407_is_unreachable_not_asking_for_a_password(
    update_env: UpdateEnv,
) -> None:
    """The refusal was recognised by "407" anywhere in the error, the proxy's URL included."""
    update_env.publish(NEWER)
    port = next(p for p in range(14070, 14080) if _free(p))
    gone = check(update_env, proxy=f"http://127.0.0.1:{port}")
    assert gone["error"]["code"] == "proxy_unreachable", gone


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_a_proxy_that_wants_credentials_gets_them_and_they_stay_secret(
    update_env: UpdateEnv, proxies: list[Tinyproxy], tmp_path: Path
) -> None:
    update_env.publish(NEWER)
    proxy = start_tinyproxy(tmp_path / "locked", password=PASSWORD)
    proxies.append(proxy)
    refused = check(update_env, proxy=proxy.url)
    assert refused["error"]["code"] == "proxy_auth_required", refused
    with_credentials = f"http://caio:{PASSWORD}@127.0.0.1:{proxy.port}"
    client = TestClient(
        create_app(update_env.settings.model_copy(update={"proxy": with_credentials}))
    )
    done = update_env.run_update(client)
    assert (done["status"], done["to_version"]) == ("complete", NEWER), done
    assert any("caio-1.1.0.tar.gz" in r for r in proxy.requests())
    state = update_env.layout.state_dir
    for name in ("update.json", "check.json", "audit.jsonl"):
        assert PASSWORD not in (state / name).read_text(), name
    history = client.get("/api/v1/update/history", headers=update_env.auth("viewer")).text
    assert PASSWORD not in history
    wrong = check(update_env, proxy=f"http://caio:not-it@127.0.0.1:{proxy.port}")
    assert wrong["error"]["code"] == "proxy_auth_required"
    assert "not-it" not in wrong["error"]["message"]


def test_a_host_behind_a_proxy_with_a_private_ca_and_a_client_certificate_updates(
    update_env: UpdateEnv, proxies: list[Tinyproxy], tmp_path: Path
) -> None:
    """The enterprise path whole: proxy credentials, CONNECT, a private CA, mutual TLS."""
    update_env.publish(NEWER)
    pki = make_pki(tmp_path / "pki")
    nginx: Nginx = start_nginx(
        update_env.repo.work / "tls",
        update_env.repo.dir,
        tls=(pki.server.cert, pki.server.key),
        client_ca=pki.ca,
    )
    try:
        proxy = start_tinyproxy(tmp_path / "locked", password=PASSWORD)
        proxies.append(proxy)
        host = update_env.settings.model_copy(
            update={
                "update_url": nginx.url,
                "proxy": f"http://caio:{PASSWORD}@127.0.0.1:{proxy.port}",
                "ca_bundle": pki.ca,
                "client_cert": pki.client.cert,
                "client_key": pki.client.key,
            }
        )
        done = update_env.run_update(TestClient(create_app(host)))
        assert (done["status"], done["to_version"]) == ("complete", NEWER), done
        assert update_env.layout.current_version == NEWER
        tunnels = [r for r in proxy.requests() if r.startswith(f"CONNECT 127.0.0.1:{nginx.port}")]
        assert tunnels, proxy.requests()  # every byte went through the proxy, inside TLS
        assert not any(r.startswith("GET ") for r in proxy.requests())

        without_cert = check(update_env, update_url=nginx.url, ca_bundle=pki.ca, proxy=host.proxy)
        assert without_cert["error"]["code"] == "tls_client_cert_refused", without_cert
    finally:
        nginx.stop()
    for name in ("update.json", "check.json", "audit.jsonl"):
        assert PASSWORD not in (update_env.layout.state_dir / name).read_text(), name
