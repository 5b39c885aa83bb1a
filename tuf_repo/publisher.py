"""Publishing operations on a repository: init, add, sign, rotate, refresh, status.

Every operation builds the new metadata in memory, signs it with the keys it
has, and then either publishes it (new files first, ``timestamp.json`` last,
each written atomically) or, when an offline role lacks signatures, stages it
under ``staged/`` for other key holders (``tuf-repo sign``). Snapshot and
timestamp are online roles: they are made fresh at every publication and
never staged.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from securesystemslib.signer import Signer
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

from tuf_repo.errors import KeyFileError, MetadataError, SignaturesNeeded, TufRepoError
from tuf_repo.index import INDEX_PATH, IndexEntry, parse_index, render_index
from tuf_repo.keys import KeyFile, Keyring, generate_key, read_key_file
from tuf_repo.release import ReleaseInfo, inspect_release, target_path
from tuf_repo.store import DEFAULT_EXPIRY_DAYS, RepoPolicy, RepoStore

TOP_ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)
OFFLINE_ROLES = (Root.type, Targets.type)
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


@dataclass(frozen=True)
class RepoStatus:
    roles: list[RoleStatus]
    staged: list[StagedStatus]
    bins: int


@dataclass(frozen=True)
class AddResult:
    version: str
    target: str
    changed: bool
    message: str


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Publisher:
    """Changes one repository directory using the keys of one keyring."""

    def __init__(self, store: RepoStore, keyring: Keyring) -> None:
        self.store = store
        self.keyring = keyring

    # ------------------------------------------------------------------ init
    def init(
        self,
        keydir: Path,
        *,
        root_keys: int = 3,
        root_threshold: int = 2,
        expiry_days: dict[str, float] | None = None,
        bins: int = 0,
        passphrase: str | None = None,
    ) -> Path:
        """Generate keys and publish root v1, targets, snapshot and timestamp.

        Returns the path of the trusted root to hand to clients.

        Raises:
            TufRepoError: the directory already holds a repository, or bad options.
        """
        if self.store.exists():
            raise TufRepoError(f"{self.store.root} already holds a repository")
        if not 1 <= root_threshold <= root_keys:
            raise TufRepoError("--root-threshold must be between 1 and --root-keys")
        if bins and (bins < 2 or bins & (bins - 1) or bins > 2**16):
            raise TufRepoError("--bins must be a power of two between 2 and 65536")
        policy = RepoPolicy(expiry_days={**DEFAULT_EXPIRY_DAYS, **(expiry_days or {})}, bins=bins)
        for role, days in policy.expiry_days.items():
            if role not in DEFAULT_EXPIRY_DAYS or days <= 0:
                raise TufRepoError(f"--expiry {role}={days}: unknown role or not positive")

        root = Root(expires=self._expiry(policy, Root.type), consistent_snapshot=True)
        keys: list[KeyFile] = []
        for role, count in (
            (Root.type, root_keys),
            ("targets", 1),
            ("snapshot", 1),
            ("timestamp", 1),
        ):
            for _ in range(count):
                key = generate_key(keydir, role, passphrase)
                root.add_key(key.public, role)
                keys.append(key)
        root.roles[Root.type].threshold = root_threshold
        targets = Targets(expires=self._expiry(policy, Targets.type))
        bin_roles: dict[str, Metadata[Targets]] = {}
        if bins:
            bins_key = generate_key(keydir, BINS, passphrase)
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
    def add_release(self, artifact: Path, channels: Iterable[str]) -> AddResult:
        """Publish ``artifact`` as a target and list it in the signed release index.

        Raises:
            ReleaseError: the artifact is not a valid release.
            TufRepoError: the version exists with other bytes, or work is staged.
            SignaturesNeeded: the targets role needs more signatures (staged).
        """
        return self.publish_artifact(artifact, inspect_release(artifact), channels)

    def publish_artifact(
        self, artifact: Path, info: ReleaseInfo, channels: Iterable[str]
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
        new_file = TargetFile.from_file(path, str(artifact), HASH_ALGORITHMS)
        new_file.unrecognized_fields["custom"] = {
            "caio": {
                "version": info.version,
                "build_date": info.build_date,
                "commit": info.commit,
                "channels": channel_list,
            }
        }

        changes: dict[str, Metadata[Any]] = {}
        top = self.store.load(Targets.type)
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

        entries = [e for e in self._read_index(top) if e.version != info.version]
        entries.append(IndexEntry(info.version, path, channel_list, info.build_date, info.commit))
        index_bytes = render_index(entries)
        index_md = self._editable_role_for(INDEX_PATH, top, changes)
        index_md.signed.targets[INDEX_PATH] = TargetFile(
            len(index_bytes), {"sha256": hashlib.sha256(index_bytes).hexdigest()}, INDEX_PATH
        )

        self.store.put_target(path, new_file.hashes["sha256"], artifact)
        self.store.put_target(INDEX_PATH, hashlib.sha256(index_bytes).hexdigest(), index_bytes)
        self._commit(changes, policy)
        verb = "updated channels of" if existing is not None else "published"
        return AddResult(info.version, path, True, f"{verb} {path} ({', '.join(channel_list)})")

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
    def sign(self, role: str, key_path: Path) -> str:
        """Add the signature of the key in ``key_path`` to the staged ``role``.

        Publishes everything staged once every staged role meets its threshold.

        Raises:
            KeyFileError: the key is missing or is not a key of ``role``.
            TufRepoError: nothing is staged for ``role``.
            SignaturesNeeded: more signatures are still needed.
        """
        key = read_key_file(key_path)
        staged_changes = {r: self.store.load_staged(r) for r in self.store.staged_roles()}
        if role not in staged_changes:
            raise TufRepoError(f"nothing is staged for {role} (see `tuf-repo status`)")
        staged = staged_changes[role]
        if key.keyid not in self._allowed_keyids(role, staged_changes):
            raise KeyFileError(f"key {key_path.name} ({key.keyid[:12]}) is not a key of {role}")
        staged.sign(key.signer(self.keyring.passphrase), append=True)
        self.store.stage(role, staged)
        self.keyring = self.keyring.with_key(key)
        return self.publish_staged()

    def publish_staged(self) -> str:
        """Publish the staged roles if all of them are signed to threshold.

        Raises:
            SignaturesNeeded: some staged role still lacks signatures.
        """
        roles = self.store.staged_roles()
        if not roles:
            raise TufRepoError("nothing is staged")
        changes = {role: self.store.load_staged(role) for role in roles}
        missing = self._unverified(changes)
        if missing:
            raise SignaturesNeeded(self._describe_missing(missing), sorted(missing))
        policy = self.store.read_policy()
        self._publish(changes, policy)
        for role in roles:
            self.store.unstage(role)
        return f"published {', '.join(f'{r} v{changes[r].signed.version}' for r in roles)}"

    # ------------------------------------------------------------------ rotate
    def rotate(self, role: str, keydir: Path, threshold: int | None = None) -> str:
        """Replace every key of ``role`` with new ones; a new root announces them.

        Raises:
            TufRepoError: unknown role, bad threshold, or work is staged.
            SignaturesNeeded: the new root needs more signatures from the old keys.
        """
        self._refuse_if_staged()
        policy = self.store.read_policy()
        root_md = self.store.load(Root.type)
        old_root = cast(Root, root_md.signed)
        new_root_md: Metadata[Root] = copy.deepcopy(root_md)
        new_root = new_root_md.signed
        changes: dict[str, Metadata[Any]] = {Root.type: new_root_md}

        if role == BINS:
            return self._rotate_bins(keydir, threshold, policy, changes)
        if role not in TOP_ROLES:
            raise TufRepoError(f"unknown role {role!r}: use one of {', '.join(TOP_ROLES)}, {BINS}")
        old_keyids = list(old_root.roles[role].keyids)
        new_threshold = threshold or old_root.roles[role].threshold
        count = max(new_threshold, len(old_keyids))
        if new_threshold < 1:
            raise TufRepoError("--threshold must be at least 1")
        for keyid in old_keyids:
            new_root.revoke_key(keyid, role)
        for _ in range(count):
            key = generate_key(keydir, role, self.keyring.passphrase)
            new_root.add_key(key.public, role)
            self.keyring = self.keyring.with_key(key)
        new_root.roles[role].threshold = new_threshold
        if role == Targets.type:
            changes[Targets.type] = self.store.load(Targets.type)
        self._commit(changes, policy)
        retired = _retire_keys(keydir, old_keyids)
        return f"rotated {role}: {count} new key(s), threshold {new_threshold}{retired}"

    def _rotate_bins(
        self,
        keydir: Path,
        threshold: int | None,
        policy: RepoPolicy,
        changes: dict[str, Metadata[Any]],
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
        for _ in range(count):
            key = generate_key(keydir, BINS, self.keyring.passphrase)
            delegations.keys[key.keyid] = key.public
            succinct.keyids.append(key.keyid)
            self.keyring = self.keyring.with_key(key)
        succinct.threshold = new_threshold
        del changes[Root.type]
        changes[Targets.type] = top
        for name in succinct.get_roles():
            changes[name] = self.store.load(name)
        self._commit(changes, policy)
        retired = _retire_keys(keydir, old_keyids)
        return f"rotated {BINS}: {count} new key(s), threshold {new_threshold}{retired}"

    # ------------------------------------------------------------------ refresh
    def refresh(self, within_days: float | None = None) -> list[str]:
        """Re-sign every role that expires within the window.

        The default window for a role is half its expiry period. Returns the
        refreshed roles (empty when nothing was needed).

        Raises:
            SignaturesNeeded: an offline role needs signatures (staged).
        """
        self._refuse_if_staged()
        policy = self.store.read_policy()
        now = _now()
        due: list[str] = []
        for role in self._all_roles():
            days = within_days
            if days is None:
                days = policy.expiry_days[BINS if role.startswith(BIN_PREFIX) else role] / 2
            if self.store.load(role).signed.expires <= now + timedelta(days=days):
                due.append(role)
        if not due:
            return []
        changes: dict[str, Metadata[Any]] = {
            role: self.store.load(role)
            for role in due
            if role not in (Snapshot.type, Timestamp.type)
        }
        self._commit(changes, policy)
        return due

    def _all_roles(self) -> list[str]:
        roles = list(TOP_ROLES)
        delegations = self.store.load(Targets.type).signed.delegations
        if delegations is not None and delegations.succinct_roles is not None:
            roles.extend(delegations.succinct_roles.get_roles())
        return roles

    # ------------------------------------------------------------------ status
    def status(self) -> RepoStatus:
        """Every published role's version, expiry and signatures, and what is staged."""
        policy = self.store.read_policy()
        root = cast(Root, self.store.load(Root.type).signed)
        roles: list[RoleStatus] = []
        for role in TOP_ROLES:
            md = self.store.load(role)
            result = root.get_verification_result(role, md.signed_bytes, md.signatures)
            roles.append(
                RoleStatus(
                    role,
                    md.signed.version,
                    md.signed.expires,
                    root.roles[role].threshold,
                    len(root.roles[role].keyids),
                    len(result.signed),
                )
            )
        staged: list[StagedStatus] = []
        if self.store.staged_roles():
            changes = {r: self.store.load_staged(r) for r in self.store.staged_roles()}
            staged = [self._signature_state(role, md, changes) for role, md in changes.items()]
        return RepoStatus(roles, staged, policy.bins)

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
        return _now() + timedelta(days=policy.expiry_days[key])

    def _commit(self, changes: dict[str, Metadata[Any]], policy: RepoPolicy) -> None:
        """Bump, sign and publish ``changes``; stage them when signatures are missing."""
        for role, md in changes.items():
            published = self.store.published_version(role)
            if published:
                md.signed.version = published + 1
            md.signed.expires = self._expiry(policy, role)
            md.signatures.clear()
        for role, md in changes.items():
            for signer in self._signers_for(role, changes):
                md.sign(signer, append=True)
        missing = self._unverified(changes)
        if missing:
            online = [role for role in missing if role not in OFFLINE_ROLES]
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
        """Keys whose signatures count for the new ``role`` (old and new root keys for root)."""
        if role == Root.type:
            keyids = set(changes[Root.type].signed.roles[Root.type].keyids)
            if self.store.published_version(Root.type):
                keyids |= set(self.store.load(Root.type).signed.roles[Root.type].keyids)
            return keyids
        return set(self._delegator(role, changes).get_delegated_role(role).keyids)

    def _signature_state(
        self, role: str, md: Metadata[Any], changes: dict[str, Metadata[Any]]
    ) -> StagedStatus:
        """How far ``md`` is from its threshold (both old and new root for root)."""
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

    def _publish(self, changes: dict[str, Metadata[Any]], policy: RepoPolicy) -> None:
        """Publish ``changes`` with a new snapshot and timestamp.

        Everything is serialised and signed in memory first, so a missing online
        key changes nothing; then files are written in the order that keeps every
        published file's references valid: targets roles, snapshot, root, and
        timestamp last.
        """
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

        for role, data in serialised.items():
            if role != Root.type:
                self.store.write(role, changes[role].signed.version, data)
        self.store.write(Snapshot.type, snapshot_md.signed.version, snapshot_bytes)
        if Root.type in serialised:
            self.store.write(Root.type, root.version, serialised[Root.type])
        self.store.write(
            Timestamp.type, timestamp_md.signed.version, self.store.serialise(timestamp_md)
        )

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
            md.sign(signer, append=True)
        if not root.get_verification_result(role, md.signed_bytes, md.signatures):
            raise KeyFileError(
                f"the {role} key is not in the key directory: pass --keys with the online keys"
            )


def _metafile(version: int, data: bytes) -> MetaFile:
    return MetaFile(
        version=version, length=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()}
    )


def _retire_keys(keydir: Path, keyids: Iterable[str]) -> str:
    """Move the key files of ``keyids`` to ``keydir/retired/`` once they no longer sign."""
    wanted = set(keyids)
    moved = 0
    for path in sorted(keydir.glob("*.json")):
        try:
            key = read_key_file(path)
        except KeyFileError:
            continue
        if key.keyid in wanted:
            (keydir / "retired").mkdir(mode=0o700, exist_ok=True)
            path.replace(keydir / "retired" / path.name)
            moved += 1
    return f"; {moved} old key file(s) moved to {keydir / 'retired'}" if moved else ""
