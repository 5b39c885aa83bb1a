"""CAIO against a repository served by a real nginx with the shipped deploy/nginx/caio-repo.conf.

Debian's nginx runs as an ordinary process with its own prefix and a free
loopback port; the repository is published by `tuf_repo`; CAIO runs through
its app factory with the nginx URL as its update URL.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from caio.api import create_app
from tests.nginx_fixtures import Nginx, start_nginx
from tests.pki import make_pki
from tests.update_fixtures import NEWER, UpdateEnv

pytestmark = [pytest.mark.slow, pytest.mark.nginx]

TOKEN = "repo-s3cret-token"


@pytest.fixture
def servers() -> Iterator[list[Nginx]]:
    started: list[Nginx] = []
    yield started
    for server in started:
        server.stop()


def nginx_for(env: UpdateEnv, servers: list[Nginx], name: str = "nginx", **options: Any) -> Nginx:
    server = start_nginx(env.repo.work / name, env.repo.dir, **options)
    servers.append(server)
    return server


def client(env: UpdateEnv, url: str, **settings: Any) -> TestClient:
    return TestClient(create_app(env.settings.model_copy(update={"update_url": url, **settings})))


def test_an_update_through_nginx_and_the_headers_it_serves(
    update_env: UpdateEnv, servers: list[Nginx]
) -> None:
    update_env.publish(NEWER)
    nginx = nginx_for(update_env, servers)
    done = update_env.run_update(client(update_env, nginx.url))
    assert (done["status"], done["to_version"]) == ("complete", NEWER), done
    assert update_env.layout.current_version == NEWER

    timestamp = httpx.get(f"{nginx.url}/metadata/timestamp.json")
    assert timestamp.headers["cache-control"] == "no-cache, max-age=0"
    versioned = httpx.get(f"{nginx.url}/metadata/1.root.json")
    assert "immutable" in versioned.headers["cache-control"]
    target = next(line.split()[0] for line in nginx.access_log() if f"caio-{NEWER}.tar.gz" in line)
    artifact = httpx.get(nginx.url + target, headers={"Accept-Encoding": "gzip"})
    assert "immutable" in artifact.headers["cache-control"]
    assert "content-encoding" not in artifact.headers  # served as signed, never recompressed
    part = httpx.get(nginx.url + target, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and len(part.content) == 100
    assert httpx.get(f"{nginx.url}/").status_code == 404  # nothing else is served


def test_a_download_cut_mid_way_resumes_with_a_range_request(
    update_env: UpdateEnv, servers: list[Nginx]
) -> None:
    update_env.publish(NEWER)
    nginx = nginx_for(update_env, servers, http_extra="    limit_rate 16k;")
    caio = client(update_env, nginx.url)
    started = caio.post("/api/v1/update", json={}, headers=update_env.auth())
    assert started.status_code == 202
    deadline = time.monotonic() + 30
    while caio.get("/api/v1/update", headers=update_env.auth()).json()["bytes_done"] < 20_000:
        assert time.monotonic() < deadline, "the download did not start"
        time.sleep(0.05)
    nginx.kill_workers()  # the connection is cut mid-way; nginx's master starts new workers
    done = update_env.wait(caio)
    assert (done["status"], done["to_version"]) == ("complete", NEWER), done
    resumed = [
        line
        for line in nginx.access_log()
        if f"caio-{NEWER}.tar.gz" in line and " 206 " in line and 'range="bytes=' in line
    ]
    assert resumed, nginx.access_log()
    offset = int(resumed[0].split('range="bytes=')[1].split("-")[0])
    assert offset >= 20_000  # from what was kept, not from the start


def test_a_private_repository_needs_the_token_and_gets_it(
    update_env: UpdateEnv, servers: list[Nginx]
) -> None:
    update_env.publish(NEWER)
    auth = f'if ($http_authorization != "Bearer {TOKEN}") {{ return 401; }}\n'
    nginx = nginx_for(update_env, servers, access=auth)
    refused = client(update_env, nginx.url).get("/api/v1/update/check", headers=update_env.auth())
    assert refused.status_code == 502
    assert refused.json()["error"]["code"] == "repository_unauthorized"
    assert "CAIO_UPDATE_TOKEN" in refused.json()["error"]["message"]
    allowed = client(update_env, nginx.url, update_token=TOKEN)
    assert update_env.run_update(allowed)["to_version"] == NEWER
    assert TOKEN not in (update_env.settings.home / "state" / "update.json").read_text()


def test_a_redirect_to_another_origin_never_receives_the_token(
    update_env: UpdateEnv, servers: list[Nginx]
) -> None:
    update_env.publish(NEWER)
    mirror = nginx_for(update_env, servers, "mirror")  # another origin, public
    auth = (
        f'if ($http_authorization != "Bearer {TOKEN}") {{ return 401; }}\n'
        f"rewrite ^/targets/(.*)$ {mirror.url}/targets/$1 redirect;\n"
    )
    origin = nginx_for(update_env, servers, "origin", access=auth)
    caio = client(update_env, origin.url, update_token=TOKEN)
    assert update_env.run_update(caio)["to_version"] == NEWER
    redirected = [line for line in origin.access_log() if line.startswith("/targets/")]
    assert redirected and all(" 302 " in line for line in redirected)
    served = [line for line in mirror.access_log() if line.startswith("/targets/")]
    assert served and all('auth="-"' in line for line in served), served  # no header at all
    assert all(f'auth="Bearer {TOKEN}"' in line for line in origin.access_log())


def test_a_stale_cached_timestamp_never_installs_anything_wrong(
    update_env: UpdateEnv, servers: list[Nginx], tmp_path: Path
) -> None:
    nginx = nginx_for(update_env, servers)
    metadata = update_env.repo.dir / "metadata"
    seen_it = client(update_env, nginx.url)
    assert update_env.run_update(seen_it)["message"].startswith("already up to date")
    stale = tmp_path / "stale-timestamp.json"
    shutil.copy(metadata / "timestamp.json", stale)
    update_env.publish(NEWER)
    fresh = tmp_path / "fresh-timestamp.json"
    shutil.copy(metadata / "timestamp.json", fresh)

    # A host that saw the new timestamp, then gets the old one from a stale cache.
    knows_new = client(update_env, nginx.url)
    check = knows_new.get("/api/v1/update/check", headers=update_env.auth()).json()
    assert check["latest"]["version"] == NEWER
    shutil.copy(stale, metadata / "timestamp.json")  # the cache serves the old copy a while
    refused = knows_new.get("/api/v1/update/check", headers=update_env.auth())
    assert refused.json()["error"]["code"] == "metadata_rollback"
    assert update_env.run_update(knows_new)["error"]["code"] == "metadata_rollback"
    assert update_env.layout.current_version is None  # nothing installed

    # The cache expires: the same host updates, to the release that was signed.
    shutil.copy(fresh, metadata / "timestamp.json")
    assert update_env.run_update(knows_new)["to_version"] == NEWER


def test_errors_are_never_cacheable_and_dotfiles_are_not_served(
    update_env: UpdateEnv, servers: list[Nginx]
) -> None:
    """Issue 21, item 8: the 404 for the next root was marked immutable for a year."""
    (update_env.repo.dir / "metadata" / ".1.root.json.swp").write_text("an editor's leftover")
    (update_env.repo.dir / "targets" / ".git").mkdir()
    nginx = nginx_for(update_env, servers)
    next_root = httpx.get(f"{nginx.url}/metadata/2.root.json")
    assert next_root.status_code == 404
    assert next_root.headers["cache-control"] == "no-store"
    for path in ("/metadata/.1.root.json.swp", "/targets/.git/", "/metadata/nope.json"):
        answer = httpx.get(nginx.url + path)
        assert answer.status_code == 404, path
        assert answer.headers["cache-control"] == "no-store", path
    assert "immutable" in httpx.get(f"{nginx.url}/metadata/1.root.json").headers["cache-control"]

    private = nginx_for(
        update_env,
        servers,
        "private",
        access=f'if ($http_authorization != "Bearer {TOKEN}") {{ return 401; }}\n',
    )
    refused = httpx.get(f"{private.url}/metadata/1.root.json")
    assert refused.status_code == 401 and refused.headers["cache-control"] == "no-store"


def test_without_its_access_file_nginx_refuses_to_start(
    update_env: UpdateEnv, servers: list[Nginx]
) -> None:
    """A misnamed bearer-check file must not leave a private repository public."""
    with pytest.raises(AssertionError, match=r"caio-repo-access\.conf"):
        nginx_for(update_env, servers, access=None)


def test_https_with_a_private_ca_and_what_a_bad_certificate_gets(
    update_env: UpdateEnv, servers: list[Nginx], tmp_path: Path
) -> None:
    """Issue 25: CAIO_CA_BUNDLE; a wrong CA, host name or expired certificate has its code."""
    pki = make_pki(tmp_path / "pki")
    update_env.publish(NEWER)
    good = nginx_for(update_env, servers, "tls", tls=(pki.server.cert, pki.server.key))
    assert good.url.startswith("https://")
    viewer = update_env.auth("viewer")
    unknown = client(update_env, good.url).get("/api/v1/update/check", headers=viewer)
    assert unknown.status_code == 502, unknown.text  # the system does not know this CA
    assert unknown.json()["error"]["code"] == "tls_verify_failed"
    assert "CAIO_CA_BUNDLE" in unknown.json()["error"]["message"]
    stranger = client(update_env, good.url, ca_bundle=pki.stranger_ca)
    assert stranger.get("/api/v1/update/check", headers=viewer).json()["error"]["code"] == (
        "tls_verify_failed"
    )
    in_a_directory = pki.ca.parent / "cas"
    in_a_directory.mkdir()
    (in_a_directory / "private-ca.pem").write_bytes(pki.ca.read_bytes())
    check = client(update_env, good.url, ca_bundle=in_a_directory).get(
        "/api/v1/update/check", headers=viewer
    )
    assert check.status_code == 200, check.text  # a directory of PEM files works too
    trusted = client(update_env, good.url, ca_bundle=pki.ca)
    done = update_env.run_update(trusted)
    assert (done["status"], done["to_version"]) == ("complete", NEWER), done
    for bad in (pki.wrong_host, pki.expired):
        nginx = nginx_for(update_env, servers, f"tls-{bad.cert.stem}", tls=(bad.cert, bad.key))
        answer = client(update_env, nginx.url, ca_bundle=pki.ca).get(
            "/api/v1/update/check", headers=viewer
        )
        assert answer.status_code == 502, answer.text
        assert answer.json()["error"]["code"] == "tls_verify_failed", (bad, answer.text)


def test_mutual_tls_presents_this_hosts_certificate_and_names_a_refusal(
    update_env: UpdateEnv, servers: list[Nginx], tmp_path: Path
) -> None:
    """Issue 25: CAIO_CLIENT_CERT and CAIO_CLIENT_KEY; no or a stranger's certificate is
    tls_client_cert_refused."""
    pki = make_pki(tmp_path / "pki")
    update_env.publish(NEWER)
    server = (pki.server.cert, pki.server.key)
    nginx = nginx_for(update_env, servers, "mtls", tls=server, client_ca=pki.ca)
    viewer = update_env.auth("viewer")
    for client_pair in (None, pki.stranger_client):
        extra = (
            {}
            if client_pair is None
            else {"client_cert": client_pair.cert, "client_key": client_pair.key}
        )
        refused = client(update_env, nginx.url, ca_bundle=pki.ca, **extra).get(
            "/api/v1/update/check", headers=viewer
        )
        assert refused.status_code == 502, refused.text
        assert refused.json()["error"]["code"] == "tls_client_cert_refused", refused.text
        assert "CAIO_CLIENT_CERT" in refused.json()["error"]["message"]
    mine = client(
        update_env,
        nginx.url,
        ca_bundle=pki.ca,
        client_cert=pki.client.cert,
        client_key=pki.client.key,
    )
    done = update_env.run_update(mine)
    assert (done["status"], done["to_version"]) == ("complete", NEWER), done
