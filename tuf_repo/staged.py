"""Staged work in groups: each change waits for its own signers, and publishes on its own.

::

    DIR/staged/<role>.json   the new metadata of one role, awaiting signatures
    DIR/staged/groups.json   {"groups": [["root"], ["targets"], ["bin-3", "bin-7"]]}

A change that touches several roles stages them as one group, which publishes
only as a whole: a targets-key rotation (root and targets), a release in hash
bins (the bins its artifact and the index land in). Groups are independent:
a root waiting for its holders holds back neither a targets re-signing nor a
release, and each group publishes as soon as all of its roles meet their
thresholds.

A change that touches a role already staged is built on the staged content
(two releases waiting for the release signer are both in the staged
targets), and its group absorbs the group it touched: the roles carried
along keep their metadata and signatures. Staged files without a group (left
by an older tuf-repo) form one group together, as they were staged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from tuf.api.metadata import Metadata

from tuf_repo.context import Changes
from tuf_repo.store import GROUPS_FILE, RepoStore
from tuf_repo.transaction import publish_files

_log = logging.getLogger("tuf_repo")


def forget_published_staged(store: RepoStore) -> None:
    """Remove staged files whose version is already published (call under the writer lock)."""
    stale = store.stale_staged_roles()
    if stale:
        StagedWork(store).unstage(stale)
        _log.warning("forgot staged %s: already published", ", ".join(stale))


class StagedWork:
    """The staged roles of one repository and the groups they publish in."""

    def __init__(self, store: RepoStore) -> None:
        self.store = store

    def groups(self) -> list[frozenset[str]]:
        """Disjoint groups covering every staged role, in a stable order.

        Raises:
            MetadataError: the groups file is corrupt.
        """
        staged = set(self.store.staged_roles())
        groups: list[frozenset[str]] = []
        for recorded in self.store.read_staged_groups():
            group = frozenset(recorded) & staged - frozenset().union(*groups)
            if group:
                groups.append(group)
        ungrouped = staged - frozenset().union(*groups)
        if ungrouped:
            groups.append(frozenset(ungrouped))
        return sorted(groups, key=sorted)

    def group_of(self, role: str) -> frozenset[str] | None:
        return next((g for g in self.groups() if role in g), None)

    def latest(self, role: str) -> Metadata[Any]:
        """What a change to ``role`` builds on: its staged version if one waits, else published.

        Raises:
            MetadataError: missing or corrupt.
        """
        if role in self.store.staged_roles():
            return self.store.load_staged(role)
        return self.store.load(role)

    def with_group(self, changes: Changes) -> Changes:
        """``changes`` plus the other staged roles of every group they touch, as staged."""
        carried: Changes = {}
        for group in self.groups():
            if group & changes.keys():
                for role in group - changes.keys():
                    carried[role] = self.store.load_staged(role)
        return {**changes, **carried}

    def stage(self, changes: Changes) -> None:
        """Stage ``changes`` as one group, merged with every group it touches."""
        merged = set(changes)
        kept = []
        for group in self.groups():
            if group & merged:
                merged |= group
            else:
                kept.append(sorted(group))
        # All of the group's files or none: a crash must never leave half a change
        # (a root naming a new targets key without the targets it signs) to sign.
        groups = self.store.render_staged_groups([*kept, sorted(merged)])
        writes = [
            (self.store.relpath(self.store.staged_path(role)), self.store.serialise(md))
            for role, md in sorted(changes.items())
        ]
        writes.append((self.store.relpath(self.store.staged_dir / GROUPS_FILE), groups))
        publish_files(self.store.root, writes)

    def unstage(self, roles: Iterable[str]) -> None:
        """Remove ``roles`` (published, or given up) from the staged work."""
        gone = set(roles)
        remaining = [sorted(g - gone) for g in self.groups() if g - gone]
        for role in sorted(gone):
            self.store.unstage(role)
        if remaining:
            self.store.write_staged_groups(remaining)
        else:
            (self.store.staged_dir / GROUPS_FILE).unlink(missing_ok=True)
