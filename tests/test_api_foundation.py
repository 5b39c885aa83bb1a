"""The app factory, public endpoints, the error body, and the role dependency."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from caio.api.app import create_app
from caio.api.deps import AdminDep, ViewerDep
from caio.core.errors import ConfigError
from caio.core.settings import Settings
from caio.core.tokens import Role, TokenStore
from tests.helpers import write_manifest


def app_with_probe_routes(settings: Settings) -> FastAPI:
    """The real app plus two routes guarded by the role dependencies."""
    app = create_app(settings)
    probe = APIRouter(prefix="/probe")

    @probe.post("/admin")
    def admin_only(who: AdminDep) -> dict[str, str]:
        return {"name": who.name}

    @probe.get("/viewer")
    def viewer_or_admin(who: ViewerDep) -> dict[str, str]:
        return {"name": who.name}

    app.include_router(probe)
    return app


def test_version_answers_from_the_manifest_without_auth(settings: Settings) -> None:
    client = TestClient(create_app(settings))
    body = client.get("/api/v1/version").json()
    started = datetime.fromisoformat(body.pop("started_at"))
    assert abs((datetime.now(UTC) - started).total_seconds()) < 60  # this process's start
    assert body == {
        "version": "1.2.3",
        "build_date": "2026-01-02T03:04:05Z",
        "commit": "abc123",
        "channel": "stable",
        "withdrawn": False,
    }
    assert client.get("/health").json() == {"status": "ok", "version": "1.2.3", "withdrawn": False}


def test_invalid_manifest_fails_the_factory(settings: Settings, manifest_file: Path) -> None:
    write_manifest(manifest_file, version="banana")
    with pytest.raises(ConfigError, match="field 'version'"):
        create_app(settings)


def test_configured_manifest_must_exist(home: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        create_app(Settings(home=home, manifest=tmp_path / "nope.json"))


@pytest.mark.parametrize(
    ("who", "path", "method", "status"),
    [
        (None, "/probe/admin", "post", 401),
        ("wrong", "/probe/admin", "post", 401),
        ("viewer", "/probe/admin", "post", 403),
        ("admin", "/probe/admin", "post", 200),
        (None, "/probe/viewer", "get", 401),
        ("wrong", "/probe/viewer", "get", 401),
        ("viewer", "/probe/viewer", "get", 200),
        ("admin", "/probe/viewer", "get", 200),
    ],
)
def test_role_matrix(
    settings: Settings, who: str | None, path: str, method: str, status: int
) -> None:
    store = TokenStore(settings.tokens_path)
    tokens = {
        "admin": store.create("root", Role.ADMIN),
        "viewer": store.create("watcher", Role.VIEWER),
        "wrong": "caio_this-is-not-a-token",
    }
    client = TestClient(app_with_probe_routes(settings))
    headers = {"Authorization": f"Bearer {tokens[who]}"} if who else {}
    response = client.request(method, path, headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthorized"
    if status == 403:
        assert response.json()["error"]["code"] == "forbidden"


def test_non_bearer_scheme_is_unauthorized(settings: Settings) -> None:
    secret = TokenStore(settings.tokens_path).create("root", Role.ADMIN)
    client = TestClient(app_with_probe_routes(settings))
    response = client.post("/probe/admin", headers={"Authorization": f"Basic {secret}"})
    assert response.status_code == 401


def test_every_error_has_one_body_shape(settings: Settings) -> None:
    client = TestClient(create_app(settings))
    for response, status, code in [
        (client.get("/api/v1/nothing-here"), 404, "not_found"),
        (client.delete("/api/v1/version"), 405, "method_not_allowed"),
    ]:
        assert response.status_code == status
        assert response.json() == {
            "error": {"code": code, "message": response.json()["error"]["message"]}
        }


def test_validation_errors_use_the_error_body(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/probe/number/{n}")
    def number(n: int) -> int:
        return n

    response = TestClient(app).get("/probe/number/seven")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert "n" in response.json()["error"]["message"]


def test_unexpected_exception_is_500_with_the_error_body(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/probe/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    response = TestClient(app, raise_server_exceptions=False).get("/probe/boom")
    assert response.status_code == 500
    assert response.json()["error"] == {
        "code": "internal_error",
        "message": "internal error; see the service log",
    }


def test_one_log_line_per_request_without_the_token(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    secret = TokenStore(settings.tokens_path).create("root", Role.ADMIN)
    client = TestClient(app_with_probe_routes(settings))
    with caplog.at_level(logging.INFO, logger="caio.access"):
        client.post("/probe/admin", headers={"Authorization": f"Bearer {secret}"})
    lines = [r.getMessage() for r in caplog.records if r.name == "caio.access"]
    assert len(lines) == 1
    assert '"POST /probe/admin" 200' in lines[0]
    assert secret not in caplog.text


def test_openapi_documents_public_routes(settings: Settings) -> None:
    schema = TestClient(create_app(settings)).get("/openapi.json").json()
    assert {"/health", "/api/v1/version"} <= set(schema["paths"])
    assert "VersionOut" in schema["components"]["schemas"]


def test_openapi_lists_auth_errors_only_where_a_token_is_needed(settings: Settings) -> None:
    paths = TestClient(create_app(settings)).get("/openapi.json").json()["paths"]
    for public in ("/health", "/api/v1/version"):
        assert not {"401", "403"} & set(paths[public]["get"]["responses"])
    for path, method in (("/api/v1/update", "post"), ("/metrics", "get")):
        assert {"401", "403"} <= set(paths[path][method]["responses"])
