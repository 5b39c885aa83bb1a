"""When each published role expires, without parsing every hash bin at every publication.

Before publishing, ``tuf-repo`` refuses to build on an expired offline role
(clients would refuse the result). With hash bins that meant loading and
parsing every bin on each ``add``: with 100,000 targets in 256 bins, three
quarters of an add. The expiry of each role is kept in ``expiry-index.json``
beside the metadata (never served: not under ``metadata/``), with the version,
size and modification time of the file it was read from; an entry whose file
changed in any of those is read from the file again.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from caio.core.files import atomic_write_json
from caio.core.rollout import iso, parse_time
from tuf_repo.store import RepoStore

INDEX_NAME = "expiry-index.json"


class ExpiryIndex:
    """The published version and expiry of each role, checked against its file."""

    def __init__(self, store: RepoStore) -> None:
        self.store = store
        self.path = store.root / INDEX_NAME
        self._entries = self._load()
        self._changed = False

    def _load(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return {}  # missing or damaged: every role is read from its file, once
        return doc if isinstance(doc, dict) else {}

    def expires(self, role: str) -> tuple[int, datetime]:
        """The published version of ``role`` and when it expires.

        Raises:
            MetadataError: the role is not published, or its file is corrupt.
        """
        version = self.store.published_version(role)
        path = self.store.metadata_path(role, version)
        try:
            info = path.stat()
            stamp = [version, info.st_size, info.st_mtime_ns]
        except OSError:
            stamp = None  # let load() say what is wrong
        known = self._entries.get(role)
        if stamp is not None and isinstance(known, dict) and known.get("file") == stamp:
            try:
                return version, parse_time(str(known["expires"]))
            except (KeyError, ValueError):
                pass
        md = self.store.load(role, version)
        if stamp is not None:
            self._entries[role] = {"file": stamp, "expires": iso(md.signed.expires)}
            self._changed = True
        return md.signed.version, md.signed.expires

    def save(self) -> None:
        """Keep what was learnt (a cache: atomic, not fsynced; a failure is not an error)."""
        if not self._changed:
            return
        try:
            atomic_write_json(self.path, self._entries, durable=False)
        except OSError:
            return
        self._changed = False
