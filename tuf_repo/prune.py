"""Pruning: a repository run for years keeps what a client can still be sent, and no more.

Every publication adds a snapshot version, a version of each targets role it
changed (``metadata/N.<role>.json``) and a copy of the release index
(``targets/caio/<sha256>.index.json``); at the shipped cadence the snapshot is
re-signed four times a day and every hash bin every 45 days, so a repository
of 100,000 targets grows by 146 MB a year (``bench/repo_growth.py``) of files
no client asks for any more. ``tuf-repo prune`` removes them, and nothing else:

* every root version stays (clients walk the chain from the root they trust),
  and ``timestamp.json``, the snapshot it names and the roles that names;
* a version superseded less than ``keep`` ago stays, with every target its
  files list: a client, or a cache in front of the repository, holding a
  timestamp signed before the supersession is sent to them until that
  timestamp expires, so ``keep`` may not be shorter than its lifetime;
* a target that any kept or staged metadata lists stays (a release waiting
  for signatures has its artifact and index copy in place already).

When a version was superseded is what prune itself saw: the first run that
finds a version superseded writes the time to ``prune-ledger.json`` beside
the metadata (never served), on the publisher's clock, and a later run removes
it once ``keep`` has passed. A version is therefore kept at least ``keep``
after its supersession, however late the first run comes, and files' times
(which copies and restores change) are never trusted. It runs under the
writer lock, after the repair of an interrupted publication; it writes the
ledger before it removes anything and only removes files, so killed at any
point it leaves a repository clients read as before, and the next run
finishes the work.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from caio.core.files import atomic_write_json, fsync_dir
from caio.core.rollout import iso, parse_time
from tuf_repo.context import RepoContext
from tuf_repo.errors import MetadataError, TufRepoError
from tuf_repo.store import RepoStore

LEDGER_NAME = "prune-ledger.json"
_HASHED = re.compile(r"^(?P<sha256>[0-9a-f]{64})\.(?P<name>.+)$")
_NOT_TARGETS = frozenset({"root", "snapshot", "timestamp"})

RoleVersion = tuple[str, int]


@dataclass(frozen=True)
class PruneResult:
    removed: list[str]  # repository-relative paths, metadata first
    bytes: int
    waiting: int  # superseded versions kept until ``keep`` has passed
    dry_run: bool
    next_due: datetime | None = None  # when the first of them is old enough (publisher's clock)

    def describe(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        text = f"{verb} {len(self.removed)} files ({self.bytes:,} bytes)"
        if self.waiting:
            text += f"; {self.waiting} superseded metadata files kept until they are old enough"
        if self.next_due is not None:
            text += f" (the first on {self.next_due:%Y-%m-%d %H:%M} UTC)"
        return text


def prune(ctx: RepoContext, keep: timedelta, *, dry_run: bool = False) -> PruneResult:
    """Remove metadata superseded more than ``keep`` ago and targets nothing kept lists.

    Raises:
        TufRepoError: ``keep`` is shorter than the timestamp's lifetime.
        MetadataError: published or staged metadata cannot be read.
    """
    store = ctx.store
    lifetime = timedelta(days=store.read_policy().expiry_days["timestamp"])
    if keep < lifetime:
        raise TufRepoError(
            f"--keep-days {keep / timedelta(days=1):g} is shorter than the timestamp's lifetime "
            f"({lifetime / timedelta(days=1):g} days): a client holding a timestamp signed "
            "before a publication could be sent to files already removed"
        )
    now = ctx.now()
    timestamp = store.metadata_dir / "timestamp.json"
    try:
        expires = parse_time(str(_signed(timestamp)["expires"]))
    except (KeyError, ValueError) as e:
        raise MetadataError(f"{timestamp} has no readable expiry: {e}") from e
    if expires <= now:
        raise TufRepoError(
            f"the published timestamp expired at {expires:%Y-%m-%d %H:%M} UTC by this "
            f"machine's clock ({now:%Y-%m-%d %H:%M} UTC): refresh has not run, or the clock "
            "is wrong, and what is old enough to remove cannot be told. Nothing was removed."
        )
    present = store.metadata_versions()
    superseded = _superseded(store, present)
    ledger = _Ledger(store.root / LEDGER_NAME)
    seen = ledger.observe(superseded, now)
    if not dry_run:
        ledger.save(now)
    due = {rv for rv in superseded if now - seen[rv] >= keep}
    kept_snapshots = [v for role, v in present if role == "snapshot" and (role, v) not in due]
    needed = {rv for version in kept_snapshots for rv in _named(store, version)}
    gone = sorted(due - needed, key=lambda rv: (rv[0] != "snapshot", rv))  # snapshots first
    kept_meta = [rv for rv in present if rv not in gone]
    paths = [store.metadata_path(role, version) for role, version in gone]
    paths += _unlisted_targets(store, kept_meta)
    size = 0
    for path in paths:
        try:
            size += path.stat().st_size
            if not dry_run:
                path.unlink()
        except FileNotFoundError:
            continue
    if not dry_run and paths:
        for directory in {p.parent for p in paths}:
            fsync_dir(directory)
    later = [seen[rv] + keep for rv in superseded if rv not in due]
    return PruneResult(
        [store.relpath(p) for p in paths],
        size,
        len(superseded) - len(due),
        dry_run,
        min(later, default=None),
    )


@dataclass(frozen=True)
class Storage:
    """What the repository holds on disk, and when prune last ran (for ``status``)."""

    metadata_files: int
    metadata_bytes: int
    superseded: int  # metadata versions the published chain no longer leads to
    target_files: int
    target_bytes: int
    last_prune: datetime | None

    def describe(self) -> str:
        pruned = (
            f"prune last ran {self.last_prune:%Y-%m-%d %H:%M} UTC"
            if self.last_prune is not None
            else "prune has never run (tuf-repo prune, daily)"
        )
        return (
            f"storage: {self.metadata_files:,} metadata files ({_mb(self.metadata_bytes)}, "
            f"{self.superseded:,} superseded), {self.target_files:,} target files "
            f"({_mb(self.target_bytes)}); {pruned}"
        )


def storage(store: RepoStore) -> Storage:
    """Files and bytes under ``metadata/`` and ``targets/``, and the ledger's last run.

    Raises:
        MetadataError: the published chain cannot be read.
    """
    metadata = [p.stat().st_size for p in store.metadata_dir.iterdir() if p.is_file()]
    targets = (
        [p.stat().st_size for p in store.targets_dir.rglob("*") if p.is_file()]
        if store.targets_dir.is_dir()
        else []
    )
    return Storage(
        len(metadata),
        sum(metadata),
        len(_superseded(store, store.metadata_versions())),
        len(targets),
        sum(targets),
        _Ledger(store.root / LEDGER_NAME).last_run,
    )


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _superseded(store: RepoStore, present: list[RoleVersion]) -> set[RoleVersion]:
    """The versions in ``present`` older than the one the published chain leads to
    (every version of a role it no longer names); never a root."""
    current = _current(store)
    return {
        (role, version)
        for role, version in present
        if role not in ("root", "timestamp") and version < current.get(role, version + 1)
    }


def _current(store: RepoStore) -> dict[str, int]:
    """The version of each role that the published timestamp leads to."""
    timestamp = _signed(store.metadata_dir / "timestamp.json")
    snapshot = int(timestamp["meta"]["snapshot.json"]["version"])
    return {"snapshot": snapshot, **dict(_named(store, snapshot))}


def _named(store: RepoStore, snapshot: int) -> list[RoleVersion]:
    """The roles and versions snapshot version ``snapshot`` names."""
    meta = _signed(store.metadata_path("snapshot", snapshot))["meta"]
    return [(name.removesuffix(".json"), int(info["version"])) for name, info in meta.items()]


def _unlisted_targets(store: RepoStore, kept: list[RoleVersion]) -> list[Path]:
    """Target files (``<sha256>.<name>``) that no kept and no staged targets metadata lists."""
    documents = [
        store.metadata_path(role, version) for role, version in kept if role not in _NOT_TARGETS
    ]
    staged = store.staged_roles() + store.stale_staged_roles()
    documents += [store.staged_path(role) for role in staged if role not in _NOT_TARGETS]
    listed: set[tuple[str, str]] = set()
    for document in documents:
        for path, info in _signed(document).get("targets", {}).items():
            if isinstance(info, dict) and isinstance(info.get("hashes"), dict):
                listed.add((path, str(info["hashes"].get("sha256"))))
    unlisted = []
    if store.targets_dir.is_dir():
        for file in sorted(store.targets_dir.rglob("*")):
            m = _HASHED.match(file.name)
            if m is None or not file.is_file():
                continue  # only files stored by hash are ours to remove
            parent = file.parent.relative_to(store.targets_dir).as_posix()
            path = m["name"] if parent == "." else f"{parent}/{m['name']}"
            if (path, m["sha256"]) not in listed:
                unlisted.append(file)
    return unlisted


def _signed(path: Path) -> dict[str, Any]:
    """The ``signed`` part of a metadata file (the publisher's own; not verified again).

    Raises:
        MetadataError: missing or not metadata.
    """
    try:
        signed = json.loads(path.read_bytes())["signed"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise MetadataError(f"{path} cannot be read: {e}") from e
    if not isinstance(signed, dict):
        raise MetadataError(f"{path} is not metadata")
    return signed


class _Ledger:
    """When each superseded version was first seen superseded (``role/version``: time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            doc = {}
        except (OSError, ValueError) as e:
            raise MetadataError(
                f"{path} is corrupt: {e}. Remove it to start again: what is superseded is "
                "then kept another --keep-days"
            ) from e
        doc = doc if isinstance(doc, dict) else {}
        self.entries: dict[str, str] = doc.get("superseded", {})
        try:
            self.last_run: datetime | None = parse_time(str(doc["last_run"]))
        except (KeyError, ValueError):
            self.last_run = None

    def observe(self, superseded: set[RoleVersion], now: datetime) -> dict[RoleVersion, datetime]:
        """The first sighting of each of ``superseded`` (now, for new ones); forgets the rest.

        A sighting is never moved: after a clock went back it lies ahead of ``now``,
        which only keeps the version longer.
        """
        entries, seen = {}, {}
        for role, version in superseded:
            key = f"{role}/{version}"
            try:
                first = parse_time(self.entries[key])
            except (KeyError, ValueError, TypeError):
                first = now
            entries[key] = iso(first)
            seen[(role, version)] = first
        self.entries = entries
        return seen

    def save(self, now: datetime) -> None:
        superseded = dict(sorted(self.entries.items()))
        atomic_write_json(self.path, {"last_run": iso(now), "superseded": superseded})
