"""Plain helpers shared by tests (no fixtures)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from caio.core.rollout import host_position


def write_manifest(path: Path, **fields: object) -> Path:
    data: dict[str, object] = {
        "name": "caio",
        "version": "1.2.3",
        "build_date": "2026-01-02T03:04:05Z",
        "commit": "abc123",
        "update_url": "http://127.0.0.1:9",
        "channel": "stable",
    }
    data.update(fields)
    path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def host_at(version: str, low: float, high: float) -> str:
    """A host id whose position in ``version``'s rollout lies in [low, high)."""
    return next(f"h{n}" for n in range(10_000) if low <= host_position(f"h{n}", version) < high)


def map_doc(
    mirrors: dict[str, str] | list[str], threshold: int = 2, **entry: Any
) -> dict[str, Any]:
    """A TAP 4 repository map: one mapping of every path to all ``mirrors``' repositories.

    ``mirrors``: name -> base URL, or just names (``https://NAME.example/``); ``entry``
    overrides fields of the mapping (``terminating``, ``paths``).
    """
    urls = mirrors if isinstance(mirrors, dict) else {n: f"https://{n}.example/" for n in mirrors}
    mapping = {"paths": ["*"], "repositories": list(urls), "threshold": threshold}
    return {
        "repositories": {name: [url] for name, url in urls.items()},
        "mapping": [{**mapping, "terminating": True, **entry}],
    }


def write_map(path: Path, doc: dict[str, Any]) -> Path:
    """``doc`` as a map file with the mode CAIO accepts (0644)."""
    path.write_text(json.dumps(doc))
    path.chmod(0o644)
    return path
