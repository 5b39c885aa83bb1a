"""Dependencies point downwards only (DESIGN.md, "Layers"): checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> modules it must never import (prefixes)
FORBIDDEN = {
    "caio/core": ("fastapi", "starlette", "caio.api", "caio.update", "caio.restart", "caio.main"),
    "caio/update": ("fastapi", "starlette", "caio.api", "caio.restart", "caio.main"),
    "caio/restart": ("fastapi", "starlette", "caio.api", "caio.update", "caio.main"),
}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_never_import_higher_ones(package: str) -> None:
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in imports(path)
        if name.startswith(FORBIDDEN[package])
    ]
    assert bad == []


def test_the_publisher_shares_only_the_release_contract_and_file_writes() -> None:
    allowed = {
        "caio.core.release_format",
        "caio.core.rollout",
        "caio.core.files",
        "caio.core.delta",
    }
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "tuf_repo").rglob("*.py"))
        for name in imports(path)
        if name.split(".")[0] == "caio" and name not in allowed
    ]
    assert bad == []


FRONT_DOORS = ("caio.update", "caio.restart", "caio.api")


def test_code_outside_a_package_uses_its_front_door_only() -> None:
    """The one rule for module privacy: a package's modules are its own business."""
    bad = []
    for path in sorted((ROOT / "caio").rglob("*.py")):
        inside = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for name in imports(path):
            for door in FRONT_DOORS:
                if name.startswith(door + ".") and not inside.startswith(door):
                    bad.append(f"{path.relative_to(ROOT)} imports {name}, not {door}")
    assert bad == []


@pytest.mark.parametrize("door", ["caio.update", "caio.restart"])
def test_every_name_a_front_door_lists_resolves(door: str) -> None:
    import importlib

    package = importlib.import_module(door)
    assert sorted(package.__all__) == sorted(package._HOMES)
    for name in package.__all__:
        assert getattr(package, name) is not None
    with pytest.raises(AttributeError):
        package.no_such_name  # noqa: B018 (the attribute access is the test)


def test_the_tuf_client_does_not_import_the_service_the_installer_or_fastapi() -> None:
    import subprocess
    import sys

    probe = "import sys, caio.tuf_client; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    heavy = (
        "fastapi",
        "pydantic_settings",
        "uvicorn",
        "caio.update.service",
        "caio.update.install",
    )
    assert [m for m in loaded if m.startswith(heavy)] == []


def test_the_api_models_need_nothing_of_the_server() -> None:
    """caio/schemas.py is what clients import: pydantic and the manifest's types, no more."""
    allowed = ("__future__", "datetime", "typing", "pydantic", "caio.core.manifest")
    found = imports(ROOT / "caio" / "schemas.py")
    assert found and [name for name in found if not name.startswith(allowed)] == []
