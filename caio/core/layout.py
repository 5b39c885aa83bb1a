"""The install layout under ``CAIO_HOME`` and the atomic ``current``/``previous`` switch.

::

    releases/<version>/   one complete release; read-only once complete
    releases/.staging-*   extraction in progress (removed at start-up)
    current  -> releases/<v>
    previous -> releases/<v>
    tuf/                  ngclient metadata cache
    downloads/            partial (.part) and verified artifacts
    state/                update.json, audit.jsonl, bad_versions.json
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path

from packaging.version import Version

from caio.core.faults import fault_point
from caio.core.files import atomic_write_json, fsync_dir
from caio.core.host_id import MACHINE_ID_FILES, HostIdentity, host_identity
from caio.core.manifest import Manifest, save_manifest
from caio.core.redact import split_userinfo
from caio.core.state import AuditLog

STAGING_PREFIX = ".staging-"
UNVERIFIED_PREFIX = ".unverified-"  # beside releases/<version> while its preflight runs


class InstallLayout:
    """Paths under ``CAIO_HOME`` and the operations that keep them consistent."""

    def __init__(self, home: Path, machine_id_files: Sequence[Path] = MACHINE_ID_FILES) -> None:
        self.home = home
        self.machine_id_files = machine_id_files
        self.releases = home / "releases"
        self.current_link = home / "current"
        self.previous_link = home / "previous"
        self.tuf_dir = home / "tuf"
        self.repositories = home / "repositories"  # with a repository map: one dir per repository
        self.downloads = home / "downloads"
        self.state_dir = home / "state"
        self.bad_versions_path = self.state_dir / "bad_versions.json"

    def ensure(self) -> None:
        """Make the directories; ``state/`` is 0700 and its files 0600, at every start.

        Whatever created them first (an older CAIO, ``caio host-id`` before the
        service, a umask of 022), the state (host id, audit log, job status)
        is this service's alone.
        """
        for d in (self.releases, self.tuf_dir, self.downloads):
            d.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _restrict(self.state_dir, 0o700)
        for entry in os.scandir(self.state_dir):
            if entry.is_file(follow_symlinks=False):
                # The supervisor (another process) writes its record through a temp
                # file it renames: one listed here may be gone by the time it is seen.
                with contextlib.suppress(FileNotFoundError):
                    _restrict(Path(entry.path), 0o600)

    # --- which release is where -------------------------------------------
    def repository_dir(self, name: str) -> Path:
        """A mapped repository's own trust anchor, TUF cache and release index."""
        return self.repositories / name

    def release_dir(self, version: str) -> Path:
        return self.releases / version

    def unverified_marker(self, version: str) -> Path:
        """Exists while ``releases/<version>`` is in place but not yet preflighted: such a
        release is not installed, and a crash leaves it to :meth:`clean_leftovers`."""
        return self.releases / f"{UNVERIFIED_PREFIX}{version}"

    def is_installed(self, version: str) -> bool:
        return self.release_dir(version).is_dir() and not self.unverified_marker(version).exists()

    def _link_version(self, link: Path) -> str | None:
        try:
            target = os.readlink(link)
        except OSError:
            return None
        name = Path(target).name
        return name if (self.releases / name).is_dir() else None

    @property
    def current_version(self) -> str | None:
        return self._link_version(self.current_link)

    @property
    def previous_version(self) -> str | None:
        return self._link_version(self.previous_link)

    def installed_versions(self) -> list[str]:
        if not self.releases.is_dir():
            return []
        names = [
            p.name
            for p in self.releases.iterdir()
            if p.is_dir() and not p.name.startswith(".") and self.is_installed(p.name)
        ]
        return sorted(names, key=Version)

    # --- atomic switching -------------------------------------------------
    def point(self, link: Path, version: str) -> None:
        """Make ``link`` point at ``releases/<version>`` atomically (new link + os.replace)."""
        tmp = link.with_name(f".{link.name}.new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(Path("releases") / version, tmp)
        os.replace(tmp, link)
        fsync_dir(link.parent)

    def activate(self, version: str) -> str | None:
        """Make ``version`` current and the old current previous. Returns the old current.

        A crash between the two replaces leaves previous == current == old: still
        the old release, never a mix.
        """
        old = self.current_version
        if old is not None and old != version:
            self.point(self.previous_link, old)
        fault_point("during_switch")
        self.point(self.current_link, version)
        return old

    def swap_to_previous(self) -> tuple[str, str]:
        """Activate ``previous`` (rollback); the release it replaces becomes previous.

        Raises:
            FileNotFoundError: there is no previous release to go back to.
        """
        current, previous = self.current_version, self.previous_version
        if current is None or previous is None or current == previous:
            raise FileNotFoundError("there is no previous release to roll back to")
        self.point(self.current_link, previous)
        self.point(self.previous_link, current)
        return current, previous

    # --- host id (the host's place in every staged rollout) -------------------
    def host_id(self) -> str:
        """This host's id (see :mod:`caio.core.host_id`)."""
        return self.host_identity().id

    def host_identity(self) -> HostIdentity:
        """This host's id, renewed (and audited) when the state was copied from another machine."""
        identity = host_identity(self.state_dir, self.machine_id_files)
        if identity.replaced is not None:
            AuditLog(self.state_dir / "audit.jsonl").append(
                "host_id",
                outcome="renewed",
                previous=identity.replaced,
                reason="the state was copied from another machine",
            )
        return identity

    # --- bad versions (health check failed after activation) -----------------
    def bad_versions(self) -> set[str]:
        try:
            return set(json.loads(self.bad_versions_path.read_text()))
        except (OSError, ValueError, TypeError):
            return set()

    def mark_bad(self, version: str) -> None:
        atomic_write_json(
            self.bad_versions_path, sorted(self.bad_versions() | {version}), mode=0o600
        )

    # --- housekeeping -----------------------------------------------------
    def clean_leftovers(self) -> list[str]:
        """Remove what a crash can leave behind: staging trees, releases whose preflight
        never ended, and half-made links."""
        removed = []
        if self.releases.is_dir():
            for p in self.releases.iterdir():
                if p.name.startswith(STAGING_PREFIX):
                    remove_tree(p)
                    removed.append(p.name)
                elif p.name.startswith(UNVERIFIED_PREFIX) and p.is_file():
                    version = p.name.removeprefix(UNVERIFIED_PREFIX)
                    if version not in (self.current_version, self.previous_version):
                        remove_tree(self.release_dir(version))  # never preflighted
                        removed.append(version)
                    p.unlink()
                    removed.append(p.name)
        for link in (self.current_link, self.previous_link):
            tmp = link.with_name(f".{link.name}.new")
            if tmp.is_symlink():
                tmp.unlink()
                removed.append(tmp.name)
        return removed

    def prune(self, keep: int) -> list[str]:
        """Delete the oldest releases beyond ``keep``, never current or previous."""
        protected = {self.current_version, self.previous_version} - {None}
        others = [v for v in self.installed_versions() if v not in protected]
        room = max(0, keep - len(protected))
        removed = others[: max(0, len(others) - room)]
        for version in removed:
            remove_tree(self.release_dir(version))
        return removed


def _restrict(path: Path, mode: int) -> None:
    """Take group and other permissions away from ``path`` (never add any)."""
    current = stat.S_IMODE(path.stat().st_mode)
    if current & 0o077:
        os.chmod(path, current & mode)


def make_read_only(tree: Path) -> None:
    """Drop write bits on a complete release so nothing edits it in place."""
    for root, dirs, files in os.walk(tree):
        for name in files + dirs:
            p = Path(root, name)
            mode = p.lstat().st_mode
            if not stat.S_ISLNK(mode):
                p.chmod(stat.S_IMODE(mode) & ~0o222)
    tree.chmod(stat.S_IMODE(tree.stat().st_mode) & ~0o222)


def remove_tree(tree: Path) -> None:
    """Remove a (possibly read-only) tree."""
    if not tree.exists():
        return
    for root, dirs, _files in os.walk(tree):
        for d in [root, *(os.path.join(root, n) for n in dirs)]:
            if not os.path.islink(d):
                os.chmod(d, 0o700)
    shutil.rmtree(tree)


def seed_release(layout: InstallLayout, source_dir: Path, manifest: Manifest) -> str:
    """Make the running tree a release and current, if nothing is current yet.

    Gives a fresh installation a release to roll back to. Returns the current version.
    """
    current = layout.current_version
    if current is not None:
        return current
    target = layout.release_dir(manifest.version)
    if not target.exists():
        staging = layout.releases / f"{STAGING_PREFIX}seed-{manifest.version}"
        remove_tree(staging)
        shutil.copytree(
            source_dir / "caio", staging / "caio", ignore=shutil.ignore_patterns("__pycache__")
        )
        # A release tree is readable by every local account: never a password in it.
        clean_url = split_userinfo(manifest.update_url)[0]
        save_manifest(
            manifest.model_copy(update={"update_url": clean_url}), staging / "manifest.json"
        )
        make_read_only(staging)
        os.replace(staging, target)
    layout.point(layout.current_link, manifest.version)
    return manifest.version
