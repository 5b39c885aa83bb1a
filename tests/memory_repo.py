"""A repository published by ``tuf_repo``, served from memory through CAIO's ``Transport`` seam.

In the spirit of python-tuf's ``tests/repository_simulator.py``: the
publisher writes a real repository once per session; each test gets a copy of
its files as a dict, changes one thing (a byte, a file, a signature) and
asserts one outcome of CAIO's real TUF client (``TrustedRepository`` on
python-tuf's ngclient) and single-pass downloader, in milliseconds and
without a socket.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer
from tuf.api.exceptions import DownloadHTTPError
from tuf.api.metadata import Metadata, MetaFile, Root

from caio.update import ArtifactDownloader, RetryPolicy, TrustedRepository
from caio.update.transport import RangeResponse, Transport
from tests.tuf_fixtures import make_source_tree
from tuf_repo import Keyring, Publisher, RepoStore, build_release

BASE = "http://memory.invalid"


class MemoryRepository(Transport):
    """Serves ``files`` (URL path -> bytes); records every request."""

    def __init__(self, files: dict[str, bytes], keys: Keyring) -> None:
        self.files = dict(files)
        self.keys = keys
        self.requests: list[tuple[str, int]] = []

    @classmethod
    def published(
        cls,
        work: Path,
        versions: tuple[str, ...],
        *,
        artifacts: tuple[Path, ...] = (),
        then: Callable[[Publisher], object] | None = None,
    ) -> MemoryRepository:
        """Publish ``versions`` with tuf_repo into ``work``, then hold the result in memory.

        ``artifacts``: built releases to publish as they are (the same bytes as in
        another repository); ``then``: more publishing (a withdrawal, a rollout).
        Built releases stay in ``work/dist``.
        """
        repo, keys = work / "repo", work / "keys"
        Publisher(RepoStore(repo), Keyring([])).init(keys)
        publisher = Publisher(RepoStore(repo), Keyring.from_dir(keys))
        for version in versions:
            src = make_source_tree(work / f"src-{version}")
            publisher.add_release(build_release(src, version, work / "dist"), ["stable"])
        for artifact in artifacts:
            publisher.add_release(artifact, ["stable"])
        if then is not None:
            then(publisher)
        files = {
            "/" + p.relative_to(repo).as_posix(): p.read_bytes()
            for p in repo.rglob("*")
            if p.is_file() and p.relative_to(repo).parts[0] in ("metadata", "targets")
        }
        memory = cls(files, Keyring.from_dir(keys))
        shutil.rmtree(repo)
        return memory

    def copy(self) -> MemoryRepository:
        return MemoryRepository(self.files, self.keys)

    # --- the Transport seam ---------------------------------------------------------------
    def _body(self, url: str) -> bytes:
        path = url.removeprefix(BASE)
        if path not in self.files:
            raise DownloadHTTPError(f"{path} not found", 404)
        return self.files[path]

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.requests.append((url, 0))
        yield self._body(url)

    @contextlib.contextmanager
    def open_range(self, url: str, offset: int) -> Iterator[RangeResponse]:
        self.requests.append((url, offset))
        yield RangeResponse(offset, iter([self._body(url)[offset:]]))

    # --- changing one thing --------------------------------------------------------------
    def newest(self, role: str) -> str:
        if role == "timestamp":
            return "/metadata/timestamp.json"
        versions = [
            int(p.split("/")[-1].split(".")[0])
            for p in self.files
            if p.startswith("/metadata/") and p.endswith(f".{role}.json")
        ]
        return f"/metadata/{max(versions)}.{role}.json"

    def artifact(self, version: str) -> str:
        return next(p for p in self.files if p.endswith(f"caio-{version}.tar.gz"))

    def load(self, path: str) -> Metadata[Any]:
        return Metadata.from_bytes(self.files[path])

    def signers(self, role: str) -> list[Signer]:
        root = Metadata[Root].from_bytes(self.files[self.newest("root")]).signed
        return self.keys.signers(root.roles[role].keyids)

    def resign(self, role: str, md: Metadata[Any], path: str | None = None) -> bytes:
        """Sign ``md`` with the repository's real key(s) for ``role`` and store it."""
        md.signatures.clear()
        for signer in self.signers(role):
            md.sign(signer, append=True)
        data = md.to_bytes()
        self.files[path or self.newest(role)] = data
        return data

    def point_timestamp_at(self, snapshot_path: str) -> None:
        """A new timestamp (signed with the real key) naming ``snapshot_path``."""
        ts = self.load("/metadata/timestamp.json")
        data = self.files[snapshot_path]
        version = int(snapshot_path.rsplit("/", maxsplit=1)[-1].split(".", maxsplit=1)[0])
        ts.signed.version += 1
        ts.signed.snapshot_meta = MetaFile(version, len(data), {"sha256": sha256(data)})
        self.resign("timestamp", ts)

    def publish_snapshot_naming(self, targets_version: int) -> None:
        """A new snapshot and timestamp (real online keys) naming ``targets_version``."""
        snapshot = self.load(self.newest("snapshot"))
        snapshot.signed.version += 1
        meta = snapshot.signed.meta["targets.json"]
        meta.version, meta.length, meta.hashes = targets_version, None, None
        path = f"/metadata/{snapshot.signed.version}.snapshot.json"
        self.resign("snapshot", snapshot, path)
        self.point_timestamp_at(path)

    # --- the client under test ------------------------------------------------------------
    def client(self, work: Path) -> tuple[TrustedRepository, ArtifactDownloader]:
        retry = RetryPolicy(attempts=1, sleep=lambda _: None)
        repository = TrustedRepository(
            metadata_url=f"{BASE}/metadata/",
            targets_url=f"{BASE}/targets/",
            metadata_dir=work / "tuf",
            trusted_root=self.files["/metadata/1.root.json"],
            transport=self,
            retry=retry,
            user_agent="caio/test",
        )
        return repository, ArtifactDownloader(self, work / "downloads", retry)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
