"""Signing metadata and counting its signatures against the keys that may sign it.

A root is counted against both the old root's keys and threshold and its
own (TUF's rule for a root that clients walk to); every other role against
its delegator's. Only signatures that verify count; corrupt ones and those
of keys that do not sign the role are reported and dropped, never counted.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal, cast

from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Key, Signature, Signer
from tuf.api.metadata import Metadata, Root

from tuf_repo.context import Changes, RepoContext
from tuf_repo.errors import KeyFileError
from tuf_repo.store import RepoPolicy

SignatureState = Literal["valid", "invalid", "malformed", "not_a_key_of_the_role"]

_WHY = {
    "invalid": "does not verify over the staged content (it changed after signing)",
    "malformed": "is corrupt (not a signature value)",
    "not_a_key_of_the_role": "is by a key that does not sign this role",
}


@dataclass(frozen=True)
class SignatureCheck:
    keyid: str
    state: SignatureState


@dataclass(frozen=True)
class StagedStatus:
    """How far one role's new metadata is from its threshold."""

    role: str
    version: int
    have: int
    need: int
    missing_keyids: list[str]


def allowed_keys(ctx: RepoContext, role: str, changes: Changes) -> dict[str, Key]:
    """Keys whose signatures count for the new ``role`` (old and new root keys for root)."""
    if role == Root.type:
        new_root = cast(Root, changes[Root.type].signed)
        keys = {k: new_root.get_key(k) for k in new_root.roles[Root.type].keyids}
        if ctx.store.published_version(Root.type):
            old = cast(Root, ctx.store.load(Root.type).signed)
            keys.update({k: old.get_key(k) for k in old.roles[Root.type].keyids})
        return keys
    delegator = ctx.delegator(role, changes)
    delegated = delegator.get_delegated_role(role)
    return {k: delegator.get_key(k) for k in delegated.keyids}


def check_one_signature(
    allowed: dict[str, Key], keyid: str, signature: Signature, signed_bytes: bytes
) -> SignatureState:
    """Whether one signature over ``signed_bytes`` (a role's canonical form) counts, and why not.

    The caller encodes the role once for all its signatures: a hash bin of 400
    targets costs milliseconds to encode.
    """
    if keyid not in allowed:
        return "not_a_key_of_the_role"
    try:
        if not signature.signature or bytes.fromhex(signature.signature) == b"":
            return "malformed"
    except ValueError:
        return "malformed"
    try:
        allowed[keyid].verify_signature(signature, signed_bytes)
    except UnverifiedSignatureError:
        return "invalid"
    except Exception:  # securesystemslib raises VerificationError and others for junk
        return "malformed"
    return "valid"


def check_signatures(
    ctx: RepoContext, role: str, md: Metadata[Any], changes: Changes
) -> list[SignatureCheck]:
    allowed = allowed_keys(ctx, role, changes)
    data = md.signed_bytes
    return [
        SignatureCheck(keyid, check_one_signature(allowed, keyid, signature, data))
        for keyid, signature in md.signatures.items()
    ]


def bad_signatures(
    ctx: RepoContext, role: str, md: Metadata[Any], changes: Changes
) -> list[SignatureCheck]:
    return [c for c in check_signatures(ctx, role, md, changes) if c.state != "valid"]


def drop_bad_signatures(md: Metadata[Any], bad: list[SignatureCheck]) -> str:
    """Remove ``bad`` signatures from ``md``; returns what was dropped, for the signer."""
    lines = []
    for check in bad:
        md.signatures.pop(check.keyid, None)
        lines.append(f"dropped the signature of {check.keyid[:12]}: it {_WHY[check.state]}\n")
    return "".join(lines)


def signature_state(
    ctx: RepoContext,
    role: str,
    md: Metadata[Any],
    changes: Changes,
    signed_bytes: bytes | None = None,
) -> StagedStatus:
    """How far ``md`` is from its threshold (both old and new root for root).

    Only signatures that verify count; corrupt ones are ignored here (and
    reported by the review). ``signed_bytes``: ``md``'s canonical form, when the
    caller has it already.
    """
    allowed = allowed_keys(ctx, role, changes)
    data = md.signed_bytes if signed_bytes is None else signed_bytes
    md = copy.copy(md)
    md.signatures = {
        k: s
        for k, s in md.signatures.items()
        if check_one_signature(allowed, k, s, data) == "valid"
    }
    if role == Root.type:
        previous = (
            cast(Root, ctx.store.load(Root.type).signed)
            if ctx.store.published_version(Root.type)
            else None
        )
        result = md.signed.get_root_verification_result(previous, data, md.signatures)
        # The new root must meet the old root's threshold and its own;
        # report the part that is further from done.
        parts = [result.first] if previous is None else [result.first, result.second]
        need = max(r.threshold for r in parts)
        have = need - max(r.missing for r in parts)
        unsigned = sorted(set(result.unsigned) - set(result.signed))
    else:
        single = ctx.delegator(role, changes).get_verification_result(role, data, md.signatures)
        have, need, unsigned = (
            min(len(single.signed), single.threshold),
            single.threshold,
            sorted(single.unsigned),
        )
    return StagedStatus(role, md.signed.version, have, need, unsigned if have < need else [])


def unverified(ctx: RepoContext, changes: Changes) -> dict[str, StagedStatus]:
    """The roles of ``changes`` short of their threshold."""
    states = {role: signature_state(ctx, role, md, changes) for role, md in changes.items()}
    return {role: st for role, st in states.items() if st.have < st.need}


def describe_missing(missing: dict[str, StagedStatus]) -> str:
    parts = [
        f"{role} v{st.version}: {st.have} of {st.need} signatures, not yet signed by "
        + ", ".join(k[:12] for k in st.missing_keyids)
        for role, st in sorted(missing.items())
    ]
    return (
        "staged, not published: "
        + "; ".join(parts)
        + ". Each key holder runs `tuf-repo sign --repo DIR --key KEYFILE ROLE`."
    )


def sign_with(
    md: Metadata[Any], signer: Signer, role: str, signed_bytes: bytes | None = None
) -> None:
    """Add ``signer``'s signature; a signer that fails (a wrong PIN) is a KeyFileError.

    ``signed_bytes``: ``md``'s canonical form, when the caller has it already (what
    ``Metadata.sign`` would encode again for every key).

    Raises:
        KeyFileError: naming the key, when the signer's back-end failed.
    """
    data = md.signed_bytes if signed_bytes is None else signed_bytes
    try:
        signature = signer.sign(data)
    except KeyFileError:
        raise
    except Exception as e:
        raise KeyFileError(f"cannot sign {role}: {e}") from e
    md.signatures[signature.keyid] = signature


def sign_changes(
    ctx: RepoContext, changes: Changes, policy: RepoPolicy, must_sign: frozenset[str] = frozenset()
) -> None:
    """Bump version and expiry of ``changes`` and sign them with the keys at hand.

    Each role gets the signatures it needs and no more: file keys first, and
    a key in a token only when the file keys at hand do not meet the
    threshold (its PIN is asked for only then). Keys in ``must_sign`` sign
    whatever the threshold: a key being added proves it can sign.
    """
    for role, md in changes.items():
        published = ctx.store.published_version(role)
        if published:
            md.signed.version = published + 1
        md.signed.expires = ctx.expiry(policy, role)
        md.signatures.clear()
    for role, md in changes.items():
        allowed = allowed_keys(ctx, role, changes)
        data = md.signed_bytes  # encoded once per role: signatures do not change it
        for keyid in ctx.keyring.in_signing_order(must_sign & allowed.keys()):
            sign_with(md, ctx.keyring.signer(keyid), role, data)
        for keyid in ctx.keyring.in_signing_order(allowed.keys() - must_sign):
            state = signature_state(ctx, role, md, changes, data)
            if state.have >= state.need:
                break
            sign_with(md, ctx.keyring.signer(keyid), role, data)
