"""The repository on disk: published metadata, targets, staged metadata, policy.

::

    DIR/metadata/<v>.root.json, <v>.targets.json, <v>.snapshot.json,
                 <v>.bin-<n>.json, timestamp.json     (served; consistent snapshots)
    DIR/targets/<path-dir>/<sha256>.<name>            (served)
    DIR/staged/<role>.json, groups.json               (awaiting signatures; not served)
    DIR/tuf-repo.json                                 (expiry policy, hash bins; not served)
    DIR/heartbeat.json                                (when refresh last ran; not served)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuf.api.metadata import Metadata, Timestamp
from tuf.api.serialization import DeserializationError
from tuf.api.serialization.json import JSONSerializer

from caio.core.files import atomic_write_bytes, fsync_dir
from tuf_repo.errors import MetadataError, TufRepoError

DEFAULT_EXPIRY_DAYS = {"root": 365, "targets": 90, "snapshot": 7, "timestamp": 1, "bins": 90}
_VERSIONED = re.compile(r"^(?P<version>[1-9][0-9]*)\.(?P<role>.+)\.json$")
_SERIALIZER = JSONSerializer(compact=False)
GROUPS_FILE = "groups.json"


@dataclass
class RepoPolicy:
    """What ``init`` decided and later commands follow.

    ``online_bins``: the hash bins are signed by a key kept with the online
    keys (PyPI's trade-off for high publish rates: an online key compromise
    can then ship code). Off by default: bins are signed by the offline
    release key.
    """

    expiry_days: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_EXPIRY_DAYS))
    bins: int = 0
    online_bins: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"expiry_days": self.expiry_days, "bins": self.bins, "online_bins": self.online_bins}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RepoPolicy:
        return cls(
            expiry_days={**DEFAULT_EXPIRY_DAYS, **data["expiry_days"]},
            bins=data["bins"],
            online_bins=bool(data.get("online_bins", False)),
        )


STATE_ENV = "TUF_REPO_STATE_DIR"


def state_dir() -> Path:
    """Where tuf-repo keeps what must outlive a repository directory (high-water marks)."""
    if env := os.environ.get(STATE_ENV):
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tuf-repo"


class HighWaterMark:
    """The highest version of every role ever published for one repository.

    Kept outside the repository directory (``$TUF_REPO_STATE_DIR``), keyed by
    the repository's identity (the hash of its first root), so a repository
    restored from a backup cannot re-publish versions that clients have
    already seen: they would reject them as a rollback, or silently keep a
    stale view.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_root(cls, first_root: bytes) -> HighWaterMark:
        identity = hashlib.sha256(first_root).hexdigest()[:24]
        return cls(state_dir() / f"{identity}.json")

    def load(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_bytes())
            return {str(k): int(v) for k, v in data["versions"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise MetadataError(f"high-water mark {self.path} is corrupt: {e}") from e

    def check(self, versions: dict[str, int], seen: dict[str, int] | None = None) -> None:
        """Raises TufRepoError when a version is at or below one ever published."""
        marks = self.load()
        for role, version in (seen or {}).items():
            marks[role] = max(marks.get(role, 0), version)
        stale = {r: (v, marks[r]) for r, v in versions.items() if v <= marks.get(r, 0)}
        if stale:
            detail = ", ".join(f"{r} v{v} (v{m} was published)" for r, (v, m) in stale.items())
            raise TufRepoError(
                f"refusing to publish {detail}: this repository is older than what clients "
                "have seen (restored from a backup, or a stale copy). Copy the live "
                "metadata/ and targets/ back into it first; see the README, 'Restoring "
                "a repository'."
            )

    def record(self, versions: dict[str, int]) -> None:
        marks = self.load()
        for role, version in versions.items():
            marks[role] = max(marks.get(role, 0), version)
        atomic_write_bytes(
            self.path, (json.dumps({"versions": marks}, indent=2) + "\n").encode(), mode=0o600
        )


class RepoStore:
    """Reads and writes a repository directory; every write is atomic."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.metadata_dir = root / "metadata"
        self.targets_dir = root / "targets"
        self.staged_dir = root / "staged"
        self.policy_path = root / "tuf-repo.json"
        self.heartbeat_path = root / "heartbeat.json"
        self._listing: tuple[int, dict[str, int]] | None = None

    def relpath(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def exists(self) -> bool:
        return self.policy_path.exists() or any(self.metadata_dir.glob("*.json"))

    def require(self) -> None:
        """Raises: TufRepoError: DIR is not an initialised repository."""
        if not self.policy_path.is_file():
            raise TufRepoError(f"{self.root} is not a tuf-repo repository (run `tuf-repo init`)")

    # policy ---------------------------------------------------------------
    def read_policy(self) -> RepoPolicy:
        self.require()
        try:
            return RepoPolicy.from_dict(json.loads(self.policy_path.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise MetadataError(f"{self.policy_path} is corrupt: {e}") from e

    def write_policy(self, policy: RepoPolicy) -> None:
        text = json.dumps(policy.to_dict(), indent=2, sort_keys=True) + "\n"
        atomic_write_bytes(self.policy_path, text.encode())

    # published metadata ----------------------------------------------------
    def published_version(self, role: str) -> int:
        """The newest published version of ``role``, 0 when none is."""
        if role == Timestamp.type:
            path = self.metadata_dir / "timestamp.json"
            return self.load(role).signed.version if path.exists() else 0
        return self._newest_versions().get(role, 0)

    def _newest_versions(self) -> dict[str, int]:
        """The newest version of each role in ``metadata/``, one listing per change of it.

        A repository run for years holds thousands of snapshot versions, and a
        command asks for versions dozens of times. The listing is kept while
        the directory's modification time stays the same, and forgotten after
        every write of ours (:meth:`forget_listing`).
        """
        try:
            stamp = self.metadata_dir.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        if self._listing is not None and self._listing[0] == stamp:
            return self._listing[1]
        newest: dict[str, int] = {}
        for name in os.listdir(self.metadata_dir):
            if (m := _VERSIONED.match(name)) is not None:
                version = int(m["version"])
                if version > newest.get(m["role"], 0):
                    newest[m["role"]] = version
        self._listing = (stamp, newest)
        return newest

    def metadata_versions(self) -> list[tuple[str, int]]:
        """Every versioned file in ``metadata/`` as (role, version), sorted (not cached)."""
        found = []
        for name in os.listdir(self.metadata_dir):
            if (m := _VERSIONED.match(name)) is not None:
                found.append((m["role"], int(m["version"])))
        return sorted(found)

    def forget_listing(self) -> None:
        self._listing = None

    def metadata_path(self, role: str, version: int) -> Path:
        if role == Timestamp.type:
            return self.metadata_dir / "timestamp.json"
        return self.metadata_dir / f"{version}.{role}.json"

    def load(self, role: str, version: int | None = None) -> Metadata[Any]:
        """The published metadata of ``role`` (newest unless ``version`` is given).

        Raises:
            MetadataError: missing or corrupt.
        """
        if version is None and role != Timestamp.type:
            version = self.published_version(role)
            if version == 0:
                raise MetadataError(f"no published {role} metadata in {self.metadata_dir}")
        path = self.metadata_path(role, version or 0)
        return _read(path, role)

    @staticmethod
    def serialise(md: Metadata[Any]) -> bytes:
        return md.to_bytes(_SERIALIZER)

    # staged metadata -------------------------------------------------------
    def staged_roles(self) -> list[str]:
        """Roles staged at a version above the published one (awaiting signatures)."""
        return [role for role in self._staged_files() if not self._is_stale(role)]

    def stale_staged_roles(self) -> list[str]:
        """Staged files at or below the published version: already published, to forget.

        Left by a crash between publishing and unstaging (an older tuf-repo), or
        seen by a reader while a publication is under way.
        """
        return [role for role in self._staged_files() if self._is_stale(role)]

    def _staged_files(self) -> list[str]:
        if not self.staged_dir.is_dir():
            return []
        return sorted(
            p.name.removesuffix(".json")
            for p in self.staged_dir.glob("*.json")
            if p.name != GROUPS_FILE
        )

    def _is_stale(self, role: str) -> bool:
        try:
            version = int(json.loads(self.staged_path(role).read_bytes())["signed"]["version"])
        except (OSError, ValueError, KeyError, TypeError):
            return False  # unreadable: load_staged says why
        return version <= self.published_version(role)

    def read_staged_groups(self) -> list[list[str]]:
        """The groups of staged roles that publish together, as last written ([] if none).

        Raises:
            MetadataError: the file is corrupt.
        """
        path = self.staged_dir / GROUPS_FILE
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            raise MetadataError(f"{path} is corrupt: {e}") from e
        groups = data.get("groups") if isinstance(data, dict) else None
        if not isinstance(groups, list) or not all(
            isinstance(g, list) and all(isinstance(r, str) for r in g) for g in groups
        ):
            raise MetadataError(f"{path} is corrupt: no list of groups of role names")
        return groups

    @staticmethod
    def render_staged_groups(groups: list[list[str]]) -> bytes:
        return (json.dumps({"groups": groups}, indent=2, sort_keys=True) + "\n").encode()

    def write_staged_groups(self, groups: list[list[str]]) -> None:
        atomic_write_bytes(self.staged_dir / GROUPS_FILE, self.render_staged_groups(groups))

    def staged_path(self, role: str) -> Path:
        return self.staged_dir / f"{role}.json"

    def load_staged(self, role: str) -> Metadata[Any]:
        path = self.staged_path(role)
        if not path.exists():
            raise TufRepoError(f"nothing is staged for {role}")
        return _read(path, role)

    def stage(self, role: str, md: Metadata[Any]) -> None:
        atomic_write_bytes(self.staged_dir / f"{role}.json", self.serialise(md))

    def unstage(self, role: str) -> None:
        (self.staged_dir / f"{role}.json").unlink(missing_ok=True)

    # targets ---------------------------------------------------------------
    def target_file(self, path: str, sha256: str) -> Path:
        """Where a target with this path and hash is stored (consistent-snapshot name)."""
        dirname, _, basename = path.rpartition("/")
        return self.targets_dir / dirname / f"{sha256}.{basename}"

    def put_target(self, path: str, sha256: str, source: Path | bytes) -> None:
        dest = self.target_file(path, sha256)
        if dest.exists():
            return
        if isinstance(source, bytes):
            atomic_write_bytes(dest, source)
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(dest)
        fsync_dir(dest.parent)


def _read(path: Path, role: str) -> Metadata[Any]:
    try:
        md = Metadata.from_bytes(path.read_bytes())
    except FileNotFoundError as e:
        raise MetadataError(f"{role} metadata not found: {path}") from e
    except (OSError, DeserializationError) as e:
        raise MetadataError(f"{path} is corrupt: {e}") from e
    expected = role if role in ("root", "snapshot", "timestamp") else "targets"
    if md.signed.type != expected:
        raise MetadataError(f"{path} holds {md.signed.type} metadata, expected {role}")
    return md
