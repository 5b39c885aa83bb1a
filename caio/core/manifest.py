"""manifest.json: what a CAIO tree is (name, version, build, where updates come from)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

from packaging.version import InvalidVersion, Version
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from caio.core.errors import ConfigError
from caio.core.files import atomic_write_json


def _pep440(value: str) -> str:
    try:
        Version(value)
    except InvalidVersion as e:
        raise ValueError(f"not a PEP 440 version: {value!r}") from e
    return value


def _update_url(value: str) -> str:
    if not value.startswith(("http://", "https://", "file://")):
        raise ValueError("must start with http://, https:// or file://")
    return value.rstrip("/")


# One definition of each value type, shared by the manifest, the settings and the API.
Pep440 = Annotated[str, AfterValidator(_pep440)]
UpdateUrl = Annotated[str, AfterValidator(_update_url)]
Channel = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")]


class Manifest(BaseModel):
    """The manifest at the project root and inside every release.

    ``build_date`` and ``commit`` are always set in a built release; a
    development checkout may leave them out and have them resolved at run time.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1)]
    version: Pep440
    build_date: datetime | None = None
    commit: str | None = None
    update_url: UpdateUrl
    channel: Channel = "stable"


def load_manifest(path: Path) -> Manifest:
    """Read and validate ``path``.

    Raises:
        ConfigError: the file is missing, not JSON, or a field is missing or
            invalid; the message names the file and the field.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(f"manifest not found: {path}") from e
    except OSError as e:
        raise ConfigError(f"manifest {path} cannot be read: {e.strerror}") from e
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError(f"manifest {path} is not valid JSON: {e}") from e
    try:
        return Manifest.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in err['loc']) or '(root)'}': {err['msg']}"
            for err in e.errors()
        )
        raise ConfigError(f"manifest {path} is invalid: {problems}") from e


def save_manifest(manifest: Manifest, path: Path) -> None:
    """Write ``manifest`` to ``path`` atomically."""
    atomic_write_json(path, manifest.model_dump(mode="json", exclude_none=True))
