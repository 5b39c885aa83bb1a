"""``tuf-repo status``: every role's version, expiry and signatures, and what is urgent."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import cast

from tuf.api.metadata import Root, Targets

from caio.core.release_format import IndexEntry
from tuf_repo.context import ONLINE_TOP_ROLES, TOP_ROLES, RepoContext, is_bin
from tuf_repo.heartbeat import is_due
from tuf_repo.keyvalues import keyid_problems
from tuf_repo.prune import Storage, storage
from tuf_repo.releases import releases
from tuf_repo.signatures import allowed_keys, check_one_signature, check_signatures
from tuf_repo.soundness import unsound_roles
from tuf_repo.staging import StagedReview, review
from tuf_repo.store import RepoPolicy
from tuf_repo.transaction import pending


@dataclass(frozen=True)
class RoleStatus:
    role: str
    version: int
    expires: datetime
    threshold: int
    keys: int
    signed: int


@dataclass(frozen=True)
class BinSummary:
    count: int
    min_version: int
    max_version: int
    earliest_expiry: datetime
    online: bool


@dataclass(frozen=True)
class RepoStatus:
    roles: list[RoleStatus]
    staged: list[StagedReview]
    bins: int
    bin_summary: BinSummary | None = None
    warnings: list[str] = field(default_factory=list)
    releases: list[IndexEntry] = field(default_factory=list)
    storage: Storage | None = None


def status(ctx: RepoContext) -> RepoStatus:
    """Every role's version, expiry and signatures, what is staged, and what is urgent."""
    policy = ctx.store.read_policy()
    now = ctx.now()
    root = cast(Root, ctx.store.load(Root.type).signed)
    roles: list[RoleStatus] = []
    for role in TOP_ROLES:
        md = ctx.store.load(role)
        if role == Root.type:
            allowed = allowed_keys(ctx, role, {Root.type: md})
            data = md.signed_bytes
            signed = sum(
                check_one_signature(allowed, k, s, data) == "valid"
                for k, s in md.signatures.items()
            )
        else:
            signed = sum(c.state == "valid" for c in check_signatures(ctx, role, md, {}))
        roles.append(
            RoleStatus(
                role,
                md.signed.version,
                md.signed.expires,
                root.roles[role].threshold,
                len(root.roles[role].keyids),
                signed,
            )
        )
    bins = _bin_summary(ctx, policy)
    staged = [review(ctx, role) for role in ctx.store.staged_roles()]
    warnings = []
    for r in roles:
        if r.expires <= now:
            warnings.append(f"{r.role} v{r.version} has EXPIRED: clients refuse the repository")
        elif r.role not in ONLINE_TOP_ROLES and is_due(ctx, r.role, policy, now, None):
            left = (r.expires - now).total_seconds() / 86400
            warnings.append(f"{r.role} expires in {left:.1f} days: it needs signing")
    if bins is not None and bins.earliest_expiry <= now:
        warnings.append("a hash bin has EXPIRED: clients cannot find the targets it lists")
    for role in (Root.type, Targets.type):
        warnings += [f"published {p}" for p in keyid_problems(role, ctx.store.load(role).signed)]
    warnings += [str(u) for u in unsound_roles(ctx)]
    for staged_review in staged:
        warnings += [f"staged {p}: do not sign it" for p in staged_review.problems]
    if (interrupted := pending(ctx.store.root)) is not None:
        warnings.append(interrupted)
    return RepoStatus(roles, staged, policy.bins, bins, warnings, releases(ctx), storage(ctx.store))


def export_root(ctx: RepoContext) -> Path:
    """The newest published root: the trust anchor to ship with new installations."""
    return ctx.store.metadata_path(Root.type, ctx.store.published_version(Root.type))


def _bin_summary(ctx: RepoContext, policy: RepoPolicy) -> BinSummary | None:
    names = [r for r in ctx.all_roles() if is_bin(r)]
    if not names:
        return None
    mds = [ctx.store.load(n).signed for n in names]
    return BinSummary(
        count=len(names),
        min_version=min(m.version for m in mds),
        max_version=max(m.version for m in mds),
        earliest_expiry=min(m.expires for m in mds),
        online=policy.online_bins,
    )
