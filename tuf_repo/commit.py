"""Putting new metadata out: sign, then publish with a new snapshot and timestamp, or stage.

Everything is serialised and signed in memory first, so a missing key
changes nothing; then files are written in the order that keeps every
published file's references valid (targets roles, snapshot, root, and
``timestamp.json`` last), each atomically.

Two rules keep clients safe from the publisher's own mistakes: nothing is
published on top of an expired offline role, and no role is ever published
at a version at or below one published before (the high-water mark, also
checked against the live repository with ``--check-live``).
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any, cast

from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Timestamp

from tuf_repo.context import ONLINE_TOP_ROLES, Changes, RepoContext, is_bin, is_online
from tuf_repo.errors import ClockError, KeyFileError, SignaturesNeeded, TufRepoError
from tuf_repo.expiry_index import ExpiryIndex
from tuf_repo.keyvalues import refuse_mismatched_keyids
from tuf_repo.signatures import describe_missing, sign_changes, sign_with, unverified
from tuf_repo.staged import StagedWork
from tuf_repo.store import HighWaterMark, RepoPolicy
from tuf_repo.transaction import publish_files

#: Set to 1 to publish an expiry earlier than the published one (a shortened lifetime).
TRUST_CLOCK_ENV = "TUF_REPO_TRUST_CLOCK"


def commit(
    ctx: RepoContext, changes: Changes, policy: RepoPolicy, must_sign: frozenset[str] = frozenset()
) -> None:
    """Bump and sign ``changes``, then publish them, or stage them when signatures are missing.

    ``changes`` publish together with the staged roles of every group they
    touch (see :mod:`tuf_repo.staged`); other staged work is left alone.

    Raises:
        KeyFileError: an online role's key is not at hand.
        SignaturesNeeded: offline signatures are missing; the group is staged.
        TufRepoError: publishing is refused (see :func:`publish`).
    """
    sign_changes(ctx, changes, policy, must_sign)
    work = StagedWork(ctx.store)
    group = work.with_group(changes)
    missing = unverified(ctx, group)
    if missing:
        online = [role for role in missing if is_online(role, policy)]
        if online:
            raise KeyFileError(f"no key for the online role {online[0]} in the key directory")
        for role, md in group.items():
            refuse_mismatched_keyids(role, md.signed)
        work.stage(group)
        raise SignaturesNeeded(describe_missing(missing), sorted(missing))
    publish(ctx, group, policy, unstage=set(group) & set(ctx.store.staged_roles()))


def publish(
    ctx: RepoContext,
    changes: Changes,
    policy: RepoPolicy,
    *,
    heartbeat: bool = False,
    unstage: Iterable[str] = (),
) -> None:
    """Publish signed ``changes`` with a new snapshot and timestamp, as one transaction.

    ``unstage``: the staged roles this publishes; they are forgotten in the
    same transaction (see :mod:`tuf_repo.transaction`).

    Raises:
        MetadataError: a role lists a key under a keyid that is not its own.
        TufRepoError: a published offline role that this leaves in force has
            expired (except for the ``heartbeat`` refresh, which must go on),
            or a version would not be above every version ever published.
        ClockError: an expiry this machine's clock makes look wrong.
        KeyFileError: the online keys are not at hand.
    """
    store = ctx.store
    for role, md in changes.items():
        refuse_mismatched_keyids(role, md.signed)
    if not heartbeat:
        refuse_expired(ctx, changes, policy)
    serialised = {role: store.serialise(md) for role, md in changes.items()}
    root = cast(Root, (changes.get(Root.type) or store.load(Root.type)).signed)

    snapshot_md = _next_online(ctx, Snapshot.type, policy)
    for name, entry in snapshot_md.signed.meta.items():
        if is_bin(name.removesuffix(".json")):
            entry.length = entry.hashes = None  # older snapshots' bin entries, too
    for role, data in serialised.items():
        if role == Root.type:
            continue
        # Hash bins by version only (TUF allows it): clients fetch N.bin-x.json by version
        # and check its signatures and version; lengths and hashes cost every host about
        # 130 bytes per bin at every publication (32 of the 43 KB of a snapshot at 256 bins).
        # targets.json, signed offline, keeps them: its hash pins it even against someone
        # holding its key but not the snapshot's.
        version = changes[role].signed.version
        entry = MetaFile(version) if is_bin(role) else metafile(version, data)
        snapshot_md.signed.meta[f"{role}.json"] = entry
    _sign_online(ctx, Snapshot.type, snapshot_md, root)
    snapshot_bytes = store.serialise(snapshot_md)

    timestamp_md = _next_online(ctx, Timestamp.type, policy)
    timestamp_md.signed.snapshot_meta = metafile(snapshot_md.signed.version, snapshot_bytes)
    _sign_online(ctx, Timestamp.type, timestamp_md, root)

    _check_clock(ctx, {**changes, Snapshot.type: snapshot_md, Timestamp.type: timestamp_md})
    versions = {role: md.signed.version for role, md in changes.items()}
    versions[Snapshot.type] = snapshot_md.signed.version
    versions[Timestamp.type] = timestamp_md.signed.version
    first_root = serialised.get(Root.type) if root.version == 1 else None
    high_water = HighWaterMark.for_root(
        first_root or store.metadata_path(Root.type, 1).read_bytes()
    )
    high_water.check(versions, live_versions(ctx) if ctx.live_url else None)

    # In the order that keeps every reference a client follows valid: root last
    # but timestamp (clients walk N.root.json), timestamp.json last of all.
    writes = [
        (store.relpath(store.metadata_path(role, changes[role].signed.version)), data)
        for role, data in serialised.items()
        if role != Root.type
    ]
    writes.append(
        (store.relpath(store.metadata_path(Snapshot.type, versions[Snapshot.type])), snapshot_bytes)
    )
    if Root.type in serialised:
        writes.append(
            (store.relpath(store.metadata_path(Root.type, root.version)), serialised[Root.type])
        )
    writes.append(
        (store.relpath(store.metadata_path(Timestamp.type, 0)), store.serialise(timestamp_md))
    )
    try:
        publish_files(store.root, writes, unstage=unstage, high_water=(high_water, versions))
    finally:
        store.forget_listing()


def _check_clock(ctx: RepoContext, new: Changes) -> None:
    """Refuse an expiry that is already past, or earlier than the one published before.

    A publishing host whose clock runs behind would otherwise put out a
    timestamp that has already expired, and report success. ``TRUST_CLOCK_ENV``
    set to 1 accepts an earlier expiry (after shortening a role's lifetime).

    Raises:
        ClockError: naming the role, both expiries and this machine's time.
    """
    now = ctx.now()
    trust_clock = os.environ.get(TRUST_CLOCK_ENV) == "1"
    for role, md in sorted(new.items()):
        expires = md.signed.expires
        if expires <= now:
            why = "" if role in ONLINE_TOP_ROLES else " (staged too long ago? stage it again)"
            raise ClockError(
                f"{role} v{md.signed.version} would expire {expires:%Y-%m-%d %H:%M:%S} UTC, "
                f"which is not after this machine's time ({now:%Y-%m-%d %H:%M:%S} UTC){why}; "
                "nothing was published"
            )
        published = ctx.store.published_version(role)
        if trust_clock or not published:
            continue
        before = ctx.store.load(role).signed.expires
        if expires < before:
            raise ClockError(
                f"{role} v{md.signed.version} would expire {expires:%Y-%m-%d %H:%M:%S} UTC, "
                f"before the published v{published} ({before:%Y-%m-%d %H:%M:%S} UTC): this "
                f"machine's clock ({now:%Y-%m-%d %H:%M:%S} UTC) looks behind. Nothing was "
                f"published. Check the clock (timedatectl); if the role's lifetime was "
                f"shortened on purpose, run again with {TRUST_CLOCK_ENV}=1."
            )


def refuse_expired(ctx: RepoContext, changes: Changes, policy: RepoPolicy) -> None:
    """Refuse to publish on top of an expired offline role that stays in force.

    Raises:
        TufRepoError: naming the role, when it expired, and how to renew it.
    """
    now = ctx.now()
    store = ctx.store
    known = ExpiryIndex(store)
    try:
        for role in ctx.all_roles() if store.published_version(Root.type) else []:
            if role in changes or is_online(role, policy):
                continue
            version, expires = known.expires(role)
            if expires <= now:
                raise TufRepoError(
                    f"{role} v{version} expired on {expires:%Y-%m-%d %H:%M} "
                    "UTC, so clients would refuse what this publishes. Renew it first: "
                    f"`tuf-repo refresh --repo {store.root} --keys KEYDIR` with the {role} "
                    f"key(s), then `tuf-repo sign --repo {store.root} --key KEYFILE {role}` "
                    "for any signature still missing."
                )
    finally:
        known.save()


def live_versions(ctx: RepoContext) -> dict[str, int]:
    """Versions the live repository serves (``--check-live``): they count as published.

    Raises:
        TufRepoError: the live repository cannot be read.
    """
    base = f"{ctx.live_url}/metadata"
    timestamp = _fetch_json(f"{base}/timestamp.json")["signed"]
    snapshot_version = int(timestamp["meta"]["snapshot.json"]["version"])
    versions = {Timestamp.type: int(timestamp["version"]), Snapshot.type: snapshot_version}
    snapshot = _fetch_json(f"{base}/{snapshot_version}.snapshot.json")["signed"]
    for name, meta in snapshot["meta"].items():
        versions[name.removesuffix(".json")] = int(meta["version"])
    root_version = ctx.store.published_version(Root.type)
    while _exists(f"{base}/{root_version + 1}.root.json"):
        root_version += 1
    versions[Root.type] = root_version
    return versions


def metafile(version: int, data: bytes) -> MetaFile:
    return MetaFile(
        version=version, length=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()}
    )


def _next_online(ctx: RepoContext, role: str, policy: RepoPolicy) -> Metadata[Any]:
    if ctx.store.published_version(role):
        md = ctx.store.load(role)
        md.signed.version += 1
    elif role == Snapshot.type:
        md = Metadata(Snapshot())
    else:
        md = Metadata(Timestamp())
    md.signed.expires = ctx.expiry(policy, role)
    return md


def _sign_online(ctx: RepoContext, role: str, md: Metadata[Any], root: Root) -> None:
    """Sign an online role to threshold.

    Raises:
        KeyFileError: the online keys are not in the key directory.
    """
    md.signatures.clear()
    for signer in ctx.keyring.signers(root.roles[role].keyids):
        sign_with(md, signer, role)
    if not root.get_verification_result(role, md.signed_bytes, md.signatures):
        raise KeyFileError(
            f"the {role} key is not in the key directory: pass --keys with the online keys"
        )


def _fetch_json(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=15) as response:  # noqa: S310 (http(s) only)
            data: dict[str, Any] = json.loads(response.read(16 * 1024 * 1024))
            return data
    except (OSError, ValueError, KeyError) as e:
        raise TufRepoError(f"--check-live: cannot read {url}: {e}") from e


def _exists(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=15):  # noqa: S310 (http(s) only)
            return True
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return False
        raise TufRepoError(f"--check-live: {url}: HTTP {e.code}") from e
    except OSError as e:
        raise TufRepoError(f"--check-live: cannot read {url}: {e}") from e
