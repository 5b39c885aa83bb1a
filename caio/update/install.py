"""Install a verified release next to the running one, never in place.

Steps: extract into ``releases/.staging-*`` with every entry checked (and
tarfile's ``data`` filter on top), check the manifest carries the signed
version, install bundled wheels offline into the release's own
``site-packages``, rename the tree to ``releases/<version>`` with an
"unverified" marker beside it, run the preflight (a fresh interpreter that
imports the new tree from there and reports its version), then mark it
read-only and drop the marker. A failed preflight removes the tree; a crash
leaves the marker, and the next start removes the tree. The preflight runs
from the final place so that the process doing it can go on to serve: under
``caio run`` it is the supervisor's standby child (:class:`Preflight` is the
seam). Activation (the symlink switch) is a separate step.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from caio.core.errors import ConfigError, ErrorCode, UpdateError
from caio.core.faults import fault_point
from caio.core.files import atomic_write_bytes
from caio.core.layout import STAGING_PREFIX, InstallLayout, make_read_only, remove_tree
from caio.core.manifest import load_manifest
from caio.core.release_format import (
    ArchiveRefused,
    ExtendedHeaderBudget,
    check_member,
    open_release_archive,
)
from caio.update.errors import from_os_error

log = logging.getLogger(__name__)

Progress = Callable[[float], None]

# Runs in the preflight subprocess: import the new tree (not the running one),
# import the whole application, and report the manifest's version.
PREFLIGHT_SCRIPT = """
import json, os, sys
release = os.path.realpath(sys.argv[1])
sys.path[:0] = [release, os.path.join(release, "site-packages")]
import caio
origin = os.path.realpath(caio.__file__)
if not origin.startswith(release + os.sep):
    sys.exit(f"imported caio from {origin}, not from the new release")
import caio.api.app
import caio.main
from pathlib import Path
from caio.core.manifest import Manifest, load_manifest, save_manifest
from caio.core.release_format import (
    ArchiveRefused,
    ExtendedHeaderBudget,
    check_member,
    open_release_archive,
)
print(json.dumps({"version": load_manifest(Path(release) / "manifest.json").version}))
"""


class Preflight(Protocol):
    """Proves that the release in ``tree`` starts and is ``version``, before it is installed.

    Raises:
        UpdateError: preflight_failed, with what the new release printed.
    """

    def __call__(self, tree: Path, version: str) -> None: ...


@dataclass(frozen=True)
class InstallLimits:
    """Refuse archives that would unpack beyond these (zip bombs, inode exhaustion)."""

    max_unpacked_bytes: int = 1024 * 1024 * 1024
    max_files: int = 20_000
    preflight_timeout: float = 120.0


class ReleaseInstaller:
    """Extracts, checks and preflights releases into an :class:`InstallLayout`."""

    def __init__(
        self,
        layout: InstallLayout,
        limits: InstallLimits,
        python: str = sys.executable,
        preflight: Preflight | None = None,
    ) -> None:
        self.layout = layout
        self.limits = limits
        self.python = python
        self.preflight = preflight or SubprocessPreflight(python, limits.preflight_timeout)

    def install(self, artifact: Path, version: str, progress: Progress) -> Path:
        """Install the verified ``artifact`` as ``releases/<version>`` (not activated).

        ``progress`` receives fractions 0.0 to 1.0 of the install.

        Raises:
            UpdateError: package_invalid, preflight_failed, disk_full, permission_denied.
        """
        final = self.layout.release_dir(version)
        if self.layout.is_installed(version):
            log.info("release %s is already installed", version)
            progress(1.0)
            return final
        marker = self.layout.unverified_marker(version)
        remove_tree(final)  # a tree whose preflight never ended: start again
        self.layout.releases.mkdir(parents=True, exist_ok=True)
        staging = Path(
            tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{version}-", dir=self.layout.releases)
        )
        try:
            tree = self._extract(artifact, staging, f"caio-{version}")
            progress(0.4)
            self._check_manifest(tree, version)
            if (tree / "wheels").is_dir():
                self._install_wheels(tree)
            progress(0.7)
            atomic_write_bytes(marker, b"", mode=0o600)  # durable before the tree is there
            os.replace(tree, final)
            try:
                fault_point("during_preflight")
                self.preflight(final, version)
            except BaseException:
                remove_tree(final)
                marker.unlink(missing_ok=True)
                raise
            progress(0.9)
            make_read_only(final)
            marker.unlink()
            progress(1.0)
            return final
        except OSError as e:
            raise from_os_error(e, f"installing {version}") from e
        finally:
            remove_tree(staging)

    # --- extraction -------------------------------------------------------
    def _extract(self, artifact: Path, staging: Path, top: str) -> Path:
        try:
            with open_release_archive(
                artifact,
                max_extended_bytes=self.limits.max_unpacked_bytes,
                max_extended_headers=self.limits.max_files,
            ) as tar:
                members = self._checked_members(tar, top)
                for number, member in enumerate(members):
                    tar.extract(member, staging, filter="data")
                    if number == len(members) // 2:
                        fault_point("during_extraction")
        except ArchiveRefused as e:
            raise UpdateError(ErrorCode.PACKAGE_INVALID, str(e)) from e
        except tarfile.TarError as e:  # includes the data filter's refusals
            raise UpdateError(ErrorCode.PACKAGE_INVALID, f"archive refused: {e}") from e
        except (EOFError, ValueError, UnicodeError) as e:
            raise UpdateError(ErrorCode.PACKAGE_INVALID, f"archive is corrupt: {e}") from e
        tree = staging / top
        if not tree.is_dir():
            raise UpdateError(ErrorCode.PACKAGE_INVALID, f"archive has no top directory {top}/")
        return tree

    def _checked_members(self, tar: tarfile.TarFile, top: str) -> list[tarfile.TarInfo]:
        members: list[tarfile.TarInfo] = []
        total = 0
        budget: ExtendedHeaderBudget = tar.extended_budget  # type: ignore[attr-defined]
        for member in tar:
            check_member(member, top)
            total += member.size
            if total + budget.bytes > self.limits.max_unpacked_bytes:
                raise UpdateError(
                    ErrorCode.PACKAGE_INVALID,
                    f"archive unpacks to more than {self.limits.max_unpacked_bytes} bytes",
                )
            if len(members) + budget.headers >= self.limits.max_files:
                raise UpdateError(
                    ErrorCode.PACKAGE_INVALID,
                    f"archive has more than {self.limits.max_files} entries",
                )
            members.append(member)
        return members

    # --- checks -----------------------------------------------------------
    def _check_manifest(self, tree: Path, version: str) -> None:
        try:
            manifest = load_manifest(tree / "manifest.json")
        except ConfigError as e:
            raise UpdateError(ErrorCode.PACKAGE_INVALID, f"release manifest: {e.message}") from e
        if manifest.version != version:
            raise UpdateError(
                ErrorCode.PACKAGE_INVALID,
                f"release manifest says version {manifest.version}, the signed target is {version}",
            )
        if not (tree / "caio" / "__init__.py").is_file():
            raise UpdateError(ErrorCode.PACKAGE_INVALID, "release has no caio package")

    def _install_wheels(self, tree: Path) -> None:
        wheels = sorted(str(p) for p in (tree / "wheels").glob("*.whl"))
        if not wheels:
            return
        done = subprocess.run(
            [
                self.python,
                "-m",
                "pip",
                "install",
                "--no-index",
                "--no-deps",
                "--no-compile",
                "--disable-pip-version-check",
                "--target",
                str(tree / "site-packages"),
                *wheels,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=self.limits.preflight_timeout,
        )
        if done.returncode != 0:
            raise UpdateError(
                ErrorCode.PREFLIGHT_FAILED,
                f"bundled wheels failed to install: {done.stderr[-1500:]}",
            )


class SubprocessPreflight:
    """The preflight in a throw-away interpreter: import the new tree, print its version."""

    def __init__(self, python: str, timeout: float) -> None:
        self.python = python
        self.timeout = timeout

    def __call__(self, tree: Path, version: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "CAIO_"))}
        try:
            done = subprocess.run(
                [self.python, "-I", "-c", PREFLIGHT_SCRIPT, str(tree)],
                capture_output=True,
                text=True,
                check=False,
                cwd=tree,
                env=env,
                timeout=self.timeout,
            )
        except subprocess.TimeoutExpired as e:
            raise UpdateError(ErrorCode.PREFLIGHT_FAILED, "preflight timed out") from e
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise UpdateError(
                ErrorCode.PREFLIGHT_FAILED, "the new release does not start: " + " | ".join(tail)
            )
        try:
            reported = json.loads(done.stdout.strip().splitlines()[-1])["version"]
        except (ValueError, KeyError, IndexError) as e:
            raise UpdateError(ErrorCode.PREFLIGHT_FAILED, "preflight printed no version") from e
        if reported != version:
            raise UpdateError(
                ErrorCode.PREFLIGHT_FAILED,
                f"the new release reports {reported}, expected {version}",
            )
