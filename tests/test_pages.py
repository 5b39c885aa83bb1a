"""The pages' security headers and the shipped assets, through the app factory (no browser)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from caio.api import create_app
from caio.api.web import CONSOLE_DIR
from caio.core.settings import Settings


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings))


@pytest.mark.parametrize(
    "path", ["/", "/docs", "/api/v1/version", "/health", "/no/such/page", "/console/console.js"]
)
def test_every_answer_carries_the_strict_headers(client: TestClient, path: str) -> None:
    headers = client.get(path).headers
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self';" in csp
    assert "style-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


def test_redoc_alone_may_apply_inline_styles_never_inline_scripts(client: TestClient) -> None:
    csp = client.get("/redoc").headers["content-security-policy"]
    assert "style-src 'self' 'unsafe-inline'" in csp
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp


def test_the_pages_have_no_inline_script_or_style_and_name_no_other_origin() -> None:
    for page in CONSOLE_DIR.glob("*.html"):
        html = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), page.name
        assert "<style" not in html and " style=" not in html, page.name
        assert not re.search(r"(src|href)=\"(https?:)?//", html), page.name


def test_the_console_keeps_the_token_out_of_urls_cookies_and_local_storage() -> None:
    script = (CONSOLE_DIR / "console.js").read_text()
    assert "localStorage." not in script and "document.cookie" not in script
    assert "innerHTML" not in script  # what the API returns is shown as text
    assert "sessionStorage" in script and "Authorization" in script


def test_assets_are_served_with_their_types_and_nothing_else_is(client: TestClient) -> None:
    assert client.get("/").headers["content-type"].startswith("text/html")
    assert client.get("/console/console.js").headers["content-type"].startswith("text/javascript")
    docs = client.get("/docs/assets/swagger-ui-bundle.js")
    assert docs.status_code == 200 and len(docs.content) > 100_000
    for path in ("/console/index.html", "/console/..%2F..%2Fapp.py", "/docs/assets/../web.py"):
        assert client.get(path).status_code == 404, path
