"""The repository on disk: published metadata, targets, staged metadata, policy.

::

    DIR/metadata/<v>.root.json, <v>.targets.json, <v>.snapshot.json,
                 <v>.bin-<n>.json, timestamp.json     (served; consistent snapshots)
    DIR/targets/<path-dir>/<sha256>.<name>            (served)
    DIR/staged/<role>.json                            (awaiting signatures; not served)
    DIR/tuf-repo.json                                 (expiry policy, hash bins; not served)
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuf.api.metadata import Metadata, Timestamp
from tuf.api.serialization import DeserializationError
from tuf.api.serialization.json import JSONSerializer

from tuf_repo.errors import MetadataError, TufRepoError
from tuf_repo.files import atomic_write_bytes, fsync_dir

DEFAULT_EXPIRY_DAYS = {"root": 365, "targets": 90, "snapshot": 7, "timestamp": 1, "bins": 90}
_VERSIONED = re.compile(r"^(?P<version>[1-9][0-9]*)\.(?P<role>.+)\.json$")
_SERIALIZER = JSONSerializer(compact=False)


@dataclass
class RepoPolicy:
    """What ``init`` decided and later commands follow."""

    expiry_days: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_EXPIRY_DAYS))
    bins: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"expiry_days": self.expiry_days, "bins": self.bins}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RepoPolicy:
        return cls(expiry_days={**DEFAULT_EXPIRY_DAYS, **data["expiry_days"]}, bins=data["bins"])


class RepoStore:
    """Reads and writes a repository directory; every write is atomic."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.metadata_dir = root / "metadata"
        self.targets_dir = root / "targets"
        self.staged_dir = root / "staged"
        self.policy_path = root / "tuf-repo.json"

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
        versions = [
            int(m["version"])
            for p in self.metadata_dir.glob(f"*.{role}.json")
            if (m := _VERSIONED.match(p.name)) and m["role"] == role
        ]
        return max(versions, default=0)

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

    def write(self, role: str, version: int, data: bytes) -> None:
        """Write serialised metadata as the published ``version`` of ``role``."""
        atomic_write_bytes(self.metadata_path(role, version), data)

    # staged metadata -------------------------------------------------------
    def staged_roles(self) -> list[str]:
        if not self.staged_dir.is_dir():
            return []
        return sorted(p.name.removesuffix(".json") for p in self.staged_dir.glob("*.json"))

    def load_staged(self, role: str) -> Metadata[Any]:
        path = self.staged_dir / f"{role}.json"
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
