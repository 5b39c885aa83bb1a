"""The daily heartbeat (``tuf-repo refresh``): keep the repository from lapsing.

It runs from a timer with the online keys only. It re-signs snapshot and
timestamp whatever is staged for offline signers, publishes staged work
whose signatures are all there, stages offline re-signings that come due,
and says every day, with its exit code, when people must sign.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tuf.api.metadata import Snapshot, Timestamp

from tuf_repo.cadence import check_clock, margin_warning, record_run
from tuf_repo.commit import publish
from tuf_repo.context import BINS, ONLINE_TOP_ROLES, Changes, RepoContext, is_bin, is_online
from tuf_repo.errors import KeyFileError, TufRepoError
from tuf_repo.keyvalues import keyid_problems
from tuf_repo.signatures import (
    StagedStatus,
    allowed_keys,
    sign_changes,
    signature_state,
    unverified,
)
from tuf_repo.soundness import Unsound, unsound_roles
from tuf_repo.staged import StagedWork
from tuf_repo.staging import publish_ready
from tuf_repo.store import RepoPolicy

#: The share of its lifetime within which the timestamp is re-signed (the rest: a half).
TIMESTAMP_WINDOW = 0.75


@dataclass(frozen=True)
class RefreshReport:
    """What a refresh did and what still needs people.

    ``awaiting`` is every staged role short of signatures (exit code 3, every
    day it is so); ``expired`` names published roles past their expiry that
    only offline signers can renew (clients are failing: exit code 1);
    ``refused``, published roles it will not re-sign because they list a key
    under a keyid that is not its own (exit code 1); ``unsound``, published
    roles a client would refuse that the online keys cannot mend (exit code 1).
    """

    refreshed: list[str]
    published_staged: list[str]
    awaiting: list[StagedStatus]
    expired: list[str]
    messages: list[str]
    refused: list[str] = field(default_factory=list)
    unsound: list[Unsound] = field(default_factory=list)


def refresh(ctx: RepoContext, within_days: float | None = None) -> RefreshReport:
    """Re-sign what comes due within the window; publish or stage what needs it.

    1. Staged work that has all its signatures is published.
    2. Snapshot and timestamp (and online bins) due within the window are
       re-signed against the *published* top-level metadata, even while
       offline changes await signatures.
    Snapshot and timestamp are also re-signed whenever what is published
    does not verify (see :mod:`tuf_repo.soundness`).
    3. An offline role that is due is re-signed when its keys are here,
       else staged for its holders, on its own: roles with the same signers
       (the hash bins) form one group, and other staged work is no obstacle.

    The default window for a role is half its expiry period; for the
    timestamp, three quarters (18 hours of a day), so an hourly timer keeps
    at least that much in front of every host.

    Raises:
        KeyFileError: an online role's key is not in the key directory.
        ClockError: this machine's clock is behind the repository's record.
    """
    policy = ctx.store.read_policy()
    now = ctx.now()
    check_clock(ctx, policy, now)
    messages: list[str] = []
    published_staged = _publish_staged_if_signed(ctx, messages)
    due = [role for role in ctx.all_roles() if is_due(ctx, role, policy, now, within_days)]
    staged_now = set(ctx.store.staged_roles())
    changes: Changes = {}
    to_stage: dict[frozenset[str], Changes] = {}  # by the keys that sign them
    refused: list[str] = []
    for role in due:
        if role in ONLINE_TOP_ROLES or role in staged_now:
            continue
        candidate = {role: ctx.store.load(role)}
        problems = keyid_problems(role, candidate[role].signed)
        if problems:  # never re-signed; the heartbeat of the other roles goes on
            refused.append(role)
            messages.extend(f"not re-signed: published {p}" for p in problems)
            continue
        sign_changes(ctx, candidate, policy)
        if unverified(ctx, candidate) and not is_online(role, policy):
            signers = frozenset(allowed_keys(ctx, role, candidate))
            to_stage.setdefault(signers, {}).update(candidate)
        else:
            changes.update(candidate)
    missing_online = [r for r in unverified(ctx, changes) if is_online(r, policy)]
    if missing_online:
        raise KeyFileError(f"no key for the online role {missing_online[0]} in the key directory")
    unsound = unsound_roles(ctx)
    refreshed: list[str] = []
    if changes or any(r in ONLINE_TOP_ROLES for r in due) or any(u.online for u in unsound):
        messages.extend(f"re-signing: {u}" for u in unsound if u.online)
        publish(ctx, changes, policy, heartbeat=True)
        refreshed = sorted(set(changes) | {Snapshot.type, Timestamp.type})
        unsound = unsound_roles(ctx) if unsound else []
    messages.extend(f"{u}; clients refuse the repository until it is mended" for u in unsound)
    for group in to_stage.values():
        StagedWork(ctx.store).stage(group)
    awaiting, expired = _what_needs_people(ctx, policy, now, messages)
    if (warning := margin_warning(ctx, now)) is not None:
        messages.insert(0, warning)
    record_run(ctx, now)
    return RefreshReport(refreshed, published_staged, awaiting, expired, messages, refused, unsound)


def is_due(
    ctx: RepoContext, role: str, policy: RepoPolicy, now: datetime, within_days: float | None
) -> bool:
    """Whether ``role`` expires within ``within_days`` (default: see :func:`refresh`)."""
    days = within_days
    if days is None:
        share = TIMESTAMP_WINDOW if role == Timestamp.type else 0.5
        days = policy.expiry_days[BINS if is_bin(role) else role] * share
    return bool(ctx.store.load(role).signed.expires <= now + timedelta(days=days))


def _publish_staged_if_signed(ctx: RepoContext, messages: list[str]) -> list[str]:
    """Publish each staged group that has every signature; the roles published."""
    if not ctx.store.staged_roles():
        return []
    try:
        ready = publish_ready(ctx)
    except TufRepoError as e:  # e.g. another offline role expired: the heartbeat goes on
        messages.append(f"staged work not published: {e}")
        return []
    messages.extend(line for line in ready.message.splitlines() if line)
    return ready.published


def _what_needs_people(
    ctx: RepoContext, policy: RepoPolicy, now: datetime, messages: list[str]
) -> tuple[list[StagedStatus], list[str]]:
    """Staged roles short of signatures, and offline roles already expired."""
    store = ctx.store
    expiry = {
        role: store.load(role).signed.expires
        for role in ctx.all_roles()
        if not is_online(role, policy)
    }
    awaiting = []
    for group in StagedWork(store).groups():
        changes = {role: store.load_staged(role) for role in group}
        states = [signature_state(ctx, role, md, changes) for role, md in changes.items()]
        awaiting += [a for a in states if a.have < a.need]
    # The role that lapses first leads, whatever waits longest.
    awaiting.sort(key=lambda a: (expiry.get(a.role, now), a.role))
    expired = sorted(role for role, expires in expiry.items() if expires <= now)
    if awaiting or expired:
        nearest = min(expiry, key=lambda role: (expiry[role], role))
        left = (expiry[nearest] - now).total_seconds() / 86400
        messages.append(
            f"nearest expiry: {nearest} {'EXPIRED' if left <= 0 else f'in {left:.1f} days'} "
            f"({expiry[nearest]:%Y-%m-%d %H:%M} UTC)"
        )
    for role in expired:
        messages.append(
            f"{role} has EXPIRED: clients refuse the repository until it is signed "
            f"(tuf-repo sign ... {role})"
        )
    for state in awaiting:
        left_days = (
            (expiry[state.role] - now).total_seconds() / 86400 if state.role in expiry else None
        )
        when = (
            f"; the published {state.role} expires in {left_days:.1f} days"
            if left_days is not None
            else ""
        )
        messages.append(
            f"{state.role} v{state.version} awaits signatures: {state.have} of {state.need}"
            f"{when}. Holders run `tuf-repo sign --repo DIR --key KEYFILE {state.role}`."
        )
    return awaiting, expired
