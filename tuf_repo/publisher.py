"""Publishing operations on a repository: init, add, sign, rotate, refresh, status.

Every operation builds the new metadata in memory, signs it with the keys it
has, and then either publishes it (new files first, ``timestamp.json`` last,
each written atomically) or, when an offline role lacks signatures, stages it
under ``staged/`` for other key holders (``tuf-repo sign``). Snapshot and
timestamp are online roles: they are made fresh at every publication and
never staged. Hash bins are offline (signed by the release key) unless the
repository was created with ``--online-bins``.

Two rules keep clients safe from the publisher's own mistakes: nothing is
published on top of an expired offline role, and no role is ever published
at a version at or below one published before (the high-water mark).
"""

from __future__ import annotations

import copy
import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Key, Signature, Signer
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import (
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)

from caio.core.release_format import (
    INDEX_PATH,
    IndexEntry,
    is_safe_target_path,
    parse_index,
    render_index,
    target_custom,
)
from caio.core.rollout import MAX_REASON, Rollout, Step, Withdrawal, iso, parse_time
from tuf_repo.errors import (
    KeyFileError,
    MetadataError,
    SignaturesNeeded,
    TufRepoError,
    UsageError,
)
from tuf_repo.keys import (
    KeyFile,
    Keyring,
    generate_key,
    key_files,
    key_home,
    read_key_file,
    retire_key_file,
)
from tuf_repo.release import ReleaseInfo, inspect_release, target_path
from tuf_repo.store import DEFAULT_EXPIRY_DAYS, HighWaterMark, RepoPolicy, RepoStore

TOP_ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)
ONLINE_TOP_ROLES = (Snapshot.type, Timestamp.type)
BIN_PREFIX = "bin"
BINS = "bins"
HASH_ALGORITHMS = ["sha256"]


@dataclass(frozen=True)
class RoleStatus:
    role: str
    version: int
    expires: datetime
    threshold: int
    keys: int
    signed: int


@dataclass(frozen=True)
class StagedStatus:
    role: str
    version: int
    have: int
    need: int
    missing_keyids: list[str]


SignatureState = Literal["valid", "invalid", "malformed", "not_a_key_of_the_role"]


@dataclass(frozen=True)
class SignatureCheck:
    keyid: str
    state: SignatureState


@dataclass(frozen=True)
class StagedReview:
    """What a signer must see before signing a staged role."""

    role: str
    version: int
    digest: str  # sha256 of the canonical bytes being signed
    changes: list[str]  # against the published version
    signatures: list[SignatureCheck]
    status: StagedStatus

    @property
    def bad_signatures(self) -> list[SignatureCheck]:
        return [s for s in self.signatures if s.state != "valid"]


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


@dataclass(frozen=True)
class RefreshReport:
    """What a refresh did and what still needs people.

    ``awaiting`` is every staged role short of signatures (exit code 3, every
    day it is so); ``expired`` names published roles past their expiry that
    only offline signers can renew (clients are failing: exit code 1).
    """

    refreshed: list[str]
    published_staged: list[str]
    awaiting: list[StagedStatus]
    expired: list[str]
    messages: list[str]


@dataclass(frozen=True)
class AddResult:
    version: str
    target: str
    changed: bool
    message: str


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Publisher:
    """Changes one repository directory using the keys of one keyring.

    ``live_url``: the repository as clients see it; its versions count in the
    high-water mark too (``--check-live``). ``clock`` gives the current time.
    """

    def __init__(
        self,
        store: RepoStore,
        keyring: Keyring,
        *,
        live_url: str | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.live_url = live_url.rstrip("/") if live_url else None
        self._clock = clock

    def _time(self) -> datetime:
        return self._clock().replace(microsecond=0)

    # ------------------------------------------------------------------ init
    def init(
        self,
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
            TufRepoError: the directory already holds a repository, or bad options.
        """
        if self.store.exists():
            raise TufRepoError(f"{self.store.root} already holds a repository")
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

        root = Root(expires=self._expiry(policy, Root.type), consistent_snapshot=True)
        online, offline = keydir / "online", keydir / "offline"
        for d in (online, offline):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        keys: list[KeyFile] = []
        for role, count in (
            (Root.type, root_keys),
            ("targets", 1),
            ("snapshot", 1),
            ("timestamp", 1),
        ):
            for _ in range(count):
                home = online if role in ONLINE_TOP_ROLES else offline
                key = generate_key(home, role, passphrase)
                root.add_key(key.public, role)
                keys.append(key)
        root.roles[Root.type].threshold = root_threshold
        targets = Targets(expires=self._expiry(policy, Targets.type))
        bin_roles: dict[str, Metadata[Targets]] = {}
        if bins:
            bins_key = generate_key(online if online_bins else offline, BINS, passphrase)
            keys.append(bins_key)
            succinct = SuccinctRoles([bins_key.keyid], 1, bins.bit_length() - 1, BIN_PREFIX)
            targets.delegations = Delegations(
                keys={bins_key.keyid: bins_key.public}, succinct_roles=succinct
            )
            for name in succinct.get_roles():
                bin_roles[name] = Metadata(Targets(expires=self._expiry(policy, BINS)))

        self.keyring = Keyring([*keys], passphrase)
        self.store.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.store.targets_dir.mkdir(parents=True, exist_ok=True)
        self.store.write_policy(policy)
        changes: dict[str, Metadata[Any]] = {
            Root.type: Metadata(root),
            Targets.type: Metadata(targets),
            **bin_roles,
        }
        self._commit(changes, policy)
        return self.store.metadata_path(Root.type, 1)

    # ------------------------------------------------------------------ add
    def add_release(
        self, artifact: Path, channels: Iterable[str], rollout: tuple[Step, ...] | None = None
    ) -> AddResult:
        """Publish ``artifact`` as a target and list it in the signed release index.

        ``rollout``: the plan's steps, from the release time (default: every
        host at once).

        Raises:
            ReleaseError: the artifact is not a valid release.
            TufRepoError: the version exists with other bytes, or work is staged.
            SignaturesNeeded: the targets role needs more signatures (staged).
        """
        return self.publish_artifact(artifact, inspect_release(artifact), channels, rollout)

    def publish_artifact(
        self,
        artifact: Path,
        info: ReleaseInfo,
        channels: Iterable[str],
        rollout: tuple[Step, ...] | None = None,
    ) -> AddResult:
        """Sign and publish ``artifact`` as release ``info`` without inspecting its contents.

        ``add_release`` is the checked entry point; this one exists for mirrors
        that re-publish already inspected artifacts, and for tests that sign a
        hostile archive to prove that clients check what they install.

        Raises:
            TufRepoError: the version exists with other bytes, or work is staged.
            SignaturesNeeded: the targets role needs more signatures (staged).
        """
        self._refuse_if_staged()
        policy = self.store.read_policy()
        channel_list = sorted(set(channels)) or ["stable"]
        path = target_path(info.version)
        top = self.store.load(Targets.type)
        index = self._read_index(top)
        now = self._time()
        listed = next((e for e in index if e.version == info.version), None)
        entry = IndexEntry(
            info.version,
            path,
            tuple(channel_list),
            info.build_date,
            info.commit,
            # Publishing the same bytes again changes channels only: the release
            # keeps its release time, plan and withdrawal.
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
        if listed is not None and rollout is not None:
            raise TufRepoError(
                f"{info.version} is already published: change its plan with "
                f"`tuf-repo rollout {info.version} --plan SPEC`"
            )
        new_file = TargetFile.from_file(path, str(artifact), HASH_ALGORITHMS)
        new_file.unrecognized_fields["custom"] = target_custom(entry)

        changes: dict[str, Metadata[Any]] = {}
        role_md = self._editable_role_for(path, top, changes)
        existing = role_md.signed.targets.get(path)
        if existing is not None:
            if existing.hashes != new_file.hashes or existing.length != new_file.length:
                raise TufRepoError(
                    f"version {info.version} is already published with different bytes; "
                    "publish a new version instead"
                )
            if existing.unrecognized_fields.get("custom") == new_file.unrecognized_fields["custom"]:
                return AddResult(info.version, path, False, f"{path} is already published")
        role_md.signed.targets[path] = new_file
        index_bytes = self._stage_index(index, entry, top, changes)
        self.store.put_target(path, new_file.hashes["sha256"], artifact)
        self.store.put_target(INDEX_PATH, hashlib.sha256(index_bytes).hexdigest(), index_bytes)
        self._commit(changes, policy)
        verb = "updated channels of" if existing is not None else "published"
        plan = f"; rollout {entry.rollout.describe(now)}" if entry.rollout is not None else ""
        return AddResult(
            info.version, path, True, f"{verb} {path} ({', '.join(channel_list)}){plan}"
        )

    def _stage_index(
        self,
        index: list[IndexEntry],
        entry: IndexEntry,
        top: Metadata[Targets],
        changes: dict[str, Metadata[Any]],
    ) -> bytes:
        """The index with ``entry`` in place of its version, listed in the role that holds it."""
        index_bytes = render_index([e for e in index if e.version != entry.version] + [entry])
        index_md = self._editable_role_for(INDEX_PATH, top, changes)
        index_md.signed.targets[INDEX_PATH] = TargetFile(
            len(index_bytes), {"sha256": hashlib.sha256(index_bytes).hexdigest()}, INDEX_PATH
        )
        return index_bytes

    # ------------------------------------------------------------------ fleet
    def set_rollout(
        self,
        version: str,
        *,
        steps: tuple[Step, ...] | None = None,
        pause: bool = False,
        resume: bool = False,
    ) -> AddResult:
        """Give a release a new plan (kept from its start), or pause or resume it.

        A release published without a plan gets one that starts now.

        Raises:
            TufRepoError: the version is not published, or work is staged.
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

        return self._change_release(version, change)

    def withdraw(self, version: str, reason: str) -> AddResult:
        """Withdraw a release: it stays signed, but no host chooses it by itself.

        Raises:
            TufRepoError: the version is not published, the reason is too long,
                or work is staged.
            SignaturesNeeded: the targets role needs more signatures (staged).
        """
        if len(reason) > MAX_REASON:
            raise TufRepoError(f"--reason has at most {MAX_REASON} characters")
        return self._change_release(
            version, lambda entry, now: replace(entry, withdrawn=Withdrawal(reason, now))
        )

    def _change_release(
        self, version: str, change: Callable[[IndexEntry, datetime], IndexEntry]
    ) -> AddResult:
        """Re-sign a release's target and index entry as ``change`` rewrites them."""
        self._refuse_if_staged()
        policy = self.store.read_policy()
        top = self.store.load(Targets.type)
        index = self._read_index(top)
        entry = next((e for e in index if e.version == version), None)
        if entry is None:
            listed = ", ".join(e.version for e in index) or "none"
            raise TufRepoError(f"version {version} is not published (published: {listed})")
        now = self._time()
        new_entry = change(entry, now)
        changes: dict[str, Metadata[Any]] = {}
        role_md = self._editable_role_for(entry.target, top, changes)
        target = role_md.signed.targets.get(entry.target)
        if target is None:
            raise MetadataError(f"the index lists {entry.target}, which no role signs")
        target.unrecognized_fields["custom"] = target_custom(new_entry)
        index_bytes = self._stage_index(index, new_entry, top, changes)
        self.store.put_target(INDEX_PATH, hashlib.sha256(index_bytes).hexdigest(), index_bytes)
        self._commit(changes, policy)
        return AddResult(version, entry.target, True, describe_release(new_entry, now))

    def releases(self) -> list[IndexEntry]:
        """The published releases, oldest first, with their plans and withdrawals."""
        return self._read_index(self.store.load(Targets.type))

    def import_target_files(self, files: Iterable[TargetFile]) -> int:
        """Sign many existing targets in one publication (mirrors, migrations, benchmarks).

        The target files themselves must already be in place under ``targets/``;
        returns the number of roles re-signed.

        Raises:
            TufRepoError: work is staged.
            SignaturesNeeded: the targets role needs more signatures (staged).
        """
        self._refuse_if_staged()
        policy = self.store.read_policy()
        changes: dict[str, Metadata[Any]] = {}
        top = self.store.load(Targets.type)
        for target_file in files:
            if not is_safe_target_path(target_file.path):
                raise TufRepoError(f"unsafe target path {target_file.path!r}: no .., / or \\")
            self._editable_role_for(target_file.path, top, changes).signed.targets[
                target_file.path
            ] = target_file
        self._commit(changes, policy)
        return len(changes)

    def _editable_role_for(
        self, path: str, top: Metadata[Targets], changes: dict[str, Metadata[Any]]
    ) -> Metadata[Targets]:
        """The metadata (top-level targets or a hash bin) that lists ``path``, bumped once."""
        delegations = top.signed.delegations
        if delegations is not None and delegations.succinct_roles is not None:
            role = delegations.succinct_roles.get_role_for_target(path)
        else:
            role = Targets.type
        if role not in changes:
            changes[role] = self.store.load(role)
        return cast(Metadata[Targets], changes[role])

    def _read_index(self, top: Metadata[Targets]) -> list[IndexEntry]:
        delegations = top.signed.delegations
        if delegations is not None and delegations.succinct_roles is not None:
            holder = self.store.load(delegations.succinct_roles.get_role_for_target(INDEX_PATH))
        else:
            holder = top
        info = holder.signed.targets.get(INDEX_PATH)
        if info is None:
            return []
        path = self.store.target_file(INDEX_PATH, info.hashes["sha256"])
        try:
            with path.open("rb") as f:
                info.verify_length_and_hashes(f)
                f.seek(0)
                return parse_index(f.read())
        except (OSError, ValueError) as e:
            raise MetadataError(f"published release index {path} is missing or corrupt: {e}") from e

    # ------------------------------------------------------------------ sign
    def review(self, role: str) -> StagedReview:
        """What the staged ``role`` changes, the digest being signed, and its signatures.

        Raises:
            TufRepoError: nothing is staged for ``role``.
        """
        staged_changes = self._staged_changes()
        if role not in staged_changes:
            raise TufRepoError(f"nothing is staged for {role} (see `tuf-repo status`)")
        md = staged_changes[role]
        published = self.store.load(role) if self.store.published_version(role) else None
        return StagedReview(
            role=role,
            version=md.signed.version,
            digest=hashlib.sha256(md.signed_bytes).hexdigest(),
            changes=_describe_changes(role, published, md),
            signatures=self._check_signatures(role, md, staged_changes),
            status=self._signature_state(role, md, staged_changes),
        )

    def sign(self, role: str, key_path: Path, *, expect_digest: str | None = None) -> str:
        """Add the signature of the key in ``key_path`` to the staged ``role``.

        Signatures that no longer verify over the staged content (it changed
        after they were made) or are corrupt are dropped first, and reported.
        Publishes everything staged once every staged role meets its threshold.

        Raises:
            KeyFileError: the key is missing or is not a key of ``role``.
            TufRepoError: nothing is staged for ``role``, or the staged content's
                digest is not ``expect_digest``.
            SignaturesNeeded: more signatures are still needed.
        """
        key = read_key_file(key_path)
        review = self.review(role)
        if expect_digest is not None and expect_digest.lower() != review.digest:
            raise TufRepoError(
                f"staged {role} v{review.version} has digest {review.digest}, not the "
                f"{expect_digest} you were given: it changed; do not sign it"
            )
        staged_changes = self._staged_changes()
        staged = staged_changes[role]
        if key.keyid not in self._allowed_keyids(role, staged_changes):
            raise KeyFileError(f"key {key_path.name} ({key.keyid[:12]}) is not a key of {role}")
        dropped = _drop_bad_signatures(staged, review.bad_signatures)
        staged.sign(key.signer(self.keyring.passphrase), append=True)
        self.store.stage(role, staged)
        self.keyring = self.keyring.with_key(key)
        if not self._has_online_keys():
            missing = self._unverified(self._staged_changes())
            if missing:
                raise SignaturesNeeded(dropped + self._describe_missing(missing), sorted(missing))
            return (
                f"{dropped}signed {role}; every signature is there. The next "
                "`tuf-repo refresh` (or `tuf-repo sign` with --keys ONLINE-KEYS) publishes it."
            )
        try:
            published = self.publish_staged()
        except SignaturesNeeded as e:
            raise SignaturesNeeded(dropped + str(e), e.roles) from None
        return dropped + published

    def _has_online_keys(self) -> bool:
        root = cast(Root, self.store.load(Root.type).signed)
        return all(
            any(self.keyring.has(k) for k in root.roles[role].keyids) for role in ONLINE_TOP_ROLES
        )

    def publish_staged(self) -> str:
        """Publish the staged roles if all of them are signed to threshold.

        Raises:
            SignaturesNeeded: some staged role still lacks signatures.
            TufRepoError: nothing is staged, or publishing is refused (see _publish).
        """
        changes = self._staged_changes()
        if not changes:
            raise TufRepoError("nothing is staged")
        dropped = ""
        for role, md in changes.items():
            dropped += _drop_bad_signatures(md, self._bad_signatures(role, md, changes))
        missing = self._unverified(changes)
        if missing:
            raise SignaturesNeeded(dropped + self._describe_missing(missing), sorted(missing))
        self._publish(changes, self.store.read_policy())
        for role in changes:
            self.store.unstage(role)
        names = ", ".join(f"{r} v{changes[r].signed.version}" for r in changes)
        return f"{dropped}published {names}"

    def _staged_changes(self) -> dict[str, Metadata[Any]]:
        return {r: self.store.load_staged(r) for r in self.store.staged_roles()}

    def _allowed_keys(self, role: str, changes: dict[str, Metadata[Any]]) -> dict[str, Key]:
        """Keys whose signatures count for the new ``role`` (old and new root keys for root)."""
        if role == Root.type:
            new_root = cast(Root, changes[Root.type].signed)
            keys = {k: new_root.get_key(k) for k in new_root.roles[Root.type].keyids}
            if self.store.published_version(Root.type):
                old = cast(Root, self.store.load(Root.type).signed)
                keys.update({k: old.get_key(k) for k in old.roles[Root.type].keyids})
            return keys
        delegator = self._delegator(role, changes)
        delegated = delegator.get_delegated_role(role)
        return {k: delegator.get_key(k) for k in delegated.keyids}

    def _check_signatures(
        self, role: str, md: Metadata[Any], changes: dict[str, Metadata[Any]]
    ) -> list[SignatureCheck]:
        allowed = self._allowed_keys(role, changes)
        checks = []
        for keyid, signature in md.signatures.items():
            checks.append(
                SignatureCheck(keyid, _check_one_signature(allowed, keyid, signature, md))
            )
        return checks

    def _bad_signatures(
        self, role: str, md: Metadata[Any], changes: dict[str, Metadata[Any]]
    ) -> list[SignatureCheck]:
        return [c for c in self._check_signatures(role, md, changes) if c.state != "valid"]

    # ------------------------------------------------------------------ rotate
    def rotate(
        self,
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
            TufRepoError: unknown role, bad threshold, or work is staged.
            SignaturesNeeded: the new root needs more signatures from the old keys.
        """
        if threshold is not None and threshold < 1:
            raise TufRepoError(f"--threshold must be at least 1, got {threshold}")
        self._refuse_if_staged()
        policy = self.store.read_policy()
        root_md = self.store.load(Root.type)
        old_root = cast(Root, root_md.signed)
        new_root_md: Metadata[Root] = copy.deepcopy(root_md)
        new_root = new_root_md.signed
        changes: dict[str, Metadata[Any]] = {Root.type: new_root_md}

        if role == BINS:
            return self._rotate_bins(keydir, threshold, policy, changes, keep_retired_private)
        if role not in TOP_ROLES:
            raise TufRepoError(f"unknown role {role!r}: use one of {', '.join(TOP_ROLES)}, {BINS}")
        old_keyids = list(old_root.roles[role].keyids)
        new_threshold = threshold or old_root.roles[role].threshold
        count = max(new_threshold, len(old_keyids))
        for keyid in old_keyids:
            new_root.revoke_key(keyid, role)
        home = key_home(keydir, online=role in ONLINE_TOP_ROLES)
        for _ in range(count):
            key = generate_key(home, role, self.keyring.passphrase)
            new_root.add_key(key.public, role)
            self.keyring = self.keyring.with_key(key)
        new_root.roles[role].threshold = new_threshold
        if role == Targets.type:
            changes[Targets.type] = self.store.load(Targets.type)
        self._commit(changes, policy)
        retired = _retire_keys(keydir, old_keyids, keep_retired_private)
        return f"rotated {role}: {count} new key(s), threshold {new_threshold}{retired}"

    def add_key(self, role: str, key: KeyFile) -> str:
        """Authorise ``key`` for a top-level ``role``: a new root, signed as TUF requires.

        Raises:
            UsageError: unknown role.
            TufRepoError: the key is already the role's, or work is staged.
            KeyFileError: a key cannot sign (e.g. a wrong PIN): nothing is written.
            SignaturesNeeded: the new root needs more signatures (staged).
        """
        self._refuse_if_staged()
        root_md = self._editable_root(role)
        root = root_md.signed
        if key.keyid in root.roles[role].keyids:
            raise TufRepoError(f"{key.keyid[:12]} is already a {role} key")
        root.add_key(key.public, role)
        self.keyring = self.keyring.with_key(key)
        self._commit_key_change(role, root_md)
        keys = len(root.roles[role].keyids)
        return f"added {key.keyid[:12]} ({key.path.name}) to {role}: {keys} keys, threshold " + str(
            root.roles[role].threshold
        )

    def remove_key(self, role: str, keyid: str) -> str:
        """Take a key (by keyid or a unique prefix of it) away from ``role``.

        Raises:
            UsageError: unknown role, or no single key matches.
            TufRepoError: fewer keys than the threshold would remain, or work is staged.
            SignaturesNeeded: the new root needs more signatures (staged).
        """
        self._refuse_if_staged()
        root_md = self._editable_root(role)
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
        self._commit_key_change(role, root_md)
        return f"removed {matches[0][:12]} from {role}: {len(root.roles[role].keyids)} keys left"

    def _editable_root(self, role: str) -> Metadata[Root]:
        if role not in TOP_ROLES:
            raise UsageError(f"unknown role {role!r}: use one of {', '.join(TOP_ROLES)}")
        return copy.deepcopy(cast(Metadata[Root], self.store.load(Root.type)))

    def _commit_key_change(self, role: str, root_md: Metadata[Root]) -> None:
        """Publish a new root; re-sign the role's own metadata under its new keys."""
        changes: dict[str, Metadata[Any]] = {Root.type: root_md}
        if role == Targets.type:
            changes[Targets.type] = self.store.load(Targets.type)
        self._commit(changes, self.store.read_policy())

    def _rotate_bins(
        self,
        keydir: Path,
        threshold: int | None,
        policy: RepoPolicy,
        changes: dict[str, Metadata[Any]],
        keep_retired_private: bool,
    ) -> str:
        top = self.store.load(Targets.type)
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
            key = generate_key(home, BINS, self.keyring.passphrase)
            delegations.keys[key.keyid] = key.public
            succinct.keyids.append(key.keyid)
            self.keyring = self.keyring.with_key(key)
        succinct.threshold = new_threshold
        del changes[Root.type]
        changes[Targets.type] = top
        for name in succinct.get_roles():
            changes[name] = self.store.load(name)
        self._commit(changes, policy)
        retired = _retire_keys(keydir, old_keyids, keep_retired_private)
        return f"rotated {BINS}: {count} new key(s), threshold {new_threshold}{retired}"

    # ------------------------------------------------------------------ refresh
    def refresh(self, within_days: float | None = None) -> RefreshReport:
        """The daily heartbeat: keep the repository from lapsing, whatever is staged.

        1. Staged work that has all its signatures is published.
        2. Snapshot and timestamp (and online bins) due within the window are
           re-signed against the *published* top-level metadata, even while
           offline changes await signatures.
        3. An offline role that is due is re-signed when its keys are here,
           else staged for its holders (unless other work is already staged).

        The default window for a role is half its expiry period.
        """
        policy = self.store.read_policy()
        now = self._time()
        messages: list[str] = []
        published_staged = self._publish_staged_if_signed(messages)
        due = [role for role in self._all_roles() if self._is_due(role, policy, now, within_days)]
        staged_now = set(self.store.staged_roles())
        changes: dict[str, Metadata[Any]] = {}
        to_stage: dict[str, Metadata[Any]] = {}
        for role in due:
            if role in ONLINE_TOP_ROLES or role in staged_now:
                continue
            candidate = {role: self.store.load(role)}
            self._sign_changes(candidate, policy)
            if self._unverified(candidate) and not self._is_online(role, policy):
                if not staged_now:
                    to_stage.update(candidate)
            else:
                changes.update(candidate)
        missing_online = [r for r in self._unverified(changes) if self._is_online(r, policy)]
        if missing_online:
            raise KeyFileError(
                f"no key for the online role {missing_online[0]} in the key directory"
            )
        refreshed: list[str] = []
        if changes or any(r in ONLINE_TOP_ROLES for r in due):
            self._publish(changes, policy, heartbeat=True)
            refreshed = sorted(set(changes) | {Snapshot.type, Timestamp.type})
        for role, md in to_stage.items():
            self.store.stage(role, md)
        awaiting, expired = self._what_needs_people(policy, now, messages)
        return RefreshReport(refreshed, published_staged, awaiting, expired, messages)

    def _publish_staged_if_signed(self, messages: list[str]) -> list[str]:
        """Publish staged work that has every signature; the roles published."""
        staged = self.store.staged_roles()
        if not staged:
            return []
        try:
            messages.append(self.publish_staged())
        except SignaturesNeeded:
            return []  # reported with how long is left
        except TufRepoError as e:  # e.g. another offline role expired: the heartbeat goes on
            messages.append(f"staged work not published: {e}")
            return []
        return staged

    def _what_needs_people(
        self, policy: RepoPolicy, now: datetime, messages: list[str]
    ) -> tuple[list[StagedStatus], list[str]]:
        """Staged roles short of signatures, and offline roles already expired."""
        staged = self._staged_changes()
        awaiting = [self._signature_state(role, md, staged) for role, md in staged.items()]
        awaiting = [a for a in awaiting if a.have < a.need]
        for state in awaiting:
            published = (
                self.store.load(state.role) if self.store.published_version(state.role) else None
            )
            left = (published.signed.expires - now) if published is not None else None
            when = f"; the published {state.role} expires in {left.days} days" if left else ""
            messages.append(
                f"{state.role} v{state.version} awaits signatures: {state.have} of {state.need}"
                f"{when}. Holders run `tuf-repo sign --repo DIR --key KEYFILE {state.role}`."
            )
        expired = [
            role
            for role in self._all_roles()
            if not self._is_online(role, policy) and self.store.load(role).signed.expires <= now
        ]
        for role in expired:
            messages.append(
                f"{role} has EXPIRED: clients refuse the repository until it is signed "
                f"(tuf-repo sign ... {role})"
            )
        return awaiting, expired

    def _is_due(
        self, role: str, policy: RepoPolicy, now: datetime, within_days: float | None
    ) -> bool:
        days = within_days
        if days is None:
            days = policy.expiry_days[BINS if role.startswith(BIN_PREFIX) else role] / 2
        return bool(self.store.load(role).signed.expires <= now + timedelta(days=days))

    @staticmethod
    def _is_online(role: str, policy: RepoPolicy) -> bool:
        return role in ONLINE_TOP_ROLES or (role.startswith(BIN_PREFIX) and policy.online_bins)

    def _all_roles(self) -> list[str]:
        roles = list(TOP_ROLES)
        delegations = self.store.load(Targets.type).signed.delegations
        if delegations is not None and delegations.succinct_roles is not None:
            roles.extend(delegations.succinct_roles.get_roles())
        return roles

    # ------------------------------------------------------------------ status
    def status(self) -> RepoStatus:
        """Every role's version, expiry and signatures, what is staged, and what is urgent."""
        policy = self.store.read_policy()
        now = self._time()
        root = cast(Root, self.store.load(Root.type).signed)
        roles: list[RoleStatus] = []
        for role in TOP_ROLES:
            md = self.store.load(role)
            valid = self._check_signatures(role, md, {}) if role != Root.type else None
            signed = (
                sum(c.state == "valid" for c in valid)
                if valid is not None
                else sum(
                    _check_one_signature(self._allowed_keys(role, {Root.type: md}), k, s, md)
                    == "valid"
                    for k, s in md.signatures.items()
                )
            )
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
        bins = self._bin_summary(policy)
        staged = [self.review(role) for role in self.store.staged_roles()]
        warnings = []
        for r in roles:
            if r.expires <= now:
                warnings.append(f"{r.role} v{r.version} has EXPIRED: clients refuse the repository")
            elif r.role not in ONLINE_TOP_ROLES and self._is_due(r.role, policy, now, None):
                left = (r.expires - now).total_seconds() / 86400
                warnings.append(f"{r.role} expires in {left:.1f} days: it needs signing")
        if bins is not None and bins.earliest_expiry <= now:
            warnings.append("a hash bin has EXPIRED: clients cannot find the targets it lists")
        return RepoStatus(roles, staged, policy.bins, bins, warnings, self.releases())

    def _bin_summary(self, policy: RepoPolicy) -> BinSummary | None:
        names = [r for r in self._all_roles() if r.startswith(BIN_PREFIX)]
        if not names:
            return None
        mds = [self.store.load(n).signed for n in names]
        return BinSummary(
            count=len(names),
            min_version=min(m.version for m in mds),
            max_version=max(m.version for m in mds),
            earliest_expiry=min(m.expires for m in mds),
            online=policy.online_bins,
        )

    def export_root(self) -> Path:
        """The newest published root: the trust anchor to ship with new installations."""
        return self.store.metadata_path(Root.type, self.store.published_version(Root.type))

    # ------------------------------------------------------------------ internals
    def _refuse_if_staged(self) -> None:
        staged = self.store.staged_roles()
        if staged:
            raise TufRepoError(
                f"{', '.join(staged)} staged and awaiting signatures: finish with "
                "`tuf-repo sign` (see `tuf-repo status`) before changing the repository"
            )

    def _expiry(self, policy: RepoPolicy, role: str) -> datetime:
        key = BINS if role.startswith(BIN_PREFIX) else role
        return self._time() + timedelta(days=policy.expiry_days[key])

    def _sign_changes(self, changes: dict[str, Metadata[Any]], policy: RepoPolicy) -> None:
        """Bump version and expiry of ``changes`` and sign them with the keys at hand."""
        for role, md in changes.items():
            published = self.store.published_version(role)
            if published:
                md.signed.version = published + 1
            md.signed.expires = self._expiry(policy, role)
            md.signatures.clear()
        for role, md in changes.items():
            for signer in self._signers_for(role, changes):
                _sign(md, signer, role)

    def _commit(self, changes: dict[str, Metadata[Any]], policy: RepoPolicy) -> None:
        """Bump, sign and publish ``changes``; stage them when signatures are missing."""
        self._sign_changes(changes, policy)
        missing = self._unverified(changes)
        if missing:
            online = [role for role in missing if self._is_online(role, policy)]
            if online:
                raise KeyFileError(f"no key for the online role {online[0]} in the key directory")
            for role, md in changes.items():
                self.store.stage(role, md)
            raise SignaturesNeeded(self._describe_missing(missing), sorted(missing))
        self._publish(changes, policy)

    def _signers_for(self, role: str, changes: dict[str, Metadata[Any]]) -> list[Signer]:
        return self.keyring.signers(sorted(self._allowed_keyids(role, changes)))

    def _delegator(self, role: str, changes: dict[str, Metadata[Any]]) -> Root | Targets:
        """The metadata that delegates ``role``: top-level targets for a bin, else root.

        The version in ``changes`` wins over the published one, so a rotation's
        new keys count for the roles it re-signs.
        """
        name = Targets.type if role.startswith(BIN_PREFIX) else Root.type
        md = changes.get(name) or self.store.load(name)
        return cast(Root | Targets, md.signed)

    def _allowed_keyids(self, role: str, changes: dict[str, Metadata[Any]]) -> set[str]:
        return set(self._allowed_keys(role, changes))

    def _signature_state(
        self, role: str, md: Metadata[Any], changes: dict[str, Metadata[Any]]
    ) -> StagedStatus:
        """How far ``md`` is from its threshold (both old and new root for root).

        Only signatures that verify count; corrupt ones are ignored here (and
        reported by :meth:`review`).
        """
        allowed = self._allowed_keys(role, changes)
        md = copy.copy(md)
        md.signatures = {
            k: s
            for k, s in md.signatures.items()
            if _check_one_signature(allowed, k, s, md) == "valid"
        }
        if role == Root.type:
            previous = (
                cast(Root, self.store.load(Root.type).signed)
                if self.store.published_version(Root.type)
                else None
            )
            result = md.signed.get_root_verification_result(
                previous, md.signed_bytes, md.signatures
            )
            # The new root must meet the old root's threshold and its own;
            # report the part that is further from done.
            parts = [result.first] if previous is None else [result.first, result.second]
            need = max(r.threshold for r in parts)
            have = need - max(r.missing for r in parts)
            unsigned = sorted(set(result.unsigned) - set(result.signed))
        else:
            single = self._delegator(role, changes).get_verification_result(
                role, md.signed_bytes, md.signatures
            )
            have, need, unsigned = (
                min(len(single.signed), single.threshold),
                single.threshold,
                sorted(single.unsigned),
            )
        return StagedStatus(role, md.signed.version, have, need, unsigned if have < need else [])

    def _unverified(self, changes: dict[str, Metadata[Any]]) -> dict[str, StagedStatus]:
        states = {role: self._signature_state(role, md, changes) for role, md in changes.items()}
        return {role: st for role, st in states.items() if st.have < st.need}

    def _describe_missing(self, missing: dict[str, StagedStatus]) -> str:
        parts = [
            f"{role} v{st.version}: {st.have} of {st.need} signatures, not yet signed by "
            + ", ".join(k[:12] for k in st.missing_keyids)
            for role, st in sorted(missing.items())
        ]
        return (
            "staged, not published: "
            + "; ".join(parts)
            + ". Each key holder runs `tuf-repo sign --repo DIR --key KEYFILE ROLE`."
        )

    def _publish(
        self, changes: dict[str, Metadata[Any]], policy: RepoPolicy, *, heartbeat: bool = False
    ) -> None:
        """Publish ``changes`` with a new snapshot and timestamp.

        Everything is serialised and signed in memory first, so a missing online
        key changes nothing; then files are written in the order that keeps every
        published file's references valid: targets roles, snapshot, root, and
        timestamp last.

        Raises:
            TufRepoError: a published offline role that this leaves in force has
                expired (except for the ``heartbeat`` refresh, which must go on),
                or a version would not be above every version ever published.
        """
        if not heartbeat:
            self._refuse_expired(changes, policy)
        serialised = {role: self.store.serialise(md) for role, md in changes.items()}
        root = cast(Root, (changes.get(Root.type) or self.store.load(Root.type)).signed)

        snapshot_md = self._next_online(Snapshot.type, policy)
        for role, data in serialised.items():
            if role != Root.type:
                snapshot_md.signed.meta[f"{role}.json"] = _metafile(
                    changes[role].signed.version, data
                )
        self._sign_online(Snapshot.type, snapshot_md, root)
        snapshot_bytes = self.store.serialise(snapshot_md)

        timestamp_md = self._next_online(Timestamp.type, policy)
        timestamp_md.signed.snapshot_meta = _metafile(snapshot_md.signed.version, snapshot_bytes)
        self._sign_online(Timestamp.type, timestamp_md, root)

        versions = {role: md.signed.version for role, md in changes.items()}
        versions[Snapshot.type] = snapshot_md.signed.version
        versions[Timestamp.type] = timestamp_md.signed.version
        first_root = serialised.get(Root.type) if root.version == 1 else None
        high_water = HighWaterMark.for_root(
            first_root or self.store.metadata_path(Root.type, 1).read_bytes()
        )
        high_water.check(versions, self._live_versions() if self.live_url else None)

        for role, data in serialised.items():
            if role != Root.type:
                self.store.write(role, changes[role].signed.version, data)
        self.store.write(Snapshot.type, snapshot_md.signed.version, snapshot_bytes)
        if Root.type in serialised:
            self.store.write(Root.type, root.version, serialised[Root.type])
        self.store.write(
            Timestamp.type, timestamp_md.signed.version, self.store.serialise(timestamp_md)
        )
        high_water.record(versions)

    def _refuse_expired(self, changes: dict[str, Metadata[Any]], policy: RepoPolicy) -> None:
        """Refuse to publish on top of an expired offline role that stays in force."""
        now = self._time()
        for role in self._all_roles() if self.store.published_version(Root.type) else []:
            if role in changes or self._is_online(role, policy):
                continue
            md = self.store.load(role)
            if md.signed.expires <= now:
                raise TufRepoError(
                    f"{role} v{md.signed.version} expired on {md.signed.expires:%Y-%m-%d %H:%M} "
                    "UTC, so clients would refuse what this publishes. Renew it first: "
                    f"`tuf-repo refresh --repo {self.store.root} --keys KEYDIR` with the {role} "
                    f"key(s), then `tuf-repo sign --repo {self.store.root} --key KEYFILE {role}` "
                    "for any signature still missing."
                )

    def _live_versions(self) -> dict[str, int]:
        """Versions the live repository serves (``--check-live``): they count as published.

        Raises:
            TufRepoError: the live repository cannot be read.
        """
        base = f"{self.live_url}/metadata"
        timestamp = _fetch_json(f"{base}/timestamp.json")["signed"]
        snapshot_version = int(timestamp["meta"]["snapshot.json"]["version"])
        versions = {Timestamp.type: int(timestamp["version"]), Snapshot.type: snapshot_version}
        snapshot = _fetch_json(f"{base}/{snapshot_version}.snapshot.json")["signed"]
        for name, meta in snapshot["meta"].items():
            versions[name.removesuffix(".json")] = int(meta["version"])
        root_version = self.store.published_version(Root.type)
        while _exists(f"{base}/{root_version + 1}.root.json"):
            root_version += 1
        versions[Root.type] = root_version
        return versions

    def _next_online(self, role: str, policy: RepoPolicy) -> Metadata[Any]:
        if self.store.published_version(role):
            md = self.store.load(role)
            md.signed.version += 1
        elif role == Snapshot.type:
            md = Metadata(Snapshot())
        else:
            md = Metadata(Timestamp())
        md.signed.expires = self._expiry(policy, role)
        return md

    def _sign_online(self, role: str, md: Metadata[Any], root: Root) -> None:
        """Sign an online role to threshold.

        Raises:
            KeyFileError: the online keys are not in the key directory.
        """
        md.signatures.clear()
        for signer in self.keyring.signers(root.roles[role].keyids):
            _sign(md, signer, role)
        if not root.get_verification_result(role, md.signed_bytes, md.signatures):
            raise KeyFileError(
                f"the {role} key is not in the key directory: pass --keys with the online keys"
            )


def _sign(md: Metadata[Any], signer: Signer, role: str) -> None:
    """Add ``signer``'s signature; a signer that fails (a wrong PIN) is a KeyFileError.

    Raises:
        KeyFileError: naming the key, when the signer's back-end failed.
    """
    try:
        md.sign(signer, append=True)
    except UnsignedMetadataError as e:  # python-tuf wraps the signer's own error
        if isinstance(e.__cause__, KeyFileError):
            raise e.__cause__ from None
        raise KeyFileError(f"cannot sign {role}: {e.__cause__ or e}") from e


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


def _metafile(version: int, data: bytes) -> MetaFile:
    return MetaFile(
        version=version, length=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()}
    )


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


def _check_one_signature(
    allowed: dict[str, Key], keyid: str, signature: Signature, md: Metadata[Any]
) -> SignatureState:
    """Whether one signature on ``md`` counts, and if not, why."""
    if keyid not in allowed:
        return "not_a_key_of_the_role"
    try:
        if not signature.signature or bytes.fromhex(signature.signature) == b"":
            return "malformed"
    except ValueError:
        return "malformed"
    try:
        allowed[keyid].verify_signature(signature, md.signed_bytes)
    except UnverifiedSignatureError:
        return "invalid"
    except Exception:  # securesystemslib raises VerificationError and others for junk
        return "malformed"
    return "valid"


_WHY = {
    "invalid": "does not verify over the staged content (it changed after signing)",
    "malformed": "is corrupt (not a signature value)",
    "not_a_key_of_the_role": "is by a key that does not sign this role",
}


def _drop_bad_signatures(md: Metadata[Any], bad: list[SignatureCheck]) -> str:
    """Remove ``bad`` signatures from ``md``; returns what was dropped, for the signer."""
    lines = []
    for check in bad:
        md.signatures.pop(check.keyid, None)
        lines.append(f"dropped the signature of {check.keyid[:12]}: it {_WHY[check.state]}\n")
    return "".join(lines)


def _describe_changes(
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


def _root_changes(old: Root, new: Root) -> list[str]:
    lines = []
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
    return lines


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
