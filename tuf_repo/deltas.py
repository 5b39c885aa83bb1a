"""Delta targets: signed patches from earlier releases to a new one.

``tuf-repo add ART --delta-from N`` publishes, with the release itself and in
the same transaction, one delta per base release: for each channel of the new release, the ``N``
newest earlier releases on it that are not withdrawn and whose bytes this
repository serves. A delta is an ordinary target,
``caio/<to>/caio-<to>.from-<from>.delta`` (hashed, length-bounded, in the bin
its path hashes to, served like any artifact), made over the uncompressed
tars (:mod:`caio.core.delta`); its signed custom metadata ``{"delta": ...}``
names both versions and the tars it applies to and produces. The release
target's own custom metadata carries its tar (``{"tar": ...}``), so a host
can check that a delta produces exactly the release. Publishing again is
idempotent: a delta already signed is left alone (building is reproducible).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version
from tuf.api.metadata import Metadata, TargetFile, Targets

from caio.core.delta import DeltaInfo, TarDigest, build_delta, delta_target_path, unpack_artifact
from caio.core.release_format import IndexEntry
from tuf_repo.context import HASH_ALGORITHMS, Changes, RepoContext
from tuf_repo.releases import editable_role_for, read_index
from tuf_repo.staged import StagedWork

DEFAULT_BASES = 2  # per channel: the releases most hosts still run


@dataclass(frozen=True)
class DeltaTarget:
    """A delta built for the release about to be published: its target and its file."""

    base_version: str
    target: TargetFile
    file: Path


def _release_tar(artifact: Path, into: Path) -> Path:
    tar = into / artifact.name.removesuffix(".gz")
    unpack_artifact(artifact, tar)
    return tar


def choose_bases(
    index: list[IndexEntry], version: str, channels: Iterable[str], per_channel: int
) -> list[IndexEntry]:
    """The releases a delta to ``version`` starts from: on each of its ``channels``, the
    ``per_channel`` newest earlier ones that are not withdrawn."""
    chosen: dict[str, IndexEntry] = {}
    earlier = sorted(
        (e for e in index if e.withdrawn is None and e.parsed_version < Version(version)),
        key=lambda e: e.parsed_version,
        reverse=True,
    )
    for channel in channels:
        on_channel = [e for e in earlier if channel in e.channels][:per_channel]
        chosen.update((e.version, e) for e in on_channel)
    return sorted(chosen.values(), key=lambda e: e.parsed_version)


@contextmanager
def built_deltas(
    ctx: RepoContext,
    version: str,
    channels: Iterable[str],
    artifact: Path,
    result: TarDigest,
    per_channel: int,
) -> Iterator[list[DeltaTarget]]:
    """Build the deltas to release ``version`` (``artifact``, whose tar is ``result``)
    that are not signed yet.

    They are published with the release, in the same transaction
    (:func:`tuf_repo.releases.publish_target`); their files live until the
    block ends. A base whose bytes this repository does not hold (an approval
    repository publishes metadata only) gets no delta.
    """
    top = StagedWork(ctx.store).latest(Targets.type)
    bases = choose_bases(read_index(ctx, top), version, channels, per_channel)
    looked_at: Changes = {}  # roles read, never changed here
    with tempfile.TemporaryDirectory(prefix="tuf-repo-delta-") as tmp:
        work = Path(tmp)
        built: list[DeltaTarget] = []
        result_tar: Path | None = None
        for base in bases:
            path = delta_target_path(base.version, version)
            if editable_role_for(ctx, path, top, looked_at).signed.targets.get(path) is not None:
                continue  # signed before, from the same tars: building is reproducible
            base_file = _served_artifact(ctx, base, top, looked_at)
            if base_file is None:
                continue
            if result_tar is None:
                result_tar = _release_tar(artifact, work)
            base_dir = work / base.version
            base_dir.mkdir()
            base_tar = _release_tar(base_file, base_dir)
            info = DeltaInfo(base.version, version, TarDigest.of_file(base_tar), result)
            out = work / path.rpartition("/")[2]
            with out.open("wb") as f:
                build_delta(base_tar, result_tar, f)
            target = TargetFile.from_file(path, str(out), HASH_ALGORITHMS)
            target.unrecognized_fields["custom"] = {"delta": info.to_json()}
            built.append(DeltaTarget(base.version, target, out))
        yield built


def _served_artifact(
    ctx: RepoContext, entry: IndexEntry, top: Metadata[Targets], looked_at: Changes
) -> Path | None:
    role_md = editable_role_for(ctx, entry.target, top, looked_at)
    target = role_md.signed.targets.get(entry.target)
    if target is None:
        return None
    path = ctx.store.target_file(entry.target, target.hashes["sha256"])
    return path if path.is_file() else None
