"""Translate what python-tuf and the OS raise into CAIO's stable error codes."""

from __future__ import annotations

import errno

from tuf.api import exceptions as tuf

from caio.core.errors import ErrorCode, UpdateError
from caio.core.redact import redact


class SlowRetrievalError(tuf.DownloadError):
    """The repository sends too slowly (slow-retrieval attack or a sick link): retryable."""


class TlsVerifyError(tuf.DownloadError):
    """The repository's TLS certificate was not accepted: not retried (it will not change)."""


class ProxyUnreachableError(tuf.DownloadError):
    """The HTTP proxy did not answer: network trouble, retried."""


class ProxyAuthError(tuf.DownloadError):
    """The HTTP proxy wants credentials (407): not retried."""


class TlsClientCertError(tuf.DownloadError):
    """The repository refused this host's client certificate, or wanted one: not retried."""


def is_retryable(exc: BaseException) -> bool:
    """Network trouble is retried; anything the repository signed or served wrong is not."""
    if isinstance(
        exc, (tuf.DownloadLengthMismatchError, TlsVerifyError, TlsClientCertError, ProxyAuthError)
    ):
        return False
    if isinstance(exc, tuf.DownloadHTTPError):
        return exc.status_code >= 500 or exc.status_code == 429
    return isinstance(exc, tuf.DownloadError)


# Failures whose code needs a hint at what to set.
_EXPLAINED: list[tuple[type[Exception], ErrorCode, str]] = [
    (
        ProxyUnreachableError,
        ErrorCode.PROXY_UNREACHABLE,
        "the HTTP proxy did not answer: check CAIO_PROXY or HTTPS_PROXY / HTTP_PROXY "
        "(and NO_PROXY for hosts to reach directly)",
    ),
    (
        ProxyAuthError,
        ErrorCode.PROXY_AUTH_REQUIRED,
        "the HTTP proxy wants credentials: put them in its URL "
        "(http://user:password@proxy:port in CAIO_PROXY or HTTPS_PROXY)",
    ),
    (
        TlsClientCertError,
        ErrorCode.TLS_CLIENT_CERT_REFUSED,
        "the repository wants a client certificate it accepts (mutual TLS): "
        "set CAIO_CLIENT_CERT and CAIO_CLIENT_KEY to this host's certificate and key",
    ),
    (
        TlsVerifyError,
        ErrorCode.TLS_VERIFY_FAILED,
        "the repository's certificate was not accepted: if a private CA signed it, set "
        "CAIO_CA_BUNDLE to that CA's certificate (PEM file or directory); otherwise check "
        "the host name in the URL and the certificate's dates",
    ),
]


def from_tuf(exc: Exception, what: str) -> UpdateError:
    """The ``UpdateError`` for a python-tuf exception raised while handling ``what``."""
    detail = redact(f"{what}: {type(exc).__name__}: {exc}")
    status = exc.status_code if isinstance(exc, tuf.DownloadHTTPError) else None
    if status in (401, 403):
        return UpdateError(
            ErrorCode.REPOSITORY_UNAUTHORIZED,
            f"{detail}; the repository wants credentials: set CAIO_UPDATE_TOKEN "
            "(or user:password in the update URL)",
        )
    for kind, code, hint in _EXPLAINED:
        if isinstance(exc, kind) or (status == 407 and kind is ProxyAuthError):
            return UpdateError(code, f"{detail}; {hint}")
    table: list[tuple[type[Exception], ErrorCode]] = [
        (tuf.ExpiredMetadataError, ErrorCode.METADATA_EXPIRED),
        (tuf.BadVersionNumberError, ErrorCode.METADATA_ROLLBACK),
        (tuf.UnsignedMetadataError, ErrorCode.SIGNATURE_THRESHOLD),
        (tuf.LengthOrHashMismatchError, ErrorCode.HASH_MISMATCH),
        (tuf.DownloadLengthMismatchError, ErrorCode.LENGTH_MISMATCH),
        (tuf.RepositoryError, ErrorCode.REPOSITORY_INVALID),
        (SlowRetrievalError, ErrorCode.SLOW_RETRIEVAL),
        (tuf.DownloadError, ErrorCode.REPOSITORY_UNREACHABLE),
    ]
    for kind, code in table:
        if isinstance(exc, kind):
            return UpdateError(code, detail)
    return UpdateError(ErrorCode.REPOSITORY_INVALID, detail)


def from_os_error(exc: OSError, what: str) -> UpdateError:
    """Full disks and permission problems get their own codes."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return UpdateError(ErrorCode.DISK_FULL, f"{what}: no space left ({exc.strerror})")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UpdateError(ErrorCode.PERMISSION_DENIED, f"{what}: {exc.strerror}: {exc.filename}")
    return UpdateError(ErrorCode.PACKAGE_INVALID, f"{what}: {exc}")
