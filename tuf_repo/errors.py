"""Errors of the publisher side.

Hierarchy::

    TufRepoError                 exit code 1: nothing was changed
    ├── UsageError               exit code 2: an option's value cannot work
    ├── KeyFileError             missing, unreadable, encrypted or wrong key
    ├── MetadataError            corrupt or unverifiable published/staged metadata
    ├── ReleaseError             an artifact is not a valid CAIO release
    ├── ClockError               this machine's clock contradicts the published metadata
    └── RepositoryBusy           another tuf-repo command holds the repository's lock
    SignaturesNeeded             exit code 3: work is staged, more signatures needed
"""

from __future__ import annotations


class TufRepoError(Exception):
    """A publishing operation failed; the repository is unchanged."""

    exit_code = 1


class UsageError(TufRepoError):
    """An option's value cannot work (e.g. a threshold above the number of keys)."""

    exit_code = 2


class KeyFileError(TufRepoError):
    """A key file is missing, unreadable, encrypted without passphrase, or the wrong key."""


class MetadataError(TufRepoError):
    """Published or staged metadata is corrupt or does not verify."""


class ReleaseError(TufRepoError):
    """An artifact is not a valid CAIO release."""


class ClockError(TufRepoError):
    """Publishing would put out an expiry that this machine's clock makes look wrong."""


class RepositoryBusy(TufRepoError):
    """Another tuf-repo command is changing the repository; nothing was done."""


class SignaturesNeeded(Exception):
    """The new metadata is staged: key holders must add signatures with ``tuf-repo sign``."""

    exit_code = 3

    def __init__(self, message: str, roles: list[str]) -> None:
        super().__init__(message)
        self.roles = roles
