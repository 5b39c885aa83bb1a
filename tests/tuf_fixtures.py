"""A real repository published by tuf_repo, served on loopback, and an independent client.

Like python-tuf's ``repository_simulator``, a test changes one thing (a file,
a key, a signature) and asserts one outcome; unlike it, everything here is
the real publisher writing real files and a real HTTP server serving them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tuf.ngclient import Updater

from tuf_repo import Keyring, Publisher, RepoServer, RepoStore, build_release


def make_source_tree(directory: Path, *, body: str = "") -> Path:
    """A minimal CAIO source tree: the package marker and a manifest."""
    (directory / "caio").mkdir(parents=True, exist_ok=True)
    (directory / "caio" / "__init__.py").write_text(f'"""test release"""\n{body}')
    (directory / "manifest.json").write_text(
        json.dumps(
            {
                "name": "caio",
                "version": "0.0.0",
                "update_url": "http://127.0.0.1:9",
                "channel": "stable",
            }
        )
    )
    return directory


@dataclass
class PublishedRepo:
    """A repository directory, its keys, and a loopback server in front of it."""

    dir: Path
    keys: Path
    work: Path
    server: RepoServer
    clients: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def trusted_root(self) -> Path:
        return self.dir / "metadata" / "1.root.json"

    @property
    def store(self) -> RepoStore:
        return RepoStore(self.dir)

    def publisher(self, keys: Path | None = None) -> Publisher:
        return Publisher(self.store, Keyring.from_dir(keys or self.keys))

    def build(self, version: str, *, body: str = "", src: Path | None = None) -> Path:
        source = src or make_source_tree(self.work / f"src-{version}", body=body)
        return build_release(source, version, self.work / "dist")

    def release(
        self, version: str, channels: tuple[str, ...] = ("stable",), body: str = ""
    ) -> Path:
        artifact = self.build(version, body=body)
        self.publisher().add_release(artifact, channels)
        return artifact

    def client(self, name: str = "client") -> Updater:
        """A fresh (or, for a known name, returning) ngclient bootstrapped from root v1."""
        base = self.work / name
        (base / "metadata").mkdir(parents=True, exist_ok=True)
        return Updater(
            str(base / "metadata"),
            f"{self.url}/metadata/",
            str(base / "targets"),
            f"{self.url}/targets/",
            bootstrap=self.trusted_root.read_bytes(),
        )


def publish_repo(work: Path, **init_options: object) -> PublishedRepo:
    repo_dir, keys = work / "repo", work / "keys"
    Publisher(RepoStore(repo_dir), Keyring([])).init(keys, **init_options)  # type: ignore[arg-type]
    server = RepoServer(repo_dir, quiet=True).start()
    return PublishedRepo(repo_dir, keys, work, server)


@pytest.fixture
def published_repo(tmp_path: Path) -> Iterator[PublishedRepo]:
    repo = publish_repo(tmp_path)
    yield repo
    repo.server.stop()


def move_key(keys: Path, role: str, dest: Path, count: int = 1) -> list[Path]:
    """Take ``count`` keys of ``role`` out of the key directory (to another holder)."""
    dest.mkdir(parents=True, exist_ok=True)
    moved = []
    in_use = [p for p in sorted(keys.rglob(f"{role}-*.json")) if "retired" not in p.parts]
    for path in in_use[:count]:
        moved.append(Path(shutil.move(path, dest / path.name)))
    return moved


def write_wheel(directory: Path, name: str, version: str, body: bytes = b"VALUE = 42\n") -> Path:
    """A minimal valid pure-Python wheel, made by hand: no network, no build backend."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": body,
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        ).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return wheel
