"""Key files, signers, and where keys live.

``tuf-repo init --keys DIR`` writes ``DIR/online/`` (timestamp and snapshot:
the only keys the publishing host keeps) and ``DIR/offline/`` (root, targets,
and the hash-bin release key). A key directory is read recursively, except
``retired/`` subdirectories, which hold only public halves of rotated keys.

One JSON file per key (mode 0600)::

    {"role": "targets", "keyid": "...", "public": {<TUF key>},
     "private_pem": "-----BEGIN (ENCRYPTED) PRIVATE KEY-----..."}

or, for keys held in a KMS/HSM/Sigstore, ``"uri": "<securesystemslib signer URI>"``
instead of ``private_pem``: every signature then goes through
``securesystemslib.signer.Signer.from_priv_key_uri`` and the repository code
does not change. A key in a PKCS#11 token (``tuf-repo key create --hsm``) has
``"uri": "hsm:<id>?label=<token>"`` and ``"pin_env": "<VARIABLE>"``, the
environment variable that holds the token's user PIN; the PKCS#11 module is
named by ``PYKCS11LIB``. The private key never leaves the token.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from securesystemslib.signer import CryptoSigner, Key, SecretsHandler, Signature, Signer, SSlibKey

from caio.core.files import atomic_write_bytes
from tuf_repo.errors import KeyFileError

PASSPHRASE_ENV = "TUF_REPO_PASSPHRASE"  # noqa: S105 (a variable name)
ONLINE_DIR, OFFLINE_DIR, RETIRED_DIR = "online", "offline", "retired"


def key_home(keydir: Path, online: bool) -> Path:
    """Where a new key goes: ``online/`` or ``offline/`` in a ceremony layout, else ``keydir``."""
    if (keydir / ONLINE_DIR).is_dir() or (keydir / OFFLINE_DIR).is_dir():
        return keydir / (ONLINE_DIR if online else OFFLINE_DIR)
    return keydir


def key_files(keydir: Path) -> list[Path]:
    """Every key file under ``keydir``, ``retired/`` directories excluded."""
    return sorted(
        p for p in keydir.rglob("*.json") if RETIRED_DIR not in p.relative_to(keydir).parts[:-1]
    )


def retire_key_file(path: Path, keydir: Path, *, keep_private: bool) -> Path:
    """Move a rotated key out of use into ``keydir/retired/``.

    By default only the public half is kept: a retired root key that still
    exists can sign a forged next root for a client that trusts an old root.
    """
    retired = keydir / RETIRED_DIR
    retired.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest = retired / path.name
    if keep_private:
        path.replace(dest)
        return dest
    data = json.loads(path.read_bytes())
    public = {k: data[k] for k in ("role", "keyid", "public")}
    public["retired"] = "private key destroyed by tuf-repo rotate"
    atomic_write_bytes(dest, (json.dumps(public, indent=2) + "\n").encode(), mode=0o600)
    _destroy(path)
    return dest


def _destroy(path: Path) -> None:
    """Overwrite, then delete, a private key file (best effort on journaling filesystems)."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.write(os.urandom(size))
        f.flush()
        os.fsync(f.fileno())
    path.unlink()


@dataclass(frozen=True)
class KeyFile:
    """A key on disk: its public half, and how to get a signer for it."""

    path: Path
    role: str
    public: SSlibKey
    private_pem: bytes | None
    uri: str | None
    pin_env: str | None = None

    @property
    def keyid(self) -> str:
        return self.public.keyid

    def signer(self, passphrase: str | None = None) -> Signer:
        """A signer for this key.

        Raises:
            KeyFileError: the key is encrypted and the passphrase is missing or wrong.
        """
        if self.uri is not None:
            try:
                signer = Signer.from_priv_key_uri(self.uri, self.public, self._pin)
            except KeyFileError:
                raise
            except Exception as e:  # signer back-ends raise their own types
                raise KeyFileError(f"key {self.path}: cannot open signer: {e}") from e
            return NamedSigner(signer, self)
        if self.private_pem is None:
            raise KeyFileError(f"key {self.path} has neither private_pem nor uri")
        encrypted = b"ENCRYPTED" in self.private_pem.split(b"\n", 1)[0]
        if encrypted and not passphrase:
            raise KeyFileError(f"key {self.path} is encrypted: set {PASSPHRASE_ENV}")
        try:
            private = load_pem_private_key(
                self.private_pem, passphrase.encode() if encrypted and passphrase else None
            )
        except (ValueError, TypeError) as e:
            raise KeyFileError(f"key {self.path}: wrong passphrase or corrupt key") from e
        try:
            return CryptoSigner(private, self.public)
        except Exception as e:
            raise KeyFileError(f"key {self.path}: private key does not match public key") from e

    def _pin(self, _what: str) -> str:
        """The PIN of a hardware key, from the environment variable its key file names."""
        if self.pin_env is None:
            raise KeyFileError(f"key {self.path} ({self.uri}) names no pin_env")
        pin = os.environ.get(self.pin_env)
        if not pin:
            raise KeyFileError(f"key {self.path} ({self.uri}): set {self.pin_env} to its PIN")
        return pin


class NamedSigner(Signer):
    """A signer whose failures (a wrong PIN, a missing PKCS#11 module) name the key."""

    def __init__(self, inner: Signer, key: KeyFile) -> None:
        self._inner = inner
        self._key = key

    @property
    def public_key(self) -> Key:
        return self._inner.public_key

    @classmethod
    def from_priv_key_uri(
        cls, priv_key_uri: str, public_key: Key, secrets_handler: SecretsHandler | None = None
    ) -> Signer:
        """The back-end's own signer for the URI (a NamedSigner is built from a KeyFile)."""
        return Signer.from_priv_key_uri(priv_key_uri, public_key, secrets_handler)

    def sign(self, payload: bytes) -> Signature:
        """Raises: KeyFileError naming the key, whatever the back-end raised."""
        try:
            return self._inner.sign(payload)
        except KeyFileError:
            raise
        except Exception as e:  # PKCS#11 back-ends raise their own types
            detail = f"{type(e).__name__}: {e}".rstrip(": ")
            if type(e).__name__ == "PinIncorrect":
                detail = f"wrong PIN (from {self._key.pin_env})"
            raise KeyFileError(
                f"key {self._key.path} ({self._key.role}, {self._key.uri}) cannot sign: {detail}"
            ) from e


def generate_key(
    keydir: Path, role: str, passphrase: str | None = None, *, own_dir: bool = False
) -> KeyFile:
    """Create a new ed25519 key for ``role`` in ``keydir`` (file mode 0600).

    ``own_dir``: in a directory of its own (``keydir/<role>-<keyid>/``), for
    one of several holders of a role to take away.
    """
    private = Ed25519PrivateKey.generate()
    public = SSlibKey.from_crypto(private.public_key())
    encryption = BestAvailableEncryption(passphrase.encode()) if passphrase else NoEncryption()
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption)
    name = f"{role}-{public.keyid[:12]}"
    if own_dir:
        keydir = keydir / name
    path = keydir / f"{name}.json"
    body = {
        "role": role,
        "keyid": public.keyid,
        "public": public.to_dict(),
        "private_pem": pem.decode(),
    }
    keydir.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write_bytes(path, (json.dumps(body, indent=2) + "\n").encode(), mode=0o600)
    return KeyFile(path, role, public, pem, None)


def read_key_file(path: Path) -> KeyFile:
    """Read one key file.

    Raises:
        KeyFileError: missing, unreadable or malformed.
    """
    try:
        data = json.loads(path.read_bytes())
        public = SSlibKey.from_dict(data["keyid"], dict(data["public"]))
        pem = data.get("private_pem")
        uri = data.get("uri")
        if (pem is None) == (uri is None):
            raise ValueError("exactly one of private_pem and uri is needed")
        pin_env = data.get("pin_env")
        return KeyFile(
            path,
            str(data["role"]),
            public,
            pem.encode() if pem else None,
            uri,
            str(pin_env) if pin_env else None,
        )
    except FileNotFoundError as e:
        raise KeyFileError(f"key file not found: {path}") from e
    except OSError as e:
        raise KeyFileError(f"key file {path} cannot be read: {e.strerror}") from e
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise KeyFileError(f"key file {path} is malformed: {e}") from e


class Keyring:
    """The keys present in a key directory, found by keyid."""

    def __init__(self, keys: Iterable[KeyFile], passphrase: str | None = None) -> None:
        self._keys = {k.keyid: k for k in keys}
        self._passphrase = passphrase

    @classmethod
    def from_dir(cls, keydir: Path | None) -> Keyring:
        """All ``*.json`` key files in ``keydir`` (none when ``keydir`` is None).

        Raises:
            KeyFileError: the directory is missing or a key file is malformed.
        """
        passphrase = os.environ.get(PASSPHRASE_ENV) or None
        if keydir is None:
            return cls([], passphrase)
        if not keydir.is_dir():
            raise KeyFileError(f"key directory not found: {keydir}")
        return cls((read_key_file(p) for p in key_files(keydir)), passphrase)

    @property
    def passphrase(self) -> str | None:
        return self._passphrase

    def with_key(self, key: KeyFile) -> Keyring:
        return Keyring([*self._keys.values(), key], self._passphrase)

    def signers(self, keyids: Iterable[str]) -> list[Signer]:
        """Signers for those of ``keyids`` that are present here.

        Raises:
            KeyFileError: a present key cannot be opened (e.g. wrong passphrase).
        """
        return [self._keys[k].signer(self._passphrase) for k in keyids if k in self._keys]

    def in_signing_order(self, keyids: Iterable[str]) -> list[str]:
        """Those of ``keyids`` present here: file keys first, then tokens and KMS keys.

        Signing stops once a threshold is met, so a token's PIN is asked for
        only when the file keys at hand do not suffice.
        """
        present = [self._keys[k] for k in sorted(set(keyids)) if k in self._keys]
        return [k.keyid for k in sorted(present, key=lambda k: k.uri is not None)]

    def signer(self, keyid: str) -> Signer:
        """Raises: KeyFileError: the key cannot be opened (a wrong passphrase, a token's PIN)."""
        return self._keys[keyid].signer(self._passphrase)

    def has(self, keyid: str) -> bool:
        return keyid in self._keys
