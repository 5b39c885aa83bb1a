"""tuf_repo: the publisher side of CAIO's verified updates (python-tuf Metadata API).

Names are resolved on first use (PEP 562), so `tuf-repo --help` does not
import the signing stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuf_repo.errors import (
        KeyFileError,
        MetadataError,
        ReleaseError,
        SignaturesNeeded,
        TufRepoError,
    )
    from tuf_repo.keys import Keyring, generate_key, read_key_file
    from tuf_repo.publisher import Publisher
    from tuf_repo.release import build_release, inspect_release, target_path
    from tuf_repo.server import RepoServer
    from tuf_repo.store import RepoStore
    from tuf_repo.verify import verify_repository

_HOMES = {
    "KeyFileError": "errors",
    "Keyring": "keys",
    "MetadataError": "errors",
    "Publisher": "publisher",
    "ReleaseError": "errors",
    "RepoServer": "server",
    "RepoStore": "store",
    "SignaturesNeeded": "errors",
    "TufRepoError": "errors",
    "build_release": "release",
    "generate_key": "keys",
    "inspect_release": "release",
    "read_key_file": "keys",
    "target_path": "release",
    "verify_repository": "verify",
}
__all__ = [
    "KeyFileError",
    "Keyring",
    "MetadataError",
    "Publisher",
    "ReleaseError",
    "RepoServer",
    "RepoStore",
    "SignaturesNeeded",
    "TufRepoError",
    "build_release",
    "generate_key",
    "inspect_release",
    "read_key_file",
    "target_path",
    "verify_repository",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'tuf_repo' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tuf_repo.{home}"), name)
