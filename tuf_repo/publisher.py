"""The publisher's front: one object for the CLI, the tests and the benchmarks.

Every operation builds the new metadata in memory, signs it with the keys it
has, and then either publishes it or, when an offline role lacks
signatures, stages it for other key holders. Each job lives in its own
module; this class only holds the repository, the keys and the clock they
share (:class:`~tuf_repo.context.RepoContext`):

=================  ================================================
``ceremony``       init: keys and root v1
``releases``       add, rollout, withdraw, the release index
``staging``        review, sign, publish what is staged
``rotation``       rotate, add and remove keys
``heartbeat``      refresh: the daily re-signing
``status``         status, the trust anchor to export
``prune``          remove what no client can be sent any more
``commit``         sign, then publish (or stage): ordered, atomic writes
``signatures``     counting signatures against thresholds
=================  ================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from tuf.api.metadata import TargetFile

from caio.core.delta import TarDigest
from caio.core.release_format import IndexEntry
from caio.core.rollout import Step
from tuf_repo import ceremony, deltas, heartbeat, prune, releases, rotation, staging, status
from tuf_repo.approval import SourceRelease
from tuf_repo.commit import commit
from tuf_repo.context import Changes, RepoContext, utc_now
from tuf_repo.heartbeat import RefreshReport
from tuf_repo.keys import KeyFile, Keyring
from tuf_repo.lock import DEFAULT_WAIT_SECONDS, writer_lock
from tuf_repo.prune import PruneResult
from tuf_repo.release import ReleaseInfo, inspect_release
from tuf_repo.releases import AddResult
from tuf_repo.staged import forget_published_staged
from tuf_repo.staging import StagedReview
from tuf_repo.status import RepoStatus
from tuf_repo.store import RepoStore
from tuf_repo.transaction import recover


class Publisher:
    """Changes one repository directory using the keys of one keyring.

    ``live_url``: the repository as clients see it; its versions count in the
    high-water mark too (``--check-live``). ``clock`` gives the current time.
    Every method that writes holds the repository's writer lock, waiting up
    to ``lock_wait`` seconds for another writer (:mod:`tuf_repo.lock`).
    """

    def __init__(
        self,
        store: RepoStore,
        keyring: Keyring,
        *,
        live_url: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        lock_wait: float = DEFAULT_WAIT_SECONDS,
    ) -> None:
        self.ctx = RepoContext(store, keyring, live_url.rstrip("/") if live_url else None, clock)
        self.lock_wait = lock_wait

    @contextmanager
    def _writing(self, command: str) -> Iterator[None]:
        """Hold the writer lock, and first repair a publication a crash interrupted.

        Raises:
            RepositoryBusy: another command holds the lock for all of ``lock_wait``.
        """
        with writer_lock(self.ctx.store.root, command, wait=self.lock_wait):
            recover(self.ctx.store.root)
            self.ctx.store.forget_listing()
            forget_published_staged(self.ctx.store)
            yield

    @property
    def store(self) -> RepoStore:
        return self.ctx.store

    def init(
        self,
        keydir: Path,
        *,
        root_keys: int = 3,
        root_threshold: int = 2,
        expiry_days: dict[str, float] | None = None,
        bins: int = 0,
        online_bins: bool = False,
        passphrase: str | None = None,
    ) -> Path:
        """See :func:`tuf_repo.ceremony.init`."""
        with self._writing("init"):
            return ceremony.init(
                self.ctx,
                keydir,
                root_keys=root_keys,
                root_threshold=root_threshold,
                expiry_days=expiry_days,
                bins=bins,
                online_bins=online_bins,
                passphrase=passphrase,
            )

    def add_release(
        self,
        artifact: Path,
        channels: Iterable[str],
        rollout: tuple[Step, ...] | None = None,
        *,
        delta_from: int = deltas.DEFAULT_BASES,
    ) -> AddResult:
        """Publish ``artifact`` as a target and list it in the signed release index.

        ``rollout``: the plan's steps, from the release time (default: every
        host at once). ``delta_from``: also publish deltas from this many of
        the newest earlier releases on each of its channels (0: none).

        Raises:
            ReleaseError: the artifact is not a valid release.
            TufRepoError: the version exists with other bytes.
            SignaturesNeeded: the targets role needs more signatures (staged).
        """
        info = inspect_release(artifact)
        return self.publish_artifact(artifact, info, channels, rollout, delta_from=delta_from)

    def publish_artifact(
        self,
        artifact: Path,
        info: ReleaseInfo,
        channels: Iterable[str],
        rollout: tuple[Step, ...] | None = None,
        *,
        delta_from: int = 0,
    ) -> AddResult:
        """Publish ``artifact`` as release ``info`` without inspecting its contents.

        ``add_release`` is the checked entry point; this one exists for mirrors
        that re-publish already inspected artifacts, and for tests that sign a
        hostile archive to prove that clients check what they install.
        """
        channels = sorted(set(channels)) or ["stable"]
        tar = TarDigest.of_artifact(artifact)  # read once: signed beside it, and deltas make it
        with (
            self._writing("add"),
            deltas.built_deltas(
                self.ctx, info.version, channels, artifact, tar, delta_from
            ) as made,
        ):
            extras = [(d.target, d.file) for d in made]
            result = releases.publish_artifact(
                self.ctx, artifact, info, channels, rollout, extras, tar
            )
        if not made:
            return result
        listed = ", ".join(f"{d.base_version} ({d.target.length:,} bytes)" for d in made)
        return replace(result, message=f"{result.message}; deltas from {listed}")

    def prune(self, keep: timedelta, *, dry_run: bool = False) -> PruneResult:
        """See :func:`tuf_repo.prune.prune`."""
        with self._writing("prune"):
            return prune.prune(self.ctx, keep, dry_run=dry_run)

    def remove(self, version: str) -> AddResult:
        """See :func:`tuf_repo.releases.remove`."""
        with self._writing("remove"):
            return releases.remove(self.ctx, version)

    def approve(self, source: SourceRelease) -> AddResult:
        """See :func:`tuf_repo.releases.approve`."""
        with self._writing("approve"):
            return releases.approve(self.ctx, source)

    def set_rollout(
        self,
        version: str,
        *,
        steps: tuple[Step, ...] | None = None,
        pause: bool = False,
        resume: bool = False,
    ) -> AddResult:
        """See :func:`tuf_repo.releases.set_rollout`."""
        with self._writing("rollout"):
            return releases.set_rollout(self.ctx, version, steps=steps, pause=pause, resume=resume)

    def withdraw(self, version: str, reason: str) -> AddResult:
        """See :func:`tuf_repo.releases.withdraw`."""
        with self._writing("withdraw"):
            return releases.withdraw(self.ctx, version, reason)

    def releases(self) -> list[IndexEntry]:
        """The published releases, oldest first, with their plans and withdrawals."""
        return releases.releases(self.ctx)

    def import_target_files(self, files: Iterable[TargetFile]) -> int:
        """See :func:`tuf_repo.releases.import_target_files`."""
        with self._writing("import"):
            return releases.import_target_files(self.ctx, files)

    def commit(self, changes: Changes) -> None:
        """Sign and publish (or stage) metadata changed by hand: tests and migrations."""
        with self._writing("commit"):
            commit(self.ctx, changes, self.ctx.store.read_policy())

    def review(self, role: str) -> StagedReview:
        """See :func:`tuf_repo.staging.review`."""
        return staging.review(self.ctx, role)

    def sign(self, role: str, key_path: Path, *, expect_digest: str | None = None) -> str:
        """See :func:`tuf_repo.staging.sign`."""
        with self._writing("sign"):
            return staging.sign(self.ctx, role, key_path, expect_digest=expect_digest)

    def retire_rotated_out(self, keydir: Path, paths: Iterable[Path] | None = None) -> str:
        """See :func:`tuf_repo.rotation.retire_rotated_out`."""
        with self._writing("retire"):
            return rotation.retire_rotated_out(self.ctx, keydir, paths)

    def publish_staged(self) -> str:
        """See :func:`tuf_repo.staging.publish_staged`."""
        with self._writing("publish"):
            return staging.publish_staged(self.ctx)

    def rotate(
        self,
        role: str,
        keydir: Path,
        threshold: int | None = None,
        *,
        keep_retired_private: bool = False,
    ) -> str:
        """See :func:`tuf_repo.rotation.rotate`."""
        with self._writing("rotate"):
            return rotation.rotate(
                self.ctx, role, keydir, threshold, keep_retired_private=keep_retired_private
            )

    def add_key(self, role: str, key: KeyFile) -> str:
        """See :func:`tuf_repo.rotation.add_key`."""
        with self._writing("key add"):
            return rotation.add_key(self.ctx, role, key)

    def remove_key(self, role: str, keyid: str, keydir: Path | None = None) -> str:
        """See :func:`tuf_repo.rotation.remove_key`."""
        with self._writing("key remove"):
            return rotation.remove_key(self.ctx, role, keyid, keydir)

    def refresh(self, within_days: float | None = None) -> RefreshReport:
        """See :func:`tuf_repo.heartbeat.refresh`."""
        with self._writing("refresh"):
            return heartbeat.refresh(self.ctx, within_days)

    def status(self) -> RepoStatus:
        """See :func:`tuf_repo.status.status`."""
        return status.status(self.ctx)

    def export_root(self) -> Path:
        """The newest published root: the trust anchor to ship with new installations."""
        return status.export_root(self.ctx)
