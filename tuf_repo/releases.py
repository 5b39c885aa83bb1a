"""Releases: publish an artifact, change its rollout plan, withdraw or remove it, list them.

A release is a signed target (``caio/<version>/caio-<version>.tar.gz``) plus
its entry in the signed release index (``caio/index.json``); both carry the
same signed fields (channels, release time, rollout plan, withdrawal), and
every change re-signs both together. With hash bins, each lives in the bin
its path hashes to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import cast

from packaging.version import Version
from tuf.api.metadata import Metadata, TargetFile, Targets

from caio.core.delta import TarDigest
from caio.core.release_format import (
    INDEX_PATH,
    IndexEntry,
    is_safe_target_path,
    parse_index,
    render_index,
    target_custom,
)
from caio.core.rollout import MAX_REASON, Rollout, Step, Withdrawal, iso, parse_time
from tuf_repo.approval import SourceRelease
from tuf_repo.commit import commit
from tuf_repo.context import HASH_ALGORITHMS, Changes, RepoContext
from tuf_repo.errors import MetadataError, TufRepoError
from tuf_repo.release import ReleaseInfo, target_path
from tuf_repo.staged import StagedWork


@dataclass(frozen=True)
class AddResult:
    version: str
    target: str
    changed: bool
    message: str


def publish_artifact(
    ctx: RepoContext,
    artifact: Path,
    info: ReleaseInfo,
    channels: Iterable[str],
    rollout: tuple[Step, ...] | None = None,
    extras: Sequence[tuple[TargetFile, Path]] = (),
    tar: TarDigest | None = None,
) -> AddResult:
    """Sign and publish ``artifact`` as release ``info`` (inspected by the caller), and
    ``extras`` (its deltas) in the same publication. ``tar``: the digest of its
    uncompressed tar, when the caller has it already.

    Publishing the same bytes again changes channels only: the release keeps
    its release time, plan and withdrawal.

    Raises:
        TufRepoError: the version exists with other bytes.
        SignaturesNeeded: the targets role needs more signatures (staged).
    """
    new_file = TargetFile.from_file(target_path(info.version), str(artifact), HASH_ALGORITHMS)
    # Its uncompressed tar, signed beside it: what a delta to this release must produce.
    signed_tar = {"tar": (tar or TarDigest.of_artifact(artifact)).to_json()}
    return publish_target(
        ctx,
        new_file,
        info,
        channels,
        rollout,
        artifact,
        extra_custom=signed_tar,
        extra_targets=extras,
    )


def publish_target(
    ctx: RepoContext,
    new_file: TargetFile,
    info: ReleaseInfo,
    channels: Iterable[str],
    rollout: tuple[Step, ...] | None,
    artifact: Path | None,
    verb: str = "published",
    extra_custom: Mapping[str, object] | None = None,
    extra_targets: Sequence[tuple[TargetFile, Path]] = (),
) -> AddResult:
    """Sign ``new_file`` (its length and hashes) as release ``info``, and list it in the index.

    ``artifact``: the bytes to serve from ``targets/``; None: metadata only (an
    approval repository whose hosts fetch the bytes from the vendor's).

    Raises:
        TufRepoError: the version exists with other bytes.
        SignaturesNeeded: the targets role needs more signatures (staged).
    """
    policy = ctx.store.read_policy()
    channel_list = sorted(set(channels)) or ["stable"]
    path = new_file.path
    top = StagedWork(ctx.store).latest(Targets.type)
    index = read_index(ctx, top)
    now = ctx.now()
    listed = next((e for e in index if e.version == info.version), None)
    if listed is not None and rollout is not None:
        raise TufRepoError(
            f"{info.version} is already published: change its plan with "
            f"`tuf-repo rollout {info.version} --plan SPEC`"
        )
    entry = IndexEntry(
        info.version,
        path,
        tuple(channel_list),
        info.build_date,
        info.commit,
        released_at=listed.released_at if listed is not None else iso(now),
        rollout=(
            listed.rollout
            if listed is not None
            else Rollout(now, rollout)
            if rollout is not None
            else None
        ),
        withdrawn=listed.withdrawn if listed is not None else None,
    )
    new_file.unrecognized_fields["custom"] = {**(extra_custom or {}), **target_custom(entry)}

    changes: Changes = {}
    role_md = editable_role_for(ctx, path, top, changes)
    existing = role_md.signed.targets.get(path)
    if existing is not None:
        if existing.hashes != new_file.hashes or existing.length != new_file.length:
            raise TufRepoError(
                f"version {info.version} is already published with different bytes; "
                "publish a new version instead"
            )
        same = existing.unrecognized_fields.get("custom") == new_file.unrecognized_fields["custom"]
        if same and not extra_targets:
            return AddResult(info.version, path, False, f"{path} is already {verb}")
    role_md.signed.targets[path] = new_file
    for extra, _ in extra_targets:  # signed with the release (its deltas), in the bins they hash to
        editable_role_for(ctx, extra.path, top, changes).signed.targets[extra.path] = extra
    _stage_index(ctx, _with_entry(index, entry), top, changes)
    if artifact is not None:
        ctx.store.put_target(path, new_file.hashes["sha256"], artifact)
    for extra, file in extra_targets:
        ctx.store.put_target(extra.path, extra.hashes["sha256"], file)
    commit(ctx, changes, policy)
    done = "updated channels of" if existing is not None else verb
    plan = f"; rollout {entry.rollout.describe(now)}" if entry.rollout is not None else ""
    return AddResult(info.version, path, True, f"{done} {path} ({', '.join(channel_list)}){plan}")


def approve(ctx: RepoContext, source: SourceRelease) -> AddResult:
    """Sign, in this (approval) repository, the bytes ``source`` signs, as the same release.

    The target path, length, hashes, release fields and uncompressed tar are the
    source's; the release time, rollout plan and withdrawal are this repository's own.

    Raises:
        TufRepoError: this repository has the version with other bytes.
        SignaturesNeeded: the targets role needs more signatures (staged).
    """
    entry = source.entry
    signed = TargetFile(source.target.length, dict(source.target.hashes), source.target.path)
    info = ReleaseInfo(entry.version, entry.build_date, entry.commit, entry.channels[0])
    # The tar a delta must make: approved with the bytes (checked when the source was read).
    tar = {"tar": source.tar.to_json()} if source.tar is not None else None
    return publish_target(
        ctx, signed, info, entry.channels, None, source.artifact, "approved", extra_custom=tar
    )


def set_rollout(
    ctx: RepoContext,
    version: str,
    *,
    steps: tuple[Step, ...] | None = None,
    pause: bool = False,
    resume: bool = False,
) -> AddResult:
    """Give a release a new plan (kept from its start), or pause or resume it.

    A release published without a plan gets one that starts at its release time.

    Raises:
        TufRepoError: not exactly one change asked for, or the version is not published.
        SignaturesNeeded: the targets role needs more signatures (staged).
    """
    if [steps is not None, pause, resume].count(True) != 1:
        raise TufRepoError("give exactly one of --plan, --pause and --resume")

    def change(entry: IndexEntry, now: datetime) -> IndexEntry:
        plan = entry.rollout
        if steps is not None:
            start = parse_time(entry.released_at) if entry.released_at else now
            plan = plan.with_steps(steps) if plan is not None else Rollout(start, steps)
        elif plan is None:
            raise TufRepoError(
                f"{version} has no rollout plan (it went to every host at once); "
                "give it one with --plan"
            )
        elif pause:
            plan = plan.pause(now)
        else:
            plan = plan.resume(now)
        return replace(entry, rollout=plan)

    return _change_release(ctx, version, change)


def withdraw(ctx: RepoContext, version: str, reason: str) -> AddResult:
    """Withdraw a release: it stays signed, but no host chooses it by itself.

    Raises:
        TufRepoError: the version is not published, or the reason is too long.
        SignaturesNeeded: the targets role needs more signatures (staged).
    """
    if len(reason) > MAX_REASON:
        raise TufRepoError(f"--reason has at most {MAX_REASON} characters")
    return _change_release(
        ctx, version, lambda entry, now: replace(entry, withdrawn=Withdrawal(reason, now))
    )


def remove(ctx: RepoContext, version: str) -> AddResult:
    """Stop listing a release: its target, the deltas to it and its index entry leave the
    signed metadata; ``tuf-repo prune`` removes its bytes once no kept metadata lists them.

    Deltas from it to newer releases stay: hosts still running it update through them.

    Raises:
        TufRepoError: the version is not published, or it is the newest release of one of
            its channels and not withdrawn (hosts would take an older one for the newest).
        SignaturesNeeded: the targets role needs more signatures (staged).
    """
    policy = ctx.store.read_policy()
    top, index, entry = _published_release(ctx, version)
    if entry.withdrawn is None:
        newest_on = [c for c in entry.channels if _newest_offered(index, c) == entry.version]
        if newest_on:
            raise TufRepoError(
                f"{version} is the newest release on {', '.join(newest_on)}: withdraw it first "
                f"(`tuf-repo withdraw {version} --reason ...`), or publish a newer one"
            )
    changes: Changes = {}
    folder = entry.target.rpartition("/")[0] + "/"  # caio/<version>/: the release and its deltas
    own_folder = folder.rstrip("/").endswith(f"/{version}")
    removed = []
    for role, md in _targets_roles(ctx, top):
        gone = [
            path
            for path in md.signed.targets
            if path == entry.target or (own_folder and path.startswith(folder))
        ]
        if gone:
            edited = changes.setdefault(role, md)
            for path in gone:
                del edited.signed.targets[path]
            removed += gone
    _stage_index(ctx, [e for e in index if e.version != version], top, changes)
    commit(ctx, changes, policy)
    deltas = len(removed) - 1
    return AddResult(
        version,
        entry.target,
        True,
        f"removed {version} ({entry.target}"
        + (f" and {deltas} delta{'s' if deltas != 1 else ''} to it" if deltas else "")
        + "); `tuf-repo prune` removes its bytes once no kept metadata lists them",
    )


def _published_release(
    ctx: RepoContext, version: str
) -> tuple[Metadata[Targets], list[IndexEntry], IndexEntry]:
    """The newest targets role (staged or published), its release index, and ``version``'s entry.

    Raises:
        TufRepoError: the version is not published.
    """
    top = StagedWork(ctx.store).latest(Targets.type)
    index = read_index(ctx, top)
    entry = next((e for e in index if e.version == version), None)
    if entry is None:
        listed = ", ".join(e.version for e in index) or "none"
        raise TufRepoError(f"version {version} is not published (published: {listed})")
    return top, index, entry


def _newest_offered(index: list[IndexEntry], channel: str) -> str:
    """The newest release on ``channel`` that is not withdrawn ("" if none)."""
    offered = [e.version for e in index if channel in e.channels and e.withdrawn is None]
    return max(offered, key=Version, default="")


def _targets_roles(
    ctx: RepoContext, top: Metadata[Targets]
) -> Iterator[tuple[str, Metadata[Targets]]]:
    """The top-level targets role and every hash bin, newest (staged or published)."""
    yield Targets.type, top
    delegations = top.signed.delegations
    if delegations is not None and delegations.succinct_roles is not None:
        work = StagedWork(ctx.store)
        for role in delegations.succinct_roles.get_roles():
            yield role, cast(Metadata[Targets], work.latest(role))


def releases(ctx: RepoContext) -> list[IndexEntry]:
    """The published releases, oldest first, with their plans and withdrawals."""
    top = ctx.store.load(Targets.type)
    delegations = top.signed.delegations
    if delegations is not None and delegations.succinct_roles is not None:
        holder = ctx.store.load(delegations.succinct_roles.get_role_for_target(INDEX_PATH))
    else:
        holder = top
    return index_of(ctx, holder)


def import_target_files(ctx: RepoContext, files: Iterable[TargetFile]) -> int:
    """Sign many existing targets in one publication (mirrors, migrations, benchmarks).

    The target files themselves must already be in place under ``targets/``;
    returns the number of roles re-signed.

    Raises:
        TufRepoError: an unsafe target path.
        SignaturesNeeded: the targets role needs more signatures (staged).
    """
    policy = ctx.store.read_policy()
    changes: Changes = {}
    top = StagedWork(ctx.store).latest(Targets.type)
    for target_file in files:
        if not is_safe_target_path(target_file.path):
            raise TufRepoError(f"unsafe target path {target_file.path!r}: no .., / or \\")
        editable_role_for(ctx, target_file.path, top, changes).signed.targets[target_file.path] = (
            target_file
        )
    commit(ctx, changes, policy)
    return len(changes)


def read_index(ctx: RepoContext, top: Metadata[Targets]) -> list[IndexEntry]:
    """The release index a change builds on (staged, if its role is staged; else published).

    Raises:
        MetadataError: the index file is missing or does not match its signed hashes.
    """
    delegations = top.signed.delegations
    if delegations is not None and delegations.succinct_roles is not None:
        holder = StagedWork(ctx.store).latest(
            delegations.succinct_roles.get_role_for_target(INDEX_PATH)
        )
    else:
        holder = top
    return index_of(ctx, holder)


def index_of(ctx: RepoContext, holder: Metadata[Targets]) -> list[IndexEntry]:
    """The release index ``holder`` (a targets role or bin) lists, checked against its hashes.

    Raises:
        MetadataError: the index file is missing or does not match.
    """
    info = holder.signed.targets.get(INDEX_PATH)
    if info is None:
        return []
    path = ctx.store.target_file(INDEX_PATH, info.hashes["sha256"])
    try:
        with path.open("rb") as f:
            info.verify_length_and_hashes(f)
            f.seek(0)
            return parse_index(f.read())
    except (OSError, ValueError) as e:
        raise MetadataError(f"published release index {path} is missing or corrupt: {e}") from e


def editable_role_for(
    ctx: RepoContext, path: str, top: Metadata[Targets], changes: Changes
) -> Metadata[Targets]:
    """The metadata (top-level targets or a hash bin) that lists ``path``, loaded once."""
    delegations = top.signed.delegations
    if delegations is not None and delegations.succinct_roles is not None:
        role = delegations.succinct_roles.get_role_for_target(path)
    else:
        role = Targets.type
    if role not in changes:
        changes[role] = StagedWork(ctx.store).latest(role)
    return cast(Metadata[Targets], changes[role])


def describe_release(entry: IndexEntry, now: datetime) -> str:
    """One line: version, channels, plan and where it stands, withdrawal."""
    parts = [f"{entry.version} ({', '.join(entry.channels)})"]
    if entry.released_at:
        parts.append(f"released {entry.released_at}")
    parts.append(
        f"rollout {entry.rollout.describe(now)}" if entry.rollout is not None else "to every host"
    )
    if entry.withdrawn is not None:
        reason = f": {entry.withdrawn.reason}" if entry.withdrawn.reason else ""
        parts.append(f"WITHDRAWN {iso(entry.withdrawn.at)}{reason}")
    return ", ".join(parts)


def _change_release(
    ctx: RepoContext, version: str, change: Callable[[IndexEntry, datetime], IndexEntry]
) -> AddResult:
    """Re-sign a release's target and index entry as ``change`` rewrites them."""
    policy = ctx.store.read_policy()
    top, index, entry = _published_release(ctx, version)
    now = ctx.now()
    new_entry = change(entry, now)
    changes: Changes = {}
    role_md = editable_role_for(ctx, entry.target, top, changes)
    target = role_md.signed.targets.get(entry.target)
    if target is None:
        raise MetadataError(f"the index lists {entry.target}, which no role signs")
    # The release fields change; what else is signed about the bytes (their tar) stays.
    target.unrecognized_fields["custom"] = {**(target.custom or {}), **target_custom(new_entry)}
    _stage_index(ctx, _with_entry(index, new_entry), top, changes)
    commit(ctx, changes, policy)
    return AddResult(version, entry.target, True, describe_release(new_entry, now))


def _with_entry(index: list[IndexEntry], entry: IndexEntry) -> list[IndexEntry]:
    """The index with ``entry`` in place of its version."""
    return [e for e in index if e.version != entry.version] + [entry]


def _stage_index(
    ctx: RepoContext, entries: list[IndexEntry], top: Metadata[Targets], changes: Changes
) -> None:
    """List ``entries`` as the signed release index, in the role that holds it, and store
    the index file (served once the change is published)."""
    index_bytes = render_index(entries)
    digest = hashlib.sha256(index_bytes).hexdigest()
    listed = TargetFile(len(index_bytes), {"sha256": digest}, INDEX_PATH)
    editable_role_for(ctx, INDEX_PATH, top, changes).signed.targets[INDEX_PATH] = listed
    ctx.store.put_target(INDEX_PATH, digest, index_bytes)
