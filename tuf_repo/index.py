"""The signed release index ``caio/index.json``: every published release, one entry each.

CAIO reads it with ``get_targetinfo`` + a verified download, picks a release,
then verifies the artifact against that release's own signed ``TargetFile``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from packaging.version import Version

INDEX_PATH = "caio/index.json"
INDEX_FORMAT = 1


@dataclass(frozen=True)
class IndexEntry:
    version: str
    target: str
    channels: list[str]
    build_date: str
    commit: str


def parse_index(data: bytes) -> list[IndexEntry]:
    """Entries of an index file (already verified by TUF).

    Raises:
        ValueError: not an index of a known format.
    """
    doc: dict[str, Any] = json.loads(data)
    if doc.get("format") != INDEX_FORMAT:
        raise ValueError(f"unknown index format {doc.get('format')!r}")
    return [IndexEntry(**entry) for entry in doc["releases"]]


def render_index(entries: list[IndexEntry]) -> bytes:
    """Deterministic bytes, releases sorted by version."""
    ordered = sorted(entries, key=lambda e: Version(e.version))
    doc = {"format": INDEX_FORMAT, "releases": [asdict(e) for e in ordered]}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
