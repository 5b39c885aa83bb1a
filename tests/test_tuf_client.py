"""caio-tuf-client: the conformance CLI, against tuf_repo repositories and hostile ones."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.tuf_fixtures import publish_repo
from tests.update_fixtures import NEWER, RUNNING, UpdateEnv


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
        published = next((env.repo.dir / "targets" / "caio" / version).iterdir())
        assert (tdir / quote(target(version), safe="")).read_bytes() == published.read_bytes()

    before = [p for p, _ in env.requests if "/targets/" in p]
    again = client("--metadata-dir", mdir, *download_args(env, tdir, target(NEWER)))
    assert again.returncode == 0
    assert [p for p, _ in env.requests if "/targets/" in p] == before  # not downloaded again


def test_a_tampered_target_fails_and_is_not_stored(env: UpdateEnv, tmp_path: Path) -> None:
    mdir, tdir = tmp_path / "md", tmp_path / "targets"
    client("--metadata-dir", mdir, "init", env.repo.trusted_root)
    published = next((env.repo.dir / "targets" / "caio" / NEWER).iterdir())
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
