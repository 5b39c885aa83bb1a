"""CAIO's own API over HTTPS (``CAIO_TLS_CERT``/``KEY``/``CLIENT_CA``), with real processes.

A test CA (tests/pki.py) issues the API's certificate; the clients,
``caio remote``, the supervisor's zero-downtime restart, certificate rotation
and the console in Chromium all run over TLS.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from caio.client import AsyncCaioClient, AuthError, CaioClient, UnreachableError
from tests.background import looping
from tests.browser import Browser
from tests.helpers import free_port
from tests.pki import Pair, Pki, make_pki
from tests.served import Served, run
from tests.supervisor_fixtures import (
    Supervised,
    start_supervised,
    stop_supervised,
    version_load,
)
from tests.update_fixtures import NEWER, RUNNING, UpdateEnv

pytestmark = pytest.mark.slow  # real processes


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def tls_env(pair: Pair, client_ca: Path | None = None) -> dict[str, str]:
    env = {"CAIO_TLS_CERT": str(pair.cert), "CAIO_TLS_KEY": str(pair.key)}
    if client_ca is not None:
        env["CAIO_TLS_CLIENT_CA"] = str(client_ca)
    return env


def trusting(pki: Pki, client: Pair | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


def remote(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caio", "remote", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def tls_supervised(
    update_env: UpdateEnv, pki: Pki, tmp_path: Path
) -> Iterator[tuple[Supervised, Pair]]:
    """``caio run`` over HTTPS, and the certificate files it reads (to renew them)."""
    live = Pair(tmp_path / "live.crt", tmp_path / "live.key")
    _install(pki.server, live)
    supervised = start_supervised(update_env, tls_env(live), verify=trusting(pki))
    yield supervised, live
    stop_supervised(supervised)


def served_serial(url: str, pki: Pki) -> int:
    """The serial number of the certificate the server at ``url`` presents now."""
    host, port = url.removeprefix("https://").rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        trusting(pki).wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def serial(pair: Pair) -> int:
    return x509.load_pem_x509_certificate(pair.cert.read_bytes()).serial_number


def test_the_api_serves_https_and_the_clients_trust_its_private_ca(
    update_env: UpdateEnv, started: list[Served], pki: Pki
) -> None:
    caio = run(update_env, started, verify=trusting(pki), **tls_env(pki.server))
    assert caio.url.startswith("https://")
    assert any(f"listening on {caio.url}" in line for line in caio.log)

    with CaioClient(caio.url, update_env.viewer, ca_bundle=pki.ca) as client:
        assert client.version().version == RUNNING
        assert client.status().status == "idle"

    async def asynchronously() -> str:
        async with AsyncCaioClient(caio.url, update_env.viewer, ca_bundle=pki.ca) as client:
            return (await client.version()).version

    assert asyncio.run(asynchronously()) == RUNNING

    with CaioClient(caio.url, retries=1) as stranger, pytest.raises(UnreachableError) as refused:
        stranger.version()  # the system's CAs do not know ours
    assert refused.value.code == "tls_verify_failed"
    assert "ca_bundle" in refused.value.message

    plain = caio.url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{plain}/api/v1/version", timeout=5)  # no answer in clear text
    assert caio.api("GET", "/health", role=None).status_code == 200  # still serving

    answered = remote("version", "--url", caio.url, "--ca-bundle", str(pki.ca))
    assert answered.returncode == 0, answered.stderr
    assert f'"version": "{RUNNING}"' in answered.stdout
    untrusted = remote("version", "--url", caio.url)
    assert untrusted.returncode == 3
    assert "[tls_verify_failed]" in untrusted.stderr and "--ca-bundle" in untrusted.stderr


def test_mutual_tls_admits_only_callers_with_a_certificate_from_its_ca(
    update_env: UpdateEnv, started: list[Served], pki: Pki
) -> None:
    caio = run(
        update_env,
        started,
        verify=trusting(pki, pki.client),
        **tls_env(pki.server, client_ca=pki.ca),
    )
    with (
        CaioClient(caio.url, update_env.viewer, ca_bundle=pki.ca, retries=1) as anonymous,
        pytest.raises(AuthError) as refused,
    ):
        anonymous.version()  # even the public version: no certificate, no API
    assert refused.value.status_code == 403
    assert refused.value.code == "client_cert_required"
    assert "CAIO_TLS_CLIENT_CA" in refused.value.message
    stranger_cert = (pki.stranger_client.cert, pki.stranger_client.key)
    with (
        CaioClient(caio.url, ca_bundle=pki.ca, client_cert=stranger_cert, retries=1) as stranger,
        pytest.raises(UnreachableError),
    ):
        stranger.version()

    own_cert = (pki.client.cert, pki.client.key)
    with CaioClient(caio.url, update_env.viewer, ca_bundle=pki.ca, client_cert=own_cert) as client:
        assert client.status().status == "idle"
    # A certificate lets a caller speak; the token still decides what it may do.
    assert caio.api("GET", "/api/v1/update", role=None).status_code == 401

    tls_args = ["--ca-bundle", str(pki.ca), "--client-cert", str(pki.client.cert)]
    checked = remote(
        "status", "--url", caio.url, *tls_args, "--client-key", str(pki.client.key),
        "--token-file", str(_token_file(update_env)),
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == "idle: no update has run\n"
    without = remote("version", "--url", caio.url, "--ca-bundle", str(pki.ca))
    assert without.returncode == 3
    assert "[client_cert_required]" in without.stderr and "--client-cert" in without.stderr
    refused_cert = remote(
        "version", "--url", caio.url, "--ca-bundle", str(pki.ca),
        "--client-cert", str(pki.stranger_client.cert),
        "--client-key", str(pki.stranger_client.key),
    )  # fmt: skip
    assert refused_cert.returncode == 3
    # The handshake refuses it; asyncio closes without flushing the TLS alert, so the
    # caller sees a disconnection rather than the alert's reason.
    assert any(
        f"[{code}]" in refused_cert.stderr for code in ("unreachable", "tls_client_cert_refused")
    )


def _token_file(env: UpdateEnv) -> Path:
    path = env.settings.home.parent / "viewer.token"
    path.write_text(env.viewer + "\n")
    return path


def test_a_stalled_tls_handshake_is_closed_and_others_are_served(
    update_env: UpdateEnv, started: list[Served], pki: Pki
) -> None:
    caio = run(
        update_env,
        started,
        verify=trusting(pki),
        CAIO_HEADER_TIMEOUT_SECONDS="1",
        **tls_env(pki.server),
    )
    host, port = caio.url.removeprefix("https://").rsplit(":", 1)
    stalled = [socket.create_connection((host, int(port)), timeout=30) for _ in range(20)]
    try:
        assert caio.api("GET", "/api/v1/version", role=None).status_code == 200
        for sock in stalled:  # never a ClientHello: closed by the handshake deadline
            assert sock.recv(1) == b""
    finally:
        for sock in stalled:
            sock.close()
    assert caio.proc.poll() is None


def test_zero_downtime_restart_over_https_picks_up_a_rotated_certificate(
    tls_supervised: tuple[Supervised, Pair], pki: Pki
) -> None:
    supervised, live = tls_supervised
    assert served_serial(supervised.url, pki) == serial(pki.server)
    supervised.env.publish(NEWER)
    assert supervised.update()["status"] == "complete"

    results: list[tuple[int | str, str]] = []
    with looping(version_load(supervised, results), threads=8, name="tls-restart-load"):
        time.sleep(1.0)
        _install(pki.rotated, live)  # the operator renews the certificate, then restarts
        answer = supervised.api("POST", "/api/v1/restart", json={"graceful": True})
        assert answer.status_code == 202
        supervised.wait_for(lambda: supervised.state()["active"]["version"] == NEWER)
        time.sleep(1.0)

    codes = Counter(code for code, _ in results)
    assert set(codes) == {200}, codes  # every request over TLS answered
    assert [v for _, v in results][-1] == NEWER and len(results) > 50
    assert served_serial(supervised.url, pki) == serial(pki.rotated)


def test_a_renewed_certificate_that_does_not_load_keeps_the_old_process_serving(
    tls_supervised: tuple[Supervised, Pair], pki: Pki
) -> None:
    supervised, live = tls_supervised
    shutil.copy(pki.rotated.cert, live.cert)  # renewed certificate, old key: no match
    assert supervised.api("POST", "/api/v1/restart", json={}).status_code == 202
    supervised.wait_for(lambda: supervised.audit()[-1]["outcome"] != "requested")
    last = supervised.audit()[-1]
    assert last["outcome"] == "failed" and last["to"] == RUNNING
    status = supervised.api("GET", "/api/v1/update").json()
    assert status["error"]["code"] == "restart_failed"
    assert supervised.version() == RUNNING  # the old process kept serving, unjudged
    assert served_serial(supervised.url, pki) == serial(pki.server)
    bad = supervised.env.settings.home / "state" / "bad_versions.json"
    assert not bad.exists() or RUNNING not in bad.read_text()
    assert any("does not belong to the certificate" in line for line in supervised.log)


def _install(source: Pair, live: Pair) -> None:
    """Put a certificate and key in place the way a renewal does: each file replaced whole."""
    for src, dst in ((source.cert, live.cert), (source.key, live.key)):
        staged = dst.with_suffix(".new")
        shutil.copy(src, staged)
        staged.chmod(0o600)
        os.replace(staged, dst)


def test_caio_run_with_a_key_that_does_not_match_exits_2_before_taking_the_port(
    update_env: UpdateEnv, pki: Pki
) -> None:
    port = free_port()
    env = update_env.process_env(
        port, CAIO_TLS_CERT=str(pki.server.cert), CAIO_TLS_KEY=str(pki.rotated.key)
    )
    done = subprocess.run(
        [sys.executable, "-m", "caio", "run"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "[config_invalid]" in done.stderr and "does not belong" in done.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # free: nothing was bound


@pytest.mark.browser
def test_the_console_loads_over_https_in_chromium(
    update_env: UpdateEnv, started: list[Served], pki: Pki
) -> None:
    caio = run(update_env, started, verify=trusting(pki), **tls_env(pki.server))
    certificate = x509.load_pem_x509_certificate(pki.server.cert.read_bytes())
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    browser = Browser(trusted_keys=(base64.b64encode(hashlib.sha256(spki).digest()).decode(),))
    try:
        browser.open(caio.url + "/")
        browser.wait(lambda: browser.text("version") == RUNNING, message="no version shown")
        browser.use_token(update_env.viewer)
        browser.wait(lambda: browser.text("job-status") == "idle", message="no job status")
        requests = browser.requests()
        assert f"{caio.url}/api/v1/version" in requests
        assert all(url.startswith(caio.url) for url in requests if "://" in url), requests
        assert browser.violations() == []
    finally:
        browser.close()
