"""tuf_repo: the publisher side of CAIO's verified updates (python-tuf Metadata API)."""

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
