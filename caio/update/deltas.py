"""Delta updates on the host: a kept base, the signed delta, the tar it makes, or the full download.

When the chosen release has a delta from the release this host runs
(``caio/<to>/caio-<to>.from-<from>.delta``, a signed target like any other)
and the host kept that release's uncompressed tar (``bases/<version>.tar``,
written when it was installed), the job downloads the delta (verified
against its signed hashes and length, resumable), applies it
(:mod:`caio.core.delta`) and installs from the tar it made. That tar must be
the release's own: the delta's signed result must equal the ``tar`` signed
in the release target, and the bytes made must match it. Any failure (no
kept base, a base that changed on disk, a delta refused, damaged or signed
for another pair, a result that is not the signed tar, a full disk) falls
back to the full download in the same job; the reason goes into the job's
message, its audit record and a metric. A delta never decides what is
installed: the signed digest does.

What is kept: the uncompressed tar of the current and the previous release
(``CAIO_HOME/bases``), about twice a release's unpacked size on disk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tuf.api.metadata import TargetFile

from caio.core.delta import (
    DeltaInfo,
    DeltaRefused,
    TarDigest,
    apply_delta,
    unpack_artifact,
)
from caio.core.errors import UpdateError
from caio.core.layout import InstallLayout
from caio.core.release_format import IndexEntry
from caio.update.errors import from_os_error

log = logging.getLogger(__name__)

FetchTarget = Callable[[TargetFile], Path]


@dataclass(frozen=True)
class DeltaAttempt:
    """What the delta path gave: the release's tar, or why the full download is used."""

    tar: Path | None = None  # verified: the signed tar of the release
    delta_bytes: int = 0
    fallback: str | None = None  # None with no tar: no delta was offered to this host


@dataclass(frozen=True)
class DeltaOffer:
    """A signed delta to the release an update would install, as a check reports it."""

    base_version: str
    length: int
    applies: bool  # this host kept the base's tar (else the update downloads it whole)


class DeltaPath:
    """Applies a signed delta to a kept base; keeps the bases for the next update."""

    def __init__(self, layout: InstallLayout, *, enabled: bool = True) -> None:
        self.layout = layout
        self.enabled = enabled
        self.bases = layout.home / "bases"

    def base_tar(self, version: str) -> Path:
        return self.bases / f"{version}.tar"

    def base_for(self, version: str) -> str | None:
        """The release a delta to ``version`` would start from (the current one), or None
        when deltas are off or there is nothing to start from."""
        base = self.layout.current_version
        return base if self.enabled and base is not None and base != version else None

    def attempt(
        self,
        delta_info: TargetFile,
        release: IndexEntry,
        release_info: TargetFile,
        base_version: str,
        fetch: FetchTarget,
    ) -> DeltaAttempt:
        """Make the release's tar from ``delta_info`` (the signed delta from
        ``base_version``), or say why not.

        ``fetch`` downloads and verifies a target (the job's own downloader).
        Cancellation (raised by ``fetch``) is not caught.
        """
        if not self.base_tar(base_version).is_file():  # a fresh host: expected, not a fault
            reason = f"this host kept no tar of {base_version} to apply it to"
            log.info("delta from %s not used: %s", base_version, reason)
            return DeltaAttempt(fallback=reason)
        part: Path | None = None
        try:
            signed_tar = TarDigest.from_json((release_info.custom or {}).get("tar"))
            delta = DeltaInfo.from_json((delta_info.custom or {}).get("delta"))
            if (delta.base_version, delta.result_version) != (base_version, release.version):
                raise DeltaRefused(
                    f"it is signed as the delta from {delta.base_version} to {delta.result_version}"
                )
            if delta.result != signed_tar:
                raise DeltaRefused(f"it does not make the tar signed for {release.version}")
            base = self.base_tar(base_version)
            patch = fetch(delta_info)
            made = self.layout.downloads / f"{signed_tar.sha256}.caio-{release.version}.tar"
            part = made.with_name(made.name + ".part")
            with patch.open("rb") as source, part.open("wb") as out:
                apply_delta(source, base, delta, out)
            os.replace(part, made)
        except (DeltaRefused, UpdateError, OSError, MemoryError) as e:
            if part is not None:
                part.unlink(missing_ok=True)
            reason = _why(e)
            log.warning("delta from %s not used: %s", base_version, reason)
            return DeltaAttempt(fallback=reason)
        return DeltaAttempt(made, delta_info.length)

    def keep(self, version: str, installed_from: Path) -> None:
        """Keep the tar of ``version`` (just installed from ``installed_from``, a verified
        ``.tar``, which is moved, or ``.tar.gz``, which is unpacked) as the next update's
        base. A failure costs the next update its delta, nothing else."""
        kept = self.base_tar(version)
        staged = kept.with_name(kept.name + ".part")
        try:
            self.bases.mkdir(parents=True, exist_ok=True)
            if installed_from.suffix == ".tar":
                os.replace(installed_from, staged)
            else:
                unpack_artifact(installed_from, staged)
            os.replace(staged, kept)
        except OSError as e:
            staged.unlink(missing_ok=True)
            log.warning("could not keep the tar of %s for the next delta: %s", version, e)

    def prune(self) -> None:
        """Drop kept tars other than the current and the previous release's (and leftovers)."""
        versions = (self.layout.current_version, self.layout.previous_version)
        wanted = {self.base_tar(v).name for v in versions if v is not None}
        try:
            for path in self.bases.iterdir() if self.bases.is_dir() else ():
                if path.name not in wanted:
                    path.unlink(missing_ok=True)
        except OSError as e:
            log.warning("could not prune %s: %s", self.bases, e)


def _why(failure: Exception) -> str:
    """What the job message and the audit record say the delta path failed on."""
    if isinstance(failure, OSError):
        return from_os_error(failure, "applying the delta").message  # a full disk says so
    if isinstance(failure, MemoryError):
        return "applying the delta ran out of memory"
    return failure.message if isinstance(failure, UpdateError) else str(failure)
