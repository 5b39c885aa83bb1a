"""Keys by value: a keyid must name its key, and a person must be able to check it.

TUF metadata names keys by keyid, and python-tuf does not check that a keyid
is the hash of the key it names. A root whose targets key was replaced
behind the same keyid therefore reads, to anyone who compares keyids, as
"no change", and every client accepts what the new key signs. tuf-repo
refuses such metadata, staged or published: a keyid must be the sha256 of
the canonical JSON of its key's type, scheme and value (securesystemslib's
default keyid, which every key tuf-repo makes, file or HSM, carries). And a
review shows every key by value, with a fingerprint a holder can compare
with the record of their key ceremony.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import Key
from tuf.api.metadata import Root, Targets

from tuf_repo.errors import MetadataError

__all__ = [
    "describe_key",
    "fingerprint",
    "key_digest",
    "keyid_problems",
    "listed_keys",
    "mismatched_keyids",
    "refuse_mismatched_keyids",
]


def key_digest(key: Key) -> str:
    """sha256 of the canonical ``{keytype, scheme, keyval}``: what the keyid must be."""
    canonical = encode_canonical(
        {"keytype": key.keytype, "scheme": key.scheme, "keyval": key.keyval}
    )
    if not isinstance(canonical, str):  # encode_canonical returns str without an output
        raise TypeError("canonical JSON encoding failed")
    return hashlib.sha256(canonical.encode()).hexdigest()


def listed_keys(signed: Any) -> dict[str, Key]:
    """Every key a root or targets ``Signed`` object lists (its delegations' included)."""
    keys: dict[str, Key] = {}
    if isinstance(signed, Root):
        keys.update(signed.keys)
    if isinstance(signed, Targets) and signed.delegations is not None:
        keys.update(signed.delegations.keys or {})
    return keys


def mismatched_keyids(keys: Mapping[str, Key]) -> list[str]:
    """The keyids in ``keys`` that do not name their key."""
    return sorted(keyid for keyid, key in keys.items() if key_digest(key) != keyid)


def fingerprint(key: Key) -> str:
    """``SHA256:<hex>`` of the public key's DER SubjectPublicKeyInfo: what a ceremony records.

    The same as ``openssl pkey -pubin -outform DER | sha256sum`` over the
    public key, so a holder can compare it with their record (or their
    token's public key) without trusting tuf-repo. A key without a public
    key value it can read gets the sha256 of its canonical key value.
    """
    public = key.keyval.get("public")
    der: bytes | None = None
    if isinstance(public, str):
        try:
            if key.keytype == "ed25519":
                loaded = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public))
                der = loaded.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            else:
                der = load_pem_public_key(public.encode()).public_bytes(
                    Encoding.DER, PublicFormat.SubjectPublicKeyInfo
                )
        except (ValueError, TypeError):
            der = None
    if der is None:
        der = json.dumps(key.keyval, sort_keys=True, separators=(",", ":")).encode()
    return "SHA256:" + hashlib.sha256(der).hexdigest()


def describe_key(keyid: str, key: Key) -> str:
    """One line a person can check: keyid, type and scheme, public value, fingerprint."""
    public = key.keyval.get("public")
    if isinstance(public, str) and public.startswith("-----"):
        value = "".join(line for line in public.splitlines() if not line.startswith("-----"))
    elif isinstance(public, str):
        value = public
    else:
        value = json.dumps(key.keyval, sort_keys=True)
    mismatch = "" if key_digest(key) == keyid else "  KEYID DOES NOT MATCH THIS KEY"
    return f"{keyid[:12]}  {key.keytype}/{key.scheme}  {value}  {fingerprint(key)}{mismatch}"


def keyid_problems(role: str, signed: Any) -> list[str]:
    """One line per key that ``signed`` (a root or targets) lists under a keyid not its own."""
    keys = listed_keys(signed)
    return [
        f"{role} v{signed.version} lists a key under keyid {keyid[:12]}, but that key's keyid "
        f"is {key_digest(keys[keyid])[:12]}: the key was changed behind its keyid"
        for keyid in mismatched_keyids(keys)
    ]


def refuse_mismatched_keyids(role: str, signed: Any) -> None:
    """Raises: MetadataError: ``signed`` lists a key under a keyid that is not its own."""
    problems = keyid_problems(role, signed)
    if problems:
        raise MetadataError("; ".join(problems) + ". Refused: nothing was signed or published.")
