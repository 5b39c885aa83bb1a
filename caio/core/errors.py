"""Errors of CAIO, each with a stable machine-readable code.

Hierarchy::

    CaioError                     code: str, message: str
    ├── ConfigError               bad settings, manifest or tokens file (startup)
    ├── ListenError               the address to serve on cannot be had (startup)
    ├── NotFoundError             what a command names does not exist (a token, a file)
    ├── TrustError                a trust anchor cannot be installed
    ├── AuthError                 missing/unknown token (401) or missing role (403)
    ├── ConflictError             the request conflicts with the current state (409)
    │   └── RestartError          a restart cannot be done now (409 restart_failed)
    └── UpdateError               an update job failed; code from ErrorCode

Codes are a contract with hosts: extend the list, never rename an entry.
"""

from __future__ import annotations

import errno
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Stable error codes of update jobs (see DESIGN.md)."""

    REPOSITORY_UNREACHABLE = "repository_unreachable"
    METADATA_EXPIRED = "metadata_expired"
    METADATA_ROLLBACK = "metadata_rollback"
    SIGNATURE_THRESHOLD = "signature_threshold"
    TARGET_NOT_FOUND = "target_not_found"
    HASH_MISMATCH = "hash_mismatch"
    LENGTH_MISMATCH = "length_mismatch"
    DOWNGRADE_REFUSED = "downgrade_refused"
    PACKAGE_INVALID = "package_invalid"
    PREFLIGHT_FAILED = "preflight_failed"
    DISK_FULL = "disk_full"
    PERMISSION_DENIED = "permission_denied"
    RESTART_FAILED = "restart_failed"
    HEALTH_CHECK_FAILED = "health_check_failed"
    TRUST_NOT_CONFIGURED = "trust_not_configured"
    REPOSITORY_INVALID = "repository_invalid"
    INTERRUPTED = "interrupted"
    INTERNAL_ERROR = "internal_error"
    SLOW_RETRIEVAL = "slow_retrieval"
    CANCELLED = "cancelled"
    RELEASE_WITHDRAWN = "release_withdrawn"
    REPOSITORY_UNAUTHORIZED = "repository_unauthorized"
    INDEX_MISMATCH = "index_mismatch"
    REPOSITORIES_DISAGREE = "repositories_disagree"
    APPROVAL_MISSING = "approval_missing"
    TLS_VERIFY_FAILED = "tls_verify_failed"
    TLS_CLIENT_CERT_REFUSED = "tls_client_cert_refused"
    PROXY_UNREACHABLE = "proxy_unreachable"
    PROXY_AUTH_REQUIRED = "proxy_auth_required"


class CaioError(Exception):
    """Root of CAIO's own errors: a stable ``code`` and a human ``message``."""

    code: str = "caio_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ConfigError(CaioError):
    """Settings, manifest or tokens file is missing or invalid."""

    code = "config_invalid"


class ListenError(CaioError):
    """The address to serve on cannot be had: ``address_in_use`` or ``listen_failed``.

    Not a configuration error: the settings may be right and another program
    holds the port.
    """

    code = "listen_failed"

    @classmethod
    def from_os_error(cls, host: str, port: int, error: OSError) -> ListenError:
        if error.errno == errno.EADDRINUSE:
            return cls(
                f"cannot listen on {host}:{port}: another program holds that address; "
                "stop it, or choose another port (CAIO_PORT or --port)",
                code="address_in_use",
            )
        return cls(f"cannot listen on {host}:{port}: {error.strerror or error}")


class NotFoundError(CaioError):
    """What a command names does not exist: a token (``token_not_found``), a file."""

    code = "not_found"


class TrustError(CaioError):
    """A file offered as trust anchor is not a root that can be installed."""

    code = "trust_root_invalid"


class AuthError(CaioError):
    """A request lacks valid credentials (401) or the needed role (403)."""

    def __init__(self, message: str, *, status_code: int, code: str) -> None:
        super().__init__(message, code=code)
        self.status_code = status_code


class ConflictError(CaioError):
    """The request cannot run now: a job is running, or there is nothing to roll back to."""

    code = "conflict"


class RestartError(ConflictError):
    """The restart strategy cannot restart now (no supervisor, no server, host gone)."""

    code = ErrorCode.RESTART_FAILED.value


class UpdateError(CaioError):
    """An update job failed; ``code`` is an :class:`ErrorCode` value.

    ``details`` carries structured facts for the answer (e.g. the trusted
    metadata's versions and expiry when it has expired).
    """

    def __init__(
        self, code: ErrorCode, message: str, *, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, code=code.value)
        self.error_code = code
        self.details = details
