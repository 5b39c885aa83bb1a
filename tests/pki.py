"""A throw-away certificate authority for the TLS tests (the `cryptography` package)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA's certificate: what CAIO_CA_BUNDLE names
    server: Pair  # for 127.0.0.1, valid now
    rotated: Pair  # another for 127.0.0.1, valid now: the server's next certificate
    wrong_host: Pair  # valid now, for another name only
    expired: Pair  # for 127.0.0.1, expired yesterday
    stranger_ca: Path  # another CA, which signed none of them
    client: Pair  # a host's client certificate, signed by the CA
    stranger_client: Pair  # a client certificate signed by the other CA


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Pair:
    pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pair.key.chmod(0o600)
    return pair


def _ca(common: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    names: list[x509.GeneralName],
    not_before: datetime,
    not_after: datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("caio test server"))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca[1], hashes.SHA256())
    )
    return cert, key


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca("caio test CA")
    stranger = _ca("someone else's CA")
    now = datetime.now(UTC)
    loopback: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    elsewhere: list[x509.GeneralName] = [x509.DNSName("repository.example.invalid")]
    server = _leaf(ca, loopback, now - timedelta(days=1), now + timedelta(days=30))
    rotated = _leaf(ca, loopback, now - timedelta(hours=1), now + timedelta(days=60))
    wrong = _leaf(ca, elsewhere, now - timedelta(days=1), now + timedelta(days=30))
    expired = _leaf(ca, loopback, now - timedelta(days=30), now - timedelta(days=1))
    host: list[x509.GeneralName] = [x509.DNSName("caio-host.example.invalid")]
    client = _leaf(ca, host, now - timedelta(days=1), now + timedelta(days=30))
    stranger_client = _leaf(stranger, host, now - timedelta(days=1), now + timedelta(days=30))
    ca_path = directory / "ca.crt"
    ca_path.write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))
    stranger_path = directory / "stranger-ca.crt"
    stranger_path.write_bytes(stranger[0].public_bytes(serialization.Encoding.PEM))
    return Pki(
        ca=ca_path,
        server=_write(directory, "server", *server),
        rotated=_write(directory, "rotated", *rotated),
        wrong_host=_write(directory, "wrong-host", *wrong),
        expired=_write(directory, "expired", *expired),
        stranger_ca=stranger_path,
        client=_write(directory, "client", *client),
        stranger_client=_write(directory, "stranger-client", *stranger_client),
    )
