"""The release format: ``caio-<version>.tar.gz``, deterministic, one top directory.

Layout inside the archive::

    caio-<version>/manifest.json     version, build_date, commit, update_url, channel
    caio-<version>/caio/...          the package tree
    caio-<version>/wheels/*.whl      optional runtime dependencies (offline install)

The same source and version always give a byte-identical file: entries are
sorted, owners are 0/0, modes normalised, every mtime is the build time, and
the gzip header carries no name and no time.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from packaging.version import InvalidVersion, Version

from caio.core.files import atomic_write_bytes
from caio.core.release_format import (
    ARTIFACT_RE,
    MAX_EXTENDED_TOTAL,
    PACKAGE,
    ArchiveRefused,
    artifact_name,
    check_member,
    open_release_archive,
    target_path,
)
from tuf_repo.errors import ReleaseError

_SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}
MAX_MANIFEST_BYTES = 64 * 1024
MAX_MEMBERS = 100_000

__all__ = ["ReleaseInfo", "artifact_name", "build_release", "inspect_release", "target_path"]


@dataclass(frozen=True)
class ReleaseInfo:
    """What a release artifact says about itself (read from its manifest)."""

    version: str
    build_date: str
    commit: str
    channel: str


def _canonical_version(version: str) -> str:
    try:
        parsed = Version(version)
    except InvalidVersion as e:
        raise ReleaseError(f"not a PEP 440 version: {version!r}") from e
    if str(parsed) != version:
        raise ReleaseError(f"use the normalised version {str(parsed)!r}, not {version!r}")
    return version


def _source_epoch(src: Path) -> int:
    """Build time: $SOURCE_DATE_EPOCH, else the git commit time, else the newest source file."""
    if env := os.environ.get("SOURCE_DATE_EPOCH"):
        return int(env)
    stamp = _git(src, "log", "-1", "--format=%ct")
    if stamp:
        return int(stamp)
    return max(int(p.stat().st_mtime) for p in _package_files(src / PACKAGE))


def _git(src: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=src, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def _package_files(package_dir: Path) -> list[Path]:
    """Every file of the package, sorted by path, without caches and bytecode."""
    found: list[Path] = []
    for root, dirs, files in os.walk(package_dir):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        found.extend(Path(root, n) for n in files if Path(n).suffix not in _SKIP_SUFFIXES)
    return sorted(found, key=lambda p: p.relative_to(package_dir).as_posix())


def _add_file(tar: tarfile.TarFile, arcname: str, data: bytes, mtime: int, mode: int) -> None:
    info = tarfile.TarInfo(arcname)
    info.size = len(data)
    info.mtime = mtime
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, arcname: str, mtime: int) -> None:
    info = tarfile.TarInfo(arcname)
    info.type = tarfile.DIRTYPE
    info.mtime = mtime
    info.mode = 0o755
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info)


def _download_wheels(src: Path, dest: Path) -> list[Path]:
    """Fetch binary wheels of the project's runtime dependencies with pip.

    pip's own configuration applies (``PIP_INDEX_URL``, ``PIP_FIND_LINKS``,
    ``PIP_NO_INDEX`` for an offline mirror).
    """
    pyproject = tomllib.loads((src / "pyproject.toml").read_text())
    deps = list(pyproject.get("project", {}).get("dependencies", []))
    if not deps:
        return []
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--only-binary=:all:",
            "--dest",
            str(dest),
            *deps,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ReleaseError(f"could not fetch dependency wheels:\n{done.stderr.strip()[-2000:]}")
    return sorted(dest.glob("*.whl"))


def build_release(
    src: Path,
    version: str,
    out_dir: Path,
    *,
    channel: str = "stable",
    with_deps: bool = False,
) -> Path:
    """Build ``caio-<version>.tar.gz`` from the source tree ``src`` into ``out_dir``.

    Raises:
        ReleaseError: the source is not a CAIO tree, the version is invalid,
            or dependency wheels cannot be fetched.
    """
    version = _canonical_version(version)
    package_dir = src / PACKAGE
    if not (package_dir / "__init__.py").is_file():
        raise ReleaseError(f"{src} is not a CAIO source tree: {package_dir}/__init__.py is missing")
    try:
        source_manifest = json.loads((src / "manifest.json").read_text())
        update_url = source_manifest["update_url"]
        name = source_manifest.get("name", PACKAGE)
    except (OSError, ValueError, KeyError) as e:
        raise ReleaseError(f"{src}/manifest.json is missing or has no update_url: {e}") from e

    epoch = _source_epoch(src)
    manifest = {
        "name": name,
        "version": version,
        "build_date": datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z"),
        "commit": _git(src, "rev-parse", "HEAD") or "unknown",
        "update_url": update_url,
        "channel": channel,
    }
    top = f"caio-{version}"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_dir(tar, top, epoch)
        manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        _add_file(tar, f"{top}/manifest.json", manifest_bytes, epoch, 0o644)
        seen_dirs: set[str] = set()
        for path in _package_files(package_dir):
            rel = path.relative_to(src).as_posix()
            for parent in reversed(Path(rel).parents[:-1]):
                if parent.as_posix() not in seen_dirs:
                    seen_dirs.add(parent.as_posix())
                    _add_dir(tar, f"{top}/{parent.as_posix()}", epoch)
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            _add_file(tar, f"{top}/{rel}", path.read_bytes(), epoch, mode)
        if with_deps:
            with tempfile.TemporaryDirectory() as tmp:
                wheels = _download_wheels(src, Path(tmp))
                if wheels:
                    _add_dir(tar, f"{top}/wheels", epoch)
                for wheel in wheels:
                    _add_file(tar, f"{top}/wheels/{wheel.name}", wheel.read_bytes(), epoch, 0o644)

    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    out = out_dir / artifact_name(version)
    atomic_write_bytes(out, compressed.getvalue())
    return out


def inspect_release(artifact: Path) -> ReleaseInfo:
    """Check that ``artifact`` is a well-formed CAIO release and read its manifest.

    Raises:
        ReleaseError: wrong name, not a gzip tarball, unsafe or stray entries,
            no package, or a manifest whose version differs from the name.
    """
    if not artifact.is_file():
        raise ReleaseError(f"artifact not found: {artifact}")
    match = ARTIFACT_RE.match(artifact.name)
    if not match:
        raise ReleaseError(f"{artifact.name}: a release is named caio-<version>.tar.gz")
    version = _canonical_version(match["version"])
    top = f"caio-{version}"
    manifest: dict[str, object] | None = None
    has_package = False
    try:
        with open_release_archive(
            artifact, max_extended_bytes=MAX_EXTENDED_TOTAL, max_extended_headers=MAX_MEMBERS
        ) as tar:
            for member in tar:
                check_member(member, top)
                if member.name == f"{top}/{PACKAGE}/__init__.py":
                    has_package = True
                if member.name == f"{top}/manifest.json":
                    manifest = _read_manifest(artifact.name, tar, member)
    except FileNotFoundError as e:
        raise ReleaseError(f"artifact not found: {artifact}") from e
    except ArchiveRefused as e:
        raise ReleaseError(f"{artifact.name}: {e}") from e
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        raise ReleaseError(f"{artifact.name}: not a valid gzip tarball: {e}") from e
    if manifest is None:
        raise ReleaseError(f"{artifact.name}: {top}/manifest.json is missing")
    if not has_package:
        raise ReleaseError(f"{artifact.name}: {top}/{PACKAGE}/__init__.py is missing")
    if manifest.get("version") != version:
        raise ReleaseError(
            f"{artifact.name}: manifest says version {manifest.get('version')!r}, "
            f"the name says {version!r}"
        )
    return ReleaseInfo(
        version=version,
        build_date=str(manifest.get("build_date", "")),
        commit=str(manifest.get("commit", "unknown")),
        channel=str(manifest.get("channel", "stable")),
    )


def _read_manifest(
    artifact: str, tar: tarfile.TarFile, member: tarfile.TarInfo
) -> dict[str, object]:
    if member.size > MAX_MANIFEST_BYTES:
        raise ReleaseError(f"{artifact}: manifest.json is too large")
    extracted = tar.extractfile(member)
    if extracted is None:
        raise ReleaseError(f"{artifact}: manifest.json cannot be read")
    data = json.loads(extracted.read())
    if not isinstance(data, dict):
        raise ReleaseError(f"{artifact}: manifest.json is not an object")
    return data
