"""The key ceremony: a new repository, its keys, and root v1 to hand to clients."""

from __future__ import annotations

from pathlib import Path

from tuf.api.metadata import Delegations, Metadata, Root, SuccinctRoles, Targets

from tuf_repo.commit import commit
from tuf_repo.context import BIN_PREFIX, BINS, ONLINE_TOP_ROLES, Changes, RepoContext
from tuf_repo.errors import TufRepoError, UsageError
from tuf_repo.keys import KeyFile, Keyring, generate_key
from tuf_repo.store import DEFAULT_EXPIRY_DAYS, RepoPolicy


def init(
    ctx: RepoContext,
    keydir: Path,
    *,
    root_keys: int = 3,
    root_threshold: int = 2,
    expiry_days: dict[str, float] | None = None,
    bins: int = 0,
    online_bins: bool = False,
    passphrase: str | None = None,
) -> Path:
    """Generate keys and publish root v1, targets, snapshot and timestamp.

    Keys go to ``keydir/online/`` (timestamp, snapshot; the bins key only
    with ``online_bins``) and ``keydir/offline/`` (root, targets, bins).
    Returns the path of the trusted root to hand to clients.

    Raises:
        TufRepoError: the directory already holds a repository.
        UsageError: bad options (threshold, bins, expiry).
    """
    store = ctx.store
    if store.exists():
        raise TufRepoError(f"{store.root} already holds a repository")
    policy = _policy(root_keys, root_threshold, expiry_days, bins, online_bins)

    root = Root(expires=ctx.expiry(policy, Root.type), consistent_snapshot=True)
    online, offline = keydir / "online", keydir / "offline"
    for d in (online, offline):
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys: list[KeyFile] = []
    for role, count in ((Root.type, root_keys), ("targets", 1), ("snapshot", 1), ("timestamp", 1)):
        for _ in range(count):
            home = online if role in ONLINE_TOP_ROLES else offline
            key = generate_key(home, role, passphrase)
            root.add_key(key.public, role)
            keys.append(key)
    root.roles[Root.type].threshold = root_threshold
    targets = Targets(expires=ctx.expiry(policy, Targets.type))
    bin_roles: Changes = {}
    if bins:
        bins_key = generate_key(online if online_bins else offline, BINS, passphrase)
        keys.append(bins_key)
        succinct = SuccinctRoles([bins_key.keyid], 1, bins.bit_length() - 1, BIN_PREFIX)
        targets.delegations = Delegations(
            keys={bins_key.keyid: bins_key.public}, succinct_roles=succinct
        )
        for name in succinct.get_roles():
            bin_roles[name] = Metadata(Targets(expires=ctx.expiry(policy, BINS)))

    ctx.keyring = Keyring([*keys], passphrase)
    store.metadata_dir.mkdir(parents=True, exist_ok=True)
    store.targets_dir.mkdir(parents=True, exist_ok=True)
    store.write_policy(policy)
    changes: Changes = {Root.type: Metadata(root), Targets.type: Metadata(targets), **bin_roles}
    commit(ctx, changes, policy)
    return store.metadata_path(Root.type, 1)


def _policy(
    root_keys: int,
    root_threshold: int,
    expiry_days: dict[str, float] | None,
    bins: int,
    online_bins: bool,
) -> RepoPolicy:
    """The repository's policy from ``init``'s options.

    Raises:
        UsageError: naming the option that cannot work.
    """
    if not 1 <= root_threshold <= root_keys:
        raise UsageError(
            f"--root-threshold {root_threshold} must be between 1 and --root-keys ({root_keys})"
        )
    if bins and (bins < 2 or bins & (bins - 1) or bins > 2**16):
        raise UsageError("--bins must be a power of two between 2 and 65536")
    if online_bins and not bins:
        raise UsageError("--online-bins needs --bins")
    policy = RepoPolicy(
        expiry_days={**DEFAULT_EXPIRY_DAYS, **(expiry_days or {})},
        bins=bins,
        online_bins=online_bins,
    )
    for role, days in policy.expiry_days.items():
        if role not in DEFAULT_EXPIRY_DAYS or days <= 0:
            raise UsageError(f"--expiry {role}={days}: unknown role or not positive")
    return policy
