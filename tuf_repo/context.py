"""What every publishing operation works with: the repository, the keys, the clock.

The roles and their names live here too: the four top-level roles, the two
online ones (snapshot, timestamp), and the hash bins (``bin-<n>``, all keyed
by the ``bins`` policy entry).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

from tuf_repo.keys import Keyring
from tuf_repo.store import RepoPolicy, RepoStore

TOP_ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)
ONLINE_TOP_ROLES = (Snapshot.type, Timestamp.type)
BIN_PREFIX = "bin"
BINS = "bins"
HASH_ALGORITHMS = ["sha256"]

#: Roles to their new metadata, as one operation builds, signs and publishes them.
Changes = dict[str, Metadata[Any]]


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def is_bin(role: str) -> bool:
    return role.startswith(BIN_PREFIX)


def is_online(role: str, policy: RepoPolicy) -> bool:
    """Signed by a key kept on the publishing host: snapshot, timestamp, online bins."""
    return role in ONLINE_TOP_ROLES or (is_bin(role) and policy.online_bins)


@dataclass
class RepoContext:
    """One repository directory, the keys at hand, and the clock.

    ``live_url``: the repository as clients see it; its versions count in the
    high-water mark too (``--check-live``). ``keyring`` grows as an operation
    makes or is given keys.
    """

    store: RepoStore
    keyring: Keyring
    live_url: str | None = None
    clock: Callable[[], datetime] = utc_now

    def now(self) -> datetime:
        return self.clock().replace(microsecond=0)

    def expiry(self, policy: RepoPolicy, role: str) -> datetime:
        """When ``role`` signed now expires under ``policy``."""
        key = BINS if is_bin(role) else role
        return self.now() + timedelta(days=policy.expiry_days[key])

    def all_roles(self) -> list[str]:
        """The four top-level roles and every hash bin."""
        roles = list(TOP_ROLES)
        delegations = self.store.load(Targets.type).signed.delegations
        if delegations is not None and delegations.succinct_roles is not None:
            roles.extend(delegations.succinct_roles.get_roles())
        return roles

    def delegator(self, role: str, changes: Changes) -> Root | Targets:
        """The metadata that delegates ``role``: top-level targets for a bin, else root.

        The version in ``changes`` wins over the published one, so a rotation's
        new keys count for the roles it re-signs.
        """
        name = Targets.type if is_bin(role) else Root.type
        md = changes.get(name) or self.store.load(name)
        return cast(Root | Targets, md.signed)

    def staged_changes(self) -> Changes:
        return {r: self.store.load_staged(r) for r in self.store.staged_roles()}

    def has_online_keys(self) -> bool:
        root = cast(Root, self.store.load(Root.type).signed)
        return all(
            any(self.keyring.has(k) for k in root.roles[role].keyids) for role in ONLINE_TOP_ROLES
        )
