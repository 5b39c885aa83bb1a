"""Staged work: what a signer reviews, how they sign it, and how it gets published.

An operation whose offline role lacks signatures leaves its new metadata
under ``staged/``. Each key holder reviews it (the changes against the
published version and the digest of the bytes being signed), signs it, and
once every staged role meets its threshold it is published.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securesystemslib.signer import Key
from tuf.api.metadata import Metadata, Root, Targets

from tuf_repo.commit import publish
from tuf_repo.context import RepoContext
from tuf_repo.errors import KeyFileError, MetadataError, SignaturesNeeded, TufRepoError
from tuf_repo.index_review import review_index
from tuf_repo.keys import read_key_file
from tuf_repo.keyvalues import (
    describe_key,
    key_digest,
    keyid_problems,
    listed_keys,
)
from tuf_repo.signatures import (
    SignatureCheck,
    StagedStatus,
    allowed_keys,
    bad_signatures,
    check_signatures,
    describe_missing,
    drop_bad_signatures,
    signature_state,
    unverified,
)
from tuf_repo.staged import StagedWork


@dataclass(frozen=True)
class StagedReview:
    """What a signer must see before signing a staged role."""

    role: str
    version: int
    digest: str  # sha256 of the canonical bytes being signed
    changes: list[str]  # against the published version
    signatures: list[SignatureCheck]
    status: StagedStatus
    keys: list[str] = field(default_factory=list)  # every key it lists, by value
    problems: list[str] = field(default_factory=list)  # why it must not be signed

    @property
    def bad_signatures(self) -> list[SignatureCheck]:
        return [s for s in self.signatures if s.state != "valid"]


def review(ctx: RepoContext, role: str) -> StagedReview:
    """What the staged ``role`` changes, the digest being signed, and its signatures.

    Raises:
        TufRepoError: nothing is staged for ``role``.
    """
    staged_changes = ctx.staged_changes()
    if role not in staged_changes:
        raise TufRepoError(f"nothing is staged for {role} (see `tuf-repo status`)")
    md = staged_changes[role]
    published = ctx.store.load(role) if ctx.store.published_version(role) else None
    group = {r: staged_changes[r] for r in StagedWork(ctx.store).group_of(role) or {role}}
    index_lines, index_problems = review_index(ctx, role, published, md, group)
    return StagedReview(
        role=role,
        version=md.signed.version,
        digest=hashlib.sha256(md.signed_bytes).hexdigest(),
        changes=describe_changes(role, published, md) + index_lines,
        signatures=check_signatures(ctx, role, md, staged_changes),
        status=signature_state(ctx, role, md, staged_changes),
        keys=describe_keys(md.signed, published.signed if published is not None else None),
        problems=keyid_problems(role, md.signed) + index_problems,
    )


def sign(ctx: RepoContext, role: str, key_path: Path, *, expect_digest: str | None = None) -> str:
    """Add the signature of the key in ``key_path`` to the staged ``role``.

    Signatures that no longer verify over the staged content (it changed
    after they were made) or are corrupt are dropped first, and reported.
    Publishes everything staged once every staged role meets its threshold
    and the online keys are at hand.

    Raises:
        KeyFileError: the key is missing or is not a key of ``role``.
        TufRepoError: nothing is staged for ``role``, or the staged content's
            digest is not ``expect_digest``.
        SignaturesNeeded: more signatures are still needed.
    """
    key = read_key_file(key_path)
    seen = review(ctx, role)
    if seen.problems:
        raise MetadataError(
            "; ".join(seen.problems) + f". Do not sign staged {role}: ask who staged it."
        )
    if expect_digest is not None and expect_digest.lower() != seen.digest:
        raise TufRepoError(
            f"staged {role} v{seen.version} has digest {seen.digest}, not the "
            f"{expect_digest} you were given: it changed; do not sign it"
        )
    group = {r: ctx.store.load_staged(r) for r in StagedWork(ctx.store).group_of(role) or {role}}
    staged = group[role]
    if key.keyid not in allowed_keys(ctx, role, group):
        raise KeyFileError(f"key {key_path.name} ({key.keyid[:12]}) is not a key of {role}")
    dropped = drop_bad_signatures(staged, seen.bad_signatures)
    staged.sign(key.signer(ctx.keyring.passphrase), append=True)
    ctx.store.stage(role, staged)
    ctx.keyring = ctx.keyring.with_key(key)
    if not ctx.has_online_keys():
        missing = unverified(ctx, group)
        if missing:
            raise SignaturesNeeded(dropped + describe_missing(missing), sorted(missing))
        return (
            f"{dropped}signed {role}; every signature is there. The next "
            "`tuf-repo refresh` (or `tuf-repo sign` with --keys ONLINE-KEYS) publishes it."
        )
    ready = publish_ready(ctx)
    if role not in ready.published:
        missing = {r: st for r, st in ready.missing.items() if r in group}
        raise SignaturesNeeded(dropped + ready.message + describe_missing(missing), sorted(missing))
    return (dropped + ready.message).rstrip("\n")


@dataclass(frozen=True)
class ReadyReport:
    """What :func:`publish_ready` published, and what still waits for signatures."""

    published: list[str]
    message: str  # one line per group published, and every signature dropped
    missing: dict[str, StagedStatus]


def publish_ready(ctx: RepoContext) -> ReadyReport:
    """Publish every staged group whose roles all meet their thresholds, each on its own.

    Signatures that do not count (stale, corrupt, not the role's) are dropped
    first. A group that lists a key under a keyid not its own is never
    published (it is reported in the message).

    Raises:
        TufRepoError: publishing a complete group is refused (see commit.publish).
    """
    work = StagedWork(ctx.store)
    policy = ctx.store.read_policy()
    published: list[str] = []
    lines: list[str] = []
    missing: dict[str, StagedStatus] = {}
    for group in work.groups():
        changes = {role: ctx.store.load_staged(role) for role in sorted(group)}
        problems = [p for role, md in changes.items() for p in keyid_problems(role, md.signed)]
        if problems:
            lines += [f"not published: staged {p}\n" for p in problems]
            continue
        for role, md in changes.items():
            lines.append(drop_bad_signatures(md, bad_signatures(ctx, role, md, changes)))
        short = unverified(ctx, changes)
        if short:
            missing.update(short)
            continue
        publish(ctx, changes, policy, unstage=group)
        published += sorted(group)
        names = ", ".join(f"{r} v{changes[r].signed.version}" for r in sorted(group))
        lines.append(f"published {names}\n")
    return ReadyReport(published, "".join(lines), missing)


def publish_staged(ctx: RepoContext) -> str:
    """Publish what is staged and fully signed; see :func:`publish_ready`.

    Raises:
        SignaturesNeeded: nothing could be published: every group lacks signatures.
        TufRepoError: nothing is staged, or publishing is refused (see commit.publish).
    """
    if not ctx.store.staged_roles():
        raise TufRepoError("nothing is staged")
    ready = publish_ready(ctx)
    if not ready.published and ready.missing:
        raise SignaturesNeeded(
            ready.message + describe_missing(ready.missing), sorted(ready.missing)
        )
    return ready.message.rstrip("\n")


def describe_changes(
    role: str, published: Metadata[Any] | None, staged: Metadata[Any]
) -> list[str]:
    """What a staged role changes against its published version, one line per change."""
    new = staged.signed
    if published is None:
        return [f"new {role} v{new.version}, expires {new.expires:%Y-%m-%d %H:%M} UTC"]
    old = published.signed
    lines = [
        f"version {old.version} -> {new.version}",
        f"expires {old.expires:%Y-%m-%d %H:%M} -> {new.expires:%Y-%m-%d %H:%M} UTC",
    ]
    if isinstance(new, Root) and isinstance(old, Root):
        lines += _root_changes(old, new)
    if isinstance(new, Targets) and isinstance(old, Targets):
        lines += _targets_changes(old, new)
    if len(lines) == 2:
        lines.append("no other change (a re-signing before expiry)")
    return lines


def describe_keys(new: Any, old: Any | None) -> list[str]:
    """Every key ``new`` (a root or targets) lists, by value, and how it compares with ``old``.

    Root lists its keys under each role that uses them; targets, the keys it
    delegates the hash bins to.
    """
    keys, before = listed_keys(new), listed_keys(old) if old is not None else {}
    if isinstance(new, Root):
        groups = [
            (f"{name} (threshold {r.threshold} of {len(r.keyids)})", r.keyids)
            for name, r in sorted(new.roles.items())
        ]
    elif isinstance(new, Targets) and new.delegations is not None:
        succinct = new.delegations.succinct_roles
        threshold = f" (threshold {succinct.threshold})" if succinct is not None else ""
        groups = [(f"delegated keys{threshold}", sorted(keys))]
    else:
        return []
    lines = []
    for title, keyids in groups:
        lines.append(f"{title}:")
        for keyid in keyids:
            was = before.get(keyid)
            if was is None:
                note = "new"
            elif key_digest(was) != key_digest(keys[keyid]):
                note = "VALUE CHANGED behind the same keyid"
            else:
                note = "unchanged"
            lines.append(f"  {describe_key(keyid, keys[keyid])}  ({note})")
    return lines


def _changed_values(old: dict[str, Key], new: dict[str, Key], what: str) -> list[str]:
    return [
        f"{what} key {k[:12]}: its VALUE CHANGED behind the same keyid"
        for k in sorted(set(old) & set(new))
        if key_digest(old[k]) != key_digest(new[k])
    ]


def _root_changes(old: Root, new: Root) -> list[str]:
    lines = _changed_values(old.keys, new.keys, "root-listed")
    for name in sorted(set(old.roles) | set(new.roles)):
        before, after = old.roles.get(name), new.roles.get(name)
        if before is None or after is None:
            lines.append(f"role {name} {'added' if before is None else 'removed'}")
            continue
        if before.threshold != after.threshold:
            lines.append(f"{name} threshold {before.threshold} -> {after.threshold}")
        lines += [
            f"{name} key added {k[:12]}" for k in sorted(set(after.keyids) - set(before.keyids))
        ]
        lines += [
            f"{name} key removed {k[:12]}" for k in sorted(set(before.keyids) - set(after.keyids))
        ]
    if old.consistent_snapshot != new.consistent_snapshot:
        lines.append(f"consistent_snapshot -> {new.consistent_snapshot}")
    return lines


def _targets_changes(old: Targets, new: Targets) -> list[str]:
    lines = [f"target added {p}" for p in sorted(set(new.targets) - set(old.targets))]
    lines += [f"target removed {p}" for p in sorted(set(old.targets) - set(new.targets))]
    for p in sorted(set(old.targets) & set(new.targets)):
        before, after = old.targets[p], new.targets[p]
        if before == after:
            continue
        if before.hashes == after.hashes and before.length == after.length:
            was = before.unrecognized_fields.get("custom", {}).get("caio", {})
            now = after.unrecognized_fields.get("custom", {}).get("caio", {})
            fields = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
            lines.append(f"target changed {p}: same bytes, signed fields {', '.join(fields)}")
        else:
            lines.append(f"target changed {p}")
    if old.delegations != new.delegations:
        lines.append("delegations changed (keys or thresholds of the hash bins)")
        lines += _changed_values(listed_keys(old), listed_keys(new), "delegated")
    return lines
