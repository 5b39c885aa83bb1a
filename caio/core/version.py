"""What version is running: manifest first, then package metadata, git, and defaults."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from caio.core.manifest import Manifest

DISTRIBUTION = "caio"
FALLBACK_VERSION = "0.0.0+unknown"
UNKNOWN_COMMIT = "unknown"


@dataclass(frozen=True)
class VersionInfo:
    """The identity of the running CAIO, as ``GET /api/v1/version`` reports it."""

    version: str
    build_date: datetime
    commit: str


GitRunner = Callable[[list[str], Path], str | None]


def run_git(args: list[str], cwd: Path) -> str | None:
    """Return git's stripped output, or None when git or the repository is absent."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and out else None


def resolve_version_info(
    manifest: Manifest | None,
    *,
    source_dir: Path,
    env: Mapping[str, str] = os.environ,
    git: GitRunner = run_git,
    distribution: str = DISTRIBUTION,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> VersionInfo:
    """Resolve each field through its documented fallback chain.

    version:    manifest → installed package metadata → FALLBACK_VERSION
    build_date: manifest → git commit date (a checkout: the same date ``tuf-repo
                build`` stamps on a release of it) → package metadata (install
                time of the distribution) → now
    commit:     manifest → $CAIO_COMMIT → ``git rev-parse HEAD`` → "unknown"
    """
    dist = _distribution(distribution)

    if manifest is not None:
        version = manifest.version
    elif dist is not None:
        version = dist.version
    else:
        version = FALLBACK_VERSION

    build_date = manifest.build_date if manifest is not None else None
    if build_date is None:
        stamp = git(["log", "-1", "--format=%cI"], source_dir)
        build_date = datetime.fromisoformat(stamp) if stamp else None
    if build_date is None and dist is not None:
        build_date = _installed_at(dist)
    if build_date is None:
        build_date = now()

    commit = manifest.commit if manifest is not None else None
    commit = commit or env.get("CAIO_COMMIT") or git(["rev-parse", "HEAD"], source_dir)
    return VersionInfo(
        version=version,
        build_date=build_date.astimezone(UTC),
        commit=commit or UNKNOWN_COMMIT,
    )


def _distribution(name: str) -> importlib.metadata.Distribution | None:
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _installed_at(dist: importlib.metadata.Distribution) -> datetime | None:
    """The time the distribution's metadata was written (its build/install time)."""
    files = dist.files or []
    for file in files:
        if file.name in ("METADATA", "PKG-INFO"):
            try:
                mtime = Path(str(dist.locate_file(file))).stat().st_mtime
            except OSError:
                return None
            return datetime.fromtimestamp(mtime, UTC)
    return None
