"""TLS contexts, one place for both ends: CAIO as a client and CAIO's API as a server.

:func:`client_context` is what the repository transport, ``CaioClient`` and
``caio remote`` use to trust a private CA and present a client certificate.
:func:`server_context` is what ``caio serve`` / ``caio run`` serve the API
with (``CAIO_TLS_CERT``, ``CAIO_TLS_KEY``, ``CAIO_TLS_CLIENT_CA``); each
serving process reads the files when it starts, so a restart picks up a
rotated certificate. Standard library only: the clients import this too.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from caio.core.errors import ConfigError

if TYPE_CHECKING:
    from caio.core.settings import Settings


def _load_cas(context: ssl.SSLContext, bundle: Path) -> None:
    """Trust the CA certificates in ``bundle``: a PEM file, or every ``*.pem`` / ``*.crt``
    file of a directory (no OpenSSL hash links needed)."""
    files = (
        sorted(p for p in bundle.iterdir() if p.suffix in (".pem", ".crt"))
        if bundle.is_dir()
        else [bundle]
    )
    for path in files:
        context.load_verify_locations(cafile=str(path))


def client_context(
    ca_bundle: Path | None, client_cert: tuple[Path, Path] | None
) -> ssl.SSLContext | None:
    """The TLS client context; None: the library's default (the system's CAs, no certificate).

    ``ca_bundle``: trust these CA certificates only. ``client_cert``:
    (certificate, key) to present (mutual TLS). Host names and dates are
    checked as always.
    """
    if ca_bundle is None and client_cert is None:
        return None
    if ca_bundle is None:
        context = ssl.create_default_context()
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
        _load_cas(context, ca_bundle)
    if client_cert is not None:
        context.load_cert_chain(certfile=str(client_cert[0]), keyfile=str(client_cert[1]))
    return context


def server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """The API's TLS server context: TLS 1.2 or later, and with ``client_ca`` a certificate
    the caller presents must chain to it (mutual TLS; the API refuses callers without one).

    Raises:
        ConfigError: a file cannot be read, is not PEM, or the key does not match.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(
            f"cannot serve TLS with CAIO_TLS_CERT {cert} and CAIO_TLS_KEY {key}: {_why(e)}"
        ) from e
    if client_ca is not None:
        try:
            _load_cas(context, client_ca)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"cannot read CAIO_TLS_CLIENT_CA {client_ca}: {_why(e)}") from e
        if not context.get_ca_certs():
            raise ConfigError(f"CAIO_TLS_CLIENT_CA {client_ca} holds no CA certificate")
        # A presented certificate must chain to the CA or the handshake fails; a caller
        # that presents none gets through the handshake to a clear 403 from the API
        # (client_cert_required), as nginx answers, instead of a bare TLS alert that
        # clients report as "server disconnected".
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def _why(error: OSError | ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLError) and "KEY_VALUES_MISMATCH" in str(error):
        return "the key does not belong to the certificate"
    if isinstance(error, ssl.SSLError):
        return f"not PEM, or damaged ({error.reason or error})"
    return error.strerror or str(error)


def api_context(settings: Settings) -> ssl.SSLContext | None:
    """The context the API serves with, read from the files now; None: plain HTTP.

    Raises:
        ConfigError: as :func:`server_context`.
    """
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    return server_context(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
