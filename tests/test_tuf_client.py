"""caio-tuf-client: the conformance CLI, against tuf_repo repositories and hostile ones."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.tuf_fixtures import publish_repo
from tests.update_fixtures import NEWER, RUNNING, UpdateEnv

pytestmark = pytest.mark.slow  # real processes


def client(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caio.tuf_client", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def target(version: str) -> str:
    return f"caio/{version}/caio-{version}.tar.gz"


@pytest.fixture
def env(update_env: UpdateEnv) -> UpdateEnv:
    update_env.publish(RUNNING)
    update_env.publish(NEWER)
    return update_env


def urls(env: UpdateEnv) -> list[str]:
    return ["--metadata-url", f"{env.repo.url}/metadata/"]


def download_args(env: UpdateEnv, tdir: Path, *names: str) -> list[str]:
    args = [*urls(env), "--target-dir", str(tdir), "--target-base-url", f"{env.repo.url}/targets/"]
    for name in names:
        args += ["--target-name", name]
    return [*args, "download"]


def test_init_refresh_keep_only_metadata_byte_for_byte(env: UpdateEnv, tmp_path: Path) -> None:
    mdir = tmp_path / "md"
    assert client("--metadata-dir", mdir, "init", env.repo.trusted_root).returncode == 0
    assert sorted(p.name for p in mdir.iterdir()) == ["root.json"]
    done = client(*urls(env), "--metadata-dir", mdir, "refresh")
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in mdir.iterdir())
    assert names == ["root.json", "snapshot.json", "targets.json", "timestamp.json"]
    served = env.repo.dir / "metadata"
    store = env.repo.store
    assert (mdir / "timestamp.json").read_bytes() == (served / "timestamp.json").read_bytes()
    for role in ("snapshot", "targets"):
        version = store.published_version(role)
        assert (mdir / f"{role}.json").read_bytes() == (
            served / f"{version}.{role}.json"
        ).read_bytes()
    assert all(p.is_file() and not p.is_symlink() for p in mdir.iterdir())


def test_download_in_order_verified_and_cached(env: UpdateEnv, tmp_path: Path) -> None:
    mdir, tdir = tmp_path / "md", tmp_path / "targets"
    client("--metadata-dir", mdir, "init", env.repo.trusted_root)
    done = client("--metadata-dir", mdir, *download_args(env, tdir, target(RUNNING), target(NEWER)))
    assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in tdir.iterdir())
    assert files == sorted(quote(target(v), safe="") for v in (RUNNING, NEWER))
    for version in (RUNNING, NEWER):
        published = next((env.repo.dir / "targets" / "caio" / version).glob("*.tar.gz"))
        assert (tdir / quote(target(version), safe="")).read_bytes() == published.read_bytes()

    before = [p for p, _ in env.requests if "/targets/" in p]
    again = client("--metadata-dir", mdir, *download_args(env, tdir, target(NEWER)))
    assert again.returncode == 0
    assert [p for p, _ in env.requests if "/targets/" in p] == before  # not downloaded again


def test_a_tampered_target_fails_and_is_not_stored(env: UpdateEnv, tmp_path: Path) -> None:
    mdir, tdir = tmp_path / "md", tmp_path / "targets"
    client("--metadata-dir", mdir, "init", env.repo.trusted_root)
    published = next((env.repo.dir / "targets" / "caio" / NEWER).glob("*.tar.gz"))
    data = bytearray(published.read_bytes())
    data[10] ^= 0xFF
    published.write_bytes(bytes(data))
    done = client("--metadata-dir", mdir, *download_args(env, tdir, target(NEWER), target(RUNNING)))
    assert done.returncode == 1
    assert "does not match" in done.stderr
    assert not tdir.exists() or list(tdir.iterdir()) == []  # stopped at the first failure


def test_an_unknown_target_fails(env: UpdateEnv, tmp_path: Path) -> None:
    mdir, tdir = tmp_path / "md", tmp_path / "targets"
    client("--metadata-dir", mdir, "init", env.repo.trusted_root)
    done = client("--metadata-dir", mdir, *download_args(env, tdir, "caio/nothing.tar.gz"))
    assert done.returncode == 1
    assert "not a signed target" in done.stderr


def test_a_replayed_timestamp_fails_the_refresh(env: UpdateEnv, tmp_path: Path) -> None:
    mdir = tmp_path / "md"
    client("--metadata-dir", mdir, "init", env.repo.trusted_root)
    old = (env.repo.dir / "metadata" / "timestamp.json").read_bytes()
    env.publish("1.2.0")
    assert client(*urls(env), "--metadata-dir", mdir, "refresh").returncode == 0
    trusted = (mdir / "timestamp.json").read_bytes()
    (env.repo.dir / "metadata" / "timestamp.json").write_bytes(old)
    done = client(*urls(env), "--metadata-dir", mdir, "refresh")
    assert done.returncode == 1
    assert (mdir / "timestamp.json").read_bytes() == trusted  # the newer one stays trusted


def test_root_rotation_is_followed(env: UpdateEnv, tmp_path: Path) -> None:
    mdir = tmp_path / "md"
    client("--metadata-dir", mdir, "init", env.repo.trusted_root)
    assert client(*urls(env), "--metadata-dir", mdir, "refresh").returncode == 0
    env.repo.publisher().rotate("root", env.repo.keys)
    assert client(*urls(env), "--metadata-dir", mdir, "refresh").returncode == 0
    assert (mdir / "root.json").read_bytes() == (env.repo.dir / "metadata/2.root.json").read_bytes()


def test_delegated_hash_bins_are_followed_and_kept(tmp_path: Path) -> None:
    repo = publish_repo(tmp_path / "pub", bins=4)
    try:
        artifact = repo.release("2.0.0")
        mdir, tdir = tmp_path / "md", tmp_path / "targets"
        client("--metadata-dir", mdir, "init", repo.trusted_root)
        done = client(
            "--metadata-dir",
            mdir,
            "--metadata-url",
            f"{repo.url}/metadata",
            "--target-name",
            target("2.0.0"),
            "--target-dir",
            tdir,
            "--target-base-url",
            f"{repo.url}/targets",
            "download",
        )
        assert done.returncode == 0, done.stderr
        assert any(p.name.startswith("bin-") for p in mdir.iterdir())
        stored = (tdir / quote(target("2.0.0"), safe="")).read_bytes()
        assert hashlib.sha256(stored).digest() == hashlib.sha256(artifact.read_bytes()).digest()
    finally:
        repo.server.stop()


@pytest.mark.parametrize(
    "args",
    [
        ["--metadata-dir", "{tmp}/md", "refresh"],
        ["--metadata-dir", "{tmp}/md", "init"],
        ["--metadata-dir", "{tmp}/md", "--metadata-url", "http://127.0.0.1:9/m", "download"],
        ["--metadata-dir", "{tmp}/md", "explode"],
        ["--metadata-dir", "{tmp}/md", "--metadata-url", "http://127.0.0.1:9/m", "refresh"],
    ],
)
def test_every_failure_exits_exactly_1(tmp_path: Path, args: list[str]) -> None:
    done = client(*[a.format(tmp=tmp_path) for a in args])
    assert done.returncode == 1, done.stderr


DELEGATED = ["a?b", "c#d", "e/f", "../g"]


def _delegating_repository() -> dict[str, bytes]:
    """Metadata whose targets delegate (non-terminating) to roles with awkward names."""
    from datetime import UTC, datetime, timedelta

    from securesystemslib.signer import CryptoSigner
    from tuf.api.metadata import (
        DelegatedRole,
        Delegations,
        Metadata,
        MetaFile,
        Root,
        Snapshot,
        Targets,
        Timestamp,
    )

    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
    signers = {
        name: CryptoSigner.generate_ed25519()
        for name in ["root", "timestamp", "snapshot", "targets", *DELEGATED]
    }
    root = Root(expires=expires, consistent_snapshot=True)
    for role in ("root", "timestamp", "snapshot", "targets"):
        root.add_key(signers[role].public_key, role)
    targets = Targets(expires=expires)
    targets.delegations = Delegations(
        keys={signers[n].public_key.keyid: signers[n].public_key for n in DELEGATED},
        roles={
            n: DelegatedRole(n, [signers[n].public_key.keyid], 1, False, paths=["*"])
            for n in DELEGATED
        },
    )
    snapshot = Snapshot(expires=expires)
    files: dict[str, bytes] = {}

    def put(url_name: str, role: str, signed: Root | Targets | Snapshot | Timestamp) -> bytes:
        md: Metadata[Any] = Metadata(signed)
        md.sign(signers[role])
        files[f"/metadata/{url_name}"] = md.to_bytes()
        return files[f"/metadata/{url_name}"]

    put("1.root.json", "root", root)
    put("1.targets.json", "targets", targets)
    for name in DELEGATED:
        put(f"1.{quote(name, safe='')}.json", name, Targets(expires=expires))
        snapshot.meta[f"{name}.json"] = MetaFile(1)
    put("1.snapshot.json", "snapshot", snapshot)
    timestamp = Timestamp(expires=expires, snapshot_meta=MetaFile(1))
    put("timestamp.json", "timestamp", timestamp)
    return files


def test_a_failed_lookup_through_delegations_keeps_every_verified_role(tmp_path: Path) -> None:
    import http.server
    import threading

    files = _delegating_repository()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the raw path, percent-encoding and all
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *_: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        mdir, root = tmp_path / "md", tmp_path / "root.json"
        root.write_bytes(files["/metadata/1.root.json"])
        assert client("--metadata-dir", mdir, "init", root).returncode == 0
        done = client(
            "--metadata-url",
            f"{url}/metadata/",
            "--metadata-dir",
            mdir,
            "--target-dir",
            tmp_path / "t",
            "--target-base-url",
            f"{url}/targets/",
            "--target-name",
            "not-there.txt",
            "download",
        )
        assert done.returncode == 1
        assert "not a signed target" in done.stderr
        expected = {f"{quote(n, safe='')}.json" for n in DELEGATED}
        assert expected <= {p.name for p in mdir.iterdir()}
        for name in DELEGATED:
            stored = (mdir / f"{quote(name, safe='')}.json").read_bytes()
            assert stored == files[f"/metadata/1.{quote(name, safe='')}.json"]
    finally:
        server.shutdown()
        server.server_close()
