"""Whether what is published would verify for a client, role by role.

The transaction (:mod:`tuf_repo.transaction`) keeps a crash from leaving a
repository half published. This catches what is left: a file restored or
edited by hand, a key changed in root under a role signed before, a
timestamp pointing at a snapshot that is not the newest. The heartbeat
re-signs snapshot and timestamp when they are what fails (the online keys
can), and names every offline role it cannot mend, so that the people
who can are told the same hour.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp

from tuf_repo.context import ONLINE_TOP_ROLES, RepoContext, is_bin


@dataclass(frozen=True)
class Unsound:
    """One published role a client would refuse, and why."""

    role: str
    why: str

    @property
    def online(self) -> bool:
        """Snapshot and timestamp: the heartbeat re-signs them with the online keys."""
        return self.role in ONLINE_TOP_ROLES

    def __str__(self) -> str:
        return f"published {self.role} does not verify: {self.why}"


def unsound_roles(ctx: RepoContext) -> list[Unsound]:
    """Every published role that a fresh client would refuse ([] when all verify)."""
    store = ctx.store
    root_md = store.load(Root.type)
    root = cast(Root, root_md.signed)
    found = _unsigned(root, Root.type, root_md)
    targets_md = store.load(Targets.type)
    found += _unsigned(root, Targets.type, targets_md)
    delegator = cast(Targets, targets_md.signed)
    for role in ctx.all_roles():
        if is_bin(role):
            found += _unsigned(delegator, role, store.load(role))
    snapshot_md = store.load(Snapshot.type)
    found += _unsigned(root, Snapshot.type, snapshot_md)
    snapshot = cast(Snapshot, snapshot_md.signed)
    for name, meta in sorted(snapshot.meta.items()):
        role = name.removesuffix(".json")
        newest = store.published_version(role)
        if meta.version == newest and not _same_file(meta, store.metadata_path(role, newest)):
            why = f"v{newest} is not the file snapshot v{snapshot.version} lists (changed after"
            found.append(Unsound(role, f"{why} publishing)"))
        elif meta.version != newest:
            found.append(
                Unsound(
                    Snapshot.type,
                    f"v{snapshot.version} lists {role} v{meta.version}, but v{newest} is the "
                    f"newest {role} file in {store.metadata_dir} (a file added or removed by "
                    "hand?); clients see a different targets than the repository's own",
                )
            )
    timestamp_md = store.load(Timestamp.type)
    found += _unsigned(root, Timestamp.type, timestamp_md)
    found += _timestamp_link(ctx, cast(Timestamp, timestamp_md.signed))
    return found


def _unsigned(delegator: Root | Targets, role: str, md: Metadata[Any]) -> list[Unsound]:
    """The role, if its delegator's keys do not sign it to threshold."""
    try:
        delegator.verify_delegate(role, md.signed_bytes, md.signatures)
    except UnsignedMetadataError as e:
        return [Unsound(role, f"v{md.signed.version}: {e}")]
    return []


def _timestamp_link(ctx: RepoContext, timestamp: Timestamp) -> list[Unsound]:
    """The timestamp, if it does not name the newest snapshot file, byte for byte."""
    store = ctx.store
    meta = timestamp.snapshot_meta
    newest = store.published_version(Snapshot.type)
    if meta.version != newest:
        why = f"it names snapshot v{meta.version}, the newest is v{newest}"
        return [Unsound(Timestamp.type, why)]
    if not _same_file(meta, store.metadata_path(Snapshot.type, newest)):
        why = f"snapshot v{newest} is not the file it signed (changed after publishing)"
        return [Unsound(Timestamp.type, why)]
    return []


def _same_file(meta: MetaFile, path: Path) -> bool:
    """Whether ``path`` has the length and hashes ``meta`` gives (those it gives)."""
    data = path.read_bytes()
    if meta.length is not None and meta.length != len(data):
        return False
    return all(
        hashlib.new(algorithm, data).hexdigest() == digest
        for algorithm, digest in (meta.hashes or {}).items()
    )
