"""The API contract is pinned: the served OpenAPI schema must equal docs/openapi.json."""

from __future__ import annotations

import difflib
from pathlib import Path

from fastapi.testclient import TestClient

from caio.api import create_app
from caio.api.openapi import render
from caio.core.settings import Settings

PINNED = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


def test_the_served_schema_is_the_committed_contract(settings: Settings) -> None:
    served = render(TestClient(create_app(settings)).get("/openapi.json").json())
    pinned = PINNED.read_text()
    if served != pinned:
        diff = "".join(
            difflib.unified_diff(
                pinned.splitlines(keepends=True),
                served.splitlines(keepends=True),
                "docs/openapi.json",
                "served",
                n=2,
            )
        )
        raise AssertionError(
            "the API changed; if that is intended, review and commit it with\n"
            "  .venv/bin/python -m caio.api.openapi > docs/openapi.json\n" + diff[:4000]
        )
