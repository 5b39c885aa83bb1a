"""Keys of the roles: replace them all (rotation), add one, take one away.

Every change of a top-level role's keys is a new root, which the old root's
keys must sign to their threshold (so clients can walk to it), and which
re-signs the role's own metadata under its new keys. The keys of the hash
bins live in the top-level targets metadata instead.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from tuf.api.metadata import Metadata, Root, Targets

from tuf_repo.commit import commit
from tuf_repo.context import BINS, ONLINE_TOP_ROLES, TOP_ROLES, Changes, RepoContext
from tuf_repo.errors import (
    KeyFileError,
    MetadataError,
    SignaturesNeeded,
    TufRepoError,
    UsageError,
)
from tuf_repo.keys import KeyFile, generate_key, key_files, key_home, read_key_file, retire_key_file
from tuf_repo.staged import StagedWork
from tuf_repo.store import RepoPolicy


def rotate(
    ctx: RepoContext,
    role: str,
    keydir: Path,
    threshold: int | None = None,
    *,
    keep_retired_private: bool = False,
) -> str:
    """Replace every key of ``role`` with new ones; a new root announces them.

    The old key files move to ``keydir/retired/`` holding only their public
    half, unless ``keep_retired_private``.

    Raises:
        TufRepoError: unknown role, bad threshold.
        SignaturesNeeded: the new root needs more signatures from the old keys.
    """
    if threshold is not None and threshold < 1:
        raise TufRepoError(f"--threshold must be at least 1, got {threshold}")
    policy = ctx.store.read_policy()
    if role == BINS:
        return _rotate_bins(ctx, keydir, threshold, policy, keep_retired_private)
    if role not in TOP_ROLES:
        raise TufRepoError(f"unknown role {role!r}: use one of {', '.join(TOP_ROLES)}, {BINS}")
    root_md = StagedWork(ctx.store).latest(Root.type)
    old_root = cast(Root, root_md.signed)
    new_root_md: Metadata[Root] = copy.deepcopy(root_md)
    new_root = new_root_md.signed
    changes: Changes = {Root.type: new_root_md}
    old_keyids = list(old_root.roles[role].keyids)
    new_threshold = threshold or old_root.roles[role].threshold
    count = max(new_threshold, len(old_keyids))
    for keyid in old_keyids:
        new_root.revoke_key(keyid, role)
    online = role in ONLINE_TOP_ROLES
    home = key_home(keydir, online=online)
    holders = not online and count > 1  # each new key in its own directory, for its holder
    for _ in range(count):
        key = generate_key(home, role, ctx.keyring.passphrase, own_dir=holders)
        new_root.add_key(key.public, role)
        ctx.keyring = ctx.keyring.with_key(key)
    new_root.roles[role].threshold = new_threshold
    if role == Targets.type:
        changes[Targets.type] = StagedWork(ctx.store).latest(Targets.type)
    where = f"; each new key is in a directory of its own under {home}, one per holder"
    where = where if holders else ""
    try:
        commit(ctx, changes, policy)
    except SignaturesNeeded as e:
        raise SignaturesNeeded(f"{e}{where}", e.roles) from None
    retired = _retire_keys(keydir, old_keyids, keep_retired_private)
    return f"rotated {role}: {count} new key(s), threshold {new_threshold}{retired}{where}"


def add_key(ctx: RepoContext, role: str, key: KeyFile) -> str:
    """Authorise ``key`` for a top-level ``role``: a new root, signed as TUF requires.

    Raises:
        UsageError: unknown role.
        TufRepoError: the key is already the role's.
        KeyFileError: a key cannot sign (e.g. a wrong PIN): nothing is written.
        SignaturesNeeded: the new root needs more signatures (staged).
    """
    root_md = _editable_root(ctx, role)
    root = root_md.signed
    if key.keyid in root.roles[role].keyids:
        raise TufRepoError(f"{key.keyid[:12]} is already a {role} key")
    root.add_key(key.public, role)
    ctx.keyring = ctx.keyring.with_key(key)
    _commit_key_change(ctx, role, root_md, must_sign=frozenset({key.keyid}))
    keys = len(root.roles[role].keyids)
    threshold = root.roles[role].threshold
    return f"added {key.keyid[:12]} ({key.path.name}) to {role}: {keys} keys, threshold {threshold}"


def remove_key(ctx: RepoContext, role: str, keyid: str, keydir: Path | None = None) -> str:
    """Take a key (by keyid or a unique prefix of it) away from ``role``.

    Once the new root is published, the removed key's file under ``keydir``
    (if it is there) is retired as ``rotate`` retires keys: only its public
    half is kept.

    Raises:
        UsageError: unknown role, or no single key matches.
        TufRepoError: fewer keys than the threshold would remain.
        SignaturesNeeded: the new root needs more signatures (staged).
    """
    root_md = _editable_root(ctx, role)
    root = root_md.signed
    matches = [k for k in root.roles[role].keyids if k.startswith(keyid)]
    if len(matches) != 1:
        raise UsageError(f"{len(matches)} {role} keys match {keyid!r}: give more of the keyid")
    threshold = root.roles[role].threshold
    if len(root.roles[role].keyids) - 1 < threshold:
        raise TufRepoError(
            f"removing it would leave {role} fewer keys than its threshold {threshold}: "
            "add the new key first"
        )
    root.revoke_key(matches[0], role)
    _commit_key_change(ctx, role, root_md)
    retired = _retire_keys(keydir, [matches[0]], keep_private=False) if keydir is not None else ""
    return (
        f"removed {matches[0][:12]} from {role}: {len(root.roles[role].keyids)} keys left{retired}"
    )


def _editable_root(ctx: RepoContext, role: str) -> Metadata[Root]:
    if role not in TOP_ROLES:
        raise UsageError(f"unknown role {role!r}: use one of {', '.join(TOP_ROLES)}")
    return cast(Metadata[Root], StagedWork(ctx.store).latest(Root.type))


def _commit_key_change(
    ctx: RepoContext, role: str, root_md: Metadata[Root], must_sign: frozenset[str] = frozenset()
) -> None:
    """Publish a new root; re-sign the role's own metadata under its new keys."""
    changes: Changes = {Root.type: root_md}
    if role == Targets.type:
        changes[Targets.type] = StagedWork(ctx.store).latest(Targets.type)
    commit(ctx, changes, ctx.store.read_policy(), must_sign)


def _rotate_bins(
    ctx: RepoContext,
    keydir: Path,
    threshold: int | None,
    policy: RepoPolicy,
    keep_retired_private: bool,
) -> str:
    """New keys for the hash bins: top-level targets and every bin are re-signed."""
    work = StagedWork(ctx.store)
    top = work.latest(Targets.type)
    delegations = top.signed.delegations
    if delegations is None or delegations.succinct_roles is None:
        raise TufRepoError("this repository has no hash bins")
    succinct = delegations.succinct_roles
    new_threshold = threshold or succinct.threshold
    count = max(new_threshold, len(succinct.keyids))
    if delegations.keys is None:
        raise MetadataError("targets metadata delegates bins without keys")
    old_keyids = list(succinct.keyids)
    for keyid in old_keyids:
        delegations.keys.pop(keyid, None)
    succinct.keyids = []
    home = key_home(keydir, online=policy.online_bins)
    for _ in range(count):
        key = generate_key(home, BINS, ctx.keyring.passphrase)
        delegations.keys[key.keyid] = key.public
        succinct.keyids.append(key.keyid)
        ctx.keyring = ctx.keyring.with_key(key)
    succinct.threshold = new_threshold
    changes: Changes = {Targets.type: top}
    for name in succinct.get_roles():
        changes[name] = work.latest(name)
    commit(ctx, changes, policy)
    retired = _retire_keys(keydir, old_keyids, keep_retired_private)
    return f"rotated {BINS}: {count} new key(s), threshold {new_threshold}{retired}"


def _retire_keys(keydir: Path, keyids: Iterable[str], keep_private: bool) -> str:
    """Retire the key files of ``keyids`` (anywhere under ``keydir``) once they no longer sign."""
    wanted = set(keyids)
    moved = 0
    for path in key_files(keydir):
        try:
            key = read_key_file(path)
        except KeyFileError:
            continue
        if key.keyid in wanted:
            retire_key_file(path, keydir, keep_private=keep_private)
            moved += 1
    if not moved:
        return ""
    kept = "kept" if keep_private else "destroyed; public halves kept"
    return f"; {moved} old key(s) retired to {keydir / 'retired'} (private keys {kept})"


def retire_rotated_out(ctx: RepoContext, keydir: Path, paths: Iterable[Path] | None = None) -> str:
    """Retire key files whose key this repository listed once and lists no more.

    A rotation or a key removal that had to wait for signatures is published
    later, by `sign` or by the heartbeat, on a machine holding other keys.
    Those commands call this for the keys they hold (``paths``, default every
    key file under ``keydir``): a key that a published root or targets
    delegation listed, and that neither the newest published nor any staged
    metadata lists, is retired as ``rotate`` retires (public half kept). A
    key this repository never listed (another repository's) is left alone.
    """
    store = ctx.store
    ever: set[str] = set()
    for version in range(1, store.published_version(Root.type) + 1):
        ever |= _listed(store.load(Root.type, version))
    now = _listed(store.load(Root.type)) | _listed(store.load(Targets.type))
    ever |= now
    for role in store.staged_roles():
        if role in (Root.type, Targets.type):
            now |= _listed(store.load_staged(role))
    gone = ever - now
    if not gone:
        return ""
    candidates = list(paths) if paths is not None else key_files(keydir)
    moved = 0
    for path in candidates:
        try:
            keyid = read_key_file(path).keyid
        except KeyFileError:
            continue
        if keyid in gone:
            retire_key_file(path, keydir, keep_private=False)
            moved += 1
    if not moved:
        return ""
    return (
        f"{moved} key(s) no longer listed by this repository retired to {keydir / 'retired'} "
        "(private keys destroyed; public halves kept)"
    )


def _listed(md: Metadata[Any]) -> set[str]:
    """Every keyid a root lists for any role, or a targets role delegates to."""
    signed = md.signed
    if isinstance(signed, Root):
        return {k for role in signed.roles.values() for k in role.keyids}
    delegations = getattr(signed, "delegations", None)
    if delegations is None or delegations.keys is None:
        return set()
    return set(delegations.keys)
