"""The release contract shared by the publisher (``tuf_repo``) and the client (``caio``).

A release is ``caio-<version>.tar.gz`` with one top directory ``caio-<version>/``
holding ``manifest.json``, the ``caio/`` package and optionally ``wheels/``.
It is published as the TUF target ``caio/<version>/caio-<version>.tar.gz``,
and listed in the signed release index ``caio/index.json`` (format 1), which
the publisher renders and the client parses with the functions here.
Archives are read through :func:`open_release_archive`, which bounds what a
hostile archive can make the reader hold in memory, and every member must
pass :func:`check_member`.
"""

from __future__ import annotations

import json
import logging
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.version import InvalidVersion, Version

from caio.core.rollout import Rollout, Withdrawal

log = logging.getLogger(__name__)

PACKAGE = "caio"
INDEX_PATH = "caio/index.json"
INDEX_FORMAT = 1
ARTIFACT_RE = re.compile(r"^caio-(?P<version>[^/\\]+)\.tar\.gz$")
# PAX and GNU long-name headers are read whole into memory by tarfile: cap each one.
MAX_EXTENDED_HEADER = 64 * 1024
MAX_EXTENDED_TOTAL = 16 * 1024 * 1024  # tarfile keeps every member's PAX headers in memory
_EXTENDED_TYPES = frozenset(
    {
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
    }
)


class ArchiveRefused(ValueError):
    """A release archive breaks the contract (unsafe member, over a limit)."""


def artifact_name(version: str) -> str:
    return f"caio-{version}.tar.gz"


def top_directory(version: str) -> str:
    return f"caio-{version}"


def target_path(version: str) -> str:
    """The TUF target path of a release.

    Raises:
        InvalidVersion: ``version`` is not PEP 440.
    """
    Version(version)
    return f"{PACKAGE}/{version}/{artifact_name(version)}"


def is_safe_target_path(path: str) -> bool:
    """A relative POSIX path without ``..``, ``.``, empty parts or backslashes."""
    if not path or path.startswith("/") or "\\" in path or "\0" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses oversized extended headers before tarfile reads them into memory.

    ``_proc_member`` is the documented extension point of ``tarfile.TarInfo``
    (see the comment above it in CPython's tarfile.py).
    """

    def _proc_member(self, archive: tarfile.TarFile) -> Any:
        if self.type in _EXTENDED_TYPES:
            if self.size > MAX_EXTENDED_HEADER:
                raise tarfile.HeaderError(
                    f"extended header of {self.size} bytes (at most {MAX_EXTENDED_HEADER})"
                )
            budget = getattr(archive, "extended_budget", None)
            if budget is not None:
                budget.charge(self.size)
        return super()._proc_member(archive)  # type: ignore[misc]


class ExtendedHeaderBudget:
    """Counts extended-header bytes and headers against the archive's limits."""

    def __init__(self, max_bytes: int, max_headers: int) -> None:
        self.max_bytes = max_bytes
        self.max_headers = max_headers
        self.bytes = 0
        self.headers = 0

    def charge(self, size: int) -> None:
        self.bytes += size
        self.headers += 1
        if self.bytes > self.max_bytes or self.headers > self.max_headers:
            raise tarfile.HeaderError("extended headers exceed the archive's limits")


def open_release_archive(
    source: Path, *, max_extended_bytes: int, max_extended_headers: int
) -> tarfile.TarFile:
    """Open a release archive for reading with bounded extended headers: the gzip
    artifact, or (``.tar``) the uncompressed tar a verified delta made.

    Raises:
        tarfile.TarError: not a (gzip) tarball, or an extended header over the limits.
        OSError: the file cannot be read.
    """
    if source.suffix == ".tar":
        tar = tarfile.open(source, mode="r:", tarinfo=_BoundedTarInfo)  # noqa: SIM115 (returned)
    else:
        tar = tarfile.open(source, mode="r:gz", tarinfo=_BoundedTarInfo)  # noqa: SIM115
    tar.extended_budget = ExtendedHeaderBudget(  # type: ignore[attr-defined]
        min(max_extended_bytes, MAX_EXTENDED_TOTAL), max_extended_headers
    )
    return tar


def check_member(member: tarfile.TarInfo, top: str) -> None:
    """A member may only be a regular file or a directory under ``top``.

    Raises:
        ArchiveRefused: absolute path, ``..``, backslash, outside ``top``, a link,
            a device, a fifo or a sparse file.
    """
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith("/") or "\\" in name or ".." in parts:
        raise ArchiveRefused(f"unsafe path in archive: {name!r}")
    if not parts or parts[0] != top:
        raise ArchiveRefused(f"entry {name!r} is outside the top directory {top}/")
    if member.issym() or member.islnk():
        raise ArchiveRefused(f"links are not allowed: {name!r}")
    if not (member.isfile() or member.isdir()) or member.issparse():
        raise ArchiveRefused(f"devices and special files are not allowed: {name!r}")


@dataclass(frozen=True)
class IndexEntry:
    """One release of the signed index."""

    version: str
    target: str
    channels: tuple[str, ...]
    build_date: str = ""
    commit: str = ""
    released_at: str = ""  # when it was published (the rollout's start)
    rollout: Rollout | None = None  # None: every host at once
    withdrawn: Withdrawal | None = None

    @property
    def parsed_version(self) -> Version:
        return Version(self.version)

    def fleet_fields(self) -> dict[str, Any]:
        """The optional signed fields (release time, rollout, withdrawal) in wire form.

        Only fields that are set appear, so an index of releases without them
        keeps its bytes.
        """
        fields: dict[str, Any] = {}
        if self.released_at:
            fields["released_at"] = self.released_at
        if self.rollout is not None:
            fields["rollout"] = self.rollout.to_json()
        if self.withdrawn is not None:
            fields["withdrawn"] = self.withdrawn.to_json()
        return fields


def render_index(entries: list[IndexEntry]) -> bytes:
    """Deterministic bytes: releases sorted by version, keys sorted."""
    ordered = sorted(entries, key=lambda e: Version(e.version))
    doc = {
        "format": INDEX_FORMAT,
        "releases": [
            {
                "version": e.version,
                "target": e.target,
                "channels": list(e.channels),
                "build_date": e.build_date,
                "commit": e.commit,
                **e.fleet_fields(),
            }
            for e in ordered
        ],
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def parse_index(data: bytes, *, strict: bool = False) -> list[IndexEntry]:
    """The entries of an index (already verified by TUF); see :func:`read_index_report`.

    Raises:
        ValueError: not an index of a known format; with ``strict``, an entry
            breaks the contract.
    """
    return read_index_report(data, strict=strict).entries


@dataclass(frozen=True)
class IndexReport:
    """The entries a client can use, and why each other entry was skipped."""

    entries: list[IndexEntry]
    skipped: list[str]


def read_index_report(data: bytes, *, strict: bool = False) -> IndexReport:
    """The entries of an index, and the entries skipped.

    An entry that cannot be read (not an object, a field missing or of the
    wrong type), whose version is not PEP 440, that is not at its contract
    path ``caio/<version>/caio-<version>.tar.gz``, or whose rollout or
    withdrawal cannot be read, is skipped with a warning (``strict``:
    refused): nothing is installed from an entry the client does not fully
    understand, and one bad entry does not stop updates to the good ones.

    Raises:
        ValueError: not an index of a known format (or nested too deeply);
            with ``strict``, an entry breaks the contract.
    """
    try:
        doc = json.loads(data)
    except RecursionError as e:
        raise ValueError("release index is nested too deeply to be an index") from e
    except ValueError as e:
        raise ValueError(f"release index is not JSON: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"unknown index format {found!r}")
    listed = doc.get("releases")
    if not isinstance(listed, list):
        raise ValueError("release index is malformed: 'releases' is not a list")
    entries, skipped = [], []
    for number, item in enumerate(listed, start=1):
        entry, problem = _read_entry(item)
        if problem is None and entry is not None:
            entries.append(entry)
            continue
        problem = f"entry {number}: {problem}"
        if strict:
            raise ValueError(f"release index: {problem}")
        log.warning("release index: skipping %s", problem)
        skipped.append(problem)
    return IndexReport(entries, skipped)


def _read_entry(  # noqa: PLR0911 (one reason per way an entry can be unreadable)
    e: Any,
) -> tuple[IndexEntry | None, str | None]:
    """One index entry, or why it cannot be used."""
    if not isinstance(e, dict):
        return None, f"not an object but {type(e).__name__}"
    version, target, channels = e.get("version"), e.get("target"), e.get("channels")
    if not isinstance(version, str) or not isinstance(target, str):
        return None, "its version and target must be strings"
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        return None, f"{version}: its channels must be a list of names"
    optional = {k: e.get(k, "") for k in ("build_date", "commit", "released_at")}
    if not all(isinstance(v, str) for v in optional.values()):
        return None, f"{version}: build_date, commit and released_at must be strings"
    try:
        if target != target_path(version):
            return None, (
                f"{version} is listed at {target!r}, not at {target_path(version)!r}: "
                "an unsafe target path"
            )
    except InvalidVersion:
        return None, f"{version!r} is not a PEP 440 version"
    try:
        rollout = Rollout.from_json(e["rollout"]) if e.get("rollout") else None
        withdrawn = Withdrawal.from_json(e["withdrawn"]) if e.get("withdrawn") else None
    except (ValueError, TypeError, KeyError) as bad:
        return None, f"{version}: unreadable rollout or withdrawal ({bad})"
    entry = IndexEntry(
        version=version,
        target=target,
        channels=tuple(channels),
        build_date=optional["build_date"],
        commit=optional["commit"],
        released_at=optional["released_at"],
        rollout=rollout,
        withdrawn=withdrawn,
    )
    return entry, None


def target_custom(entry: IndexEntry) -> dict[str, Any]:
    """The signed custom metadata of a release target: ``{"caio": {...}}``.

    It says what the index entry says, so a client holding only the target
    (``caio-tuf-client``, a mirror) sees the same plan and withdrawal.
    """
    return {
        "caio": {
            "version": entry.version,
            "build_date": entry.build_date,
            "commit": entry.commit,
            "channels": list(entry.channels),
            **entry.fleet_fields(),
        }
    }


def entry_disagreement(entry: IndexEntry, custom: dict[str, Any] | None) -> list[str]:
    """The signed fields on which an index entry and its target's custom metadata differ.

    Both are written from one entry by the publisher; a difference means
    someone changed one of them alone (a withdrawal lifted in the index only,
    say). Hosts refuse such a release, and signers are told before they sign.
    """
    claimed = (custom or {}).get("caio")
    if not isinstance(claimed, dict):
        return ["caio (the target carries no release fields)"]
    expected = target_custom(entry)["caio"]
    return sorted(k for k in set(expected) | set(claimed) if expected.get(k) != claimed.get(k))


def signed_release_version(custom: dict[str, Any] | None) -> str | None:
    """The version a target's signed custom metadata claims, None when it claims none."""
    claimed = (custom or {}).get("caio", {})
    version = claimed.get("version") if isinstance(claimed, dict) else None
    return version if isinstance(version, str) else None
