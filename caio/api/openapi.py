"""The API contract: ``python -m caio.api.openapi > docs/openapi.json`` writes it.

``docs/openapi.json`` is committed, and ``tests/test_openapi_contract.py``
fails when the schema the app serves differs from it, so every change to the
API is a deliberate, reviewed change of that file. The release version is
left out: it changes with every release, the contract does not.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from caio.api.app import create_app
from caio.core.settings import Settings


def contract(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` without what changes from release to release (``info.version``)."""
    info = {k: v for k, v in schema.get("info", {}).items() if k != "version"}
    return {**schema, "info": info}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(contract(schema), indent=2, sort_keys=True) + "\n"


def main() -> int:
    with tempfile.TemporaryDirectory() as home:
        app = create_app(Settings(home=Path(home)))
        sys.stdout.write(render(app.openapi()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
