"""Round trips through tuf_repo, checked by an independent ngclient over loopback HTTP."""

from __future__ import annotations

import hashlib
import json
import stat
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tuf.api.metadata import Metadata, Root
from tuf.ngclient import Updater

from caio.core.release_format import INDEX_PATH
from tests.tuf_fixtures import PublishedRepo, make_source_tree, publish_repo
from tuf_repo import Keyring, ReleaseError, RepoStore, TufRepoError, build_release


def read_index(client: Updater) -> list[dict[str, object]]:
    info = client.get_targetinfo(INDEX_PATH)
    assert info is not None
    path = client.download_target(info)
    releases: list[dict[str, object]] = json.loads(Path(path).read_bytes())["releases"]
    return releases


def test_init_publishes_every_role_with_the_documented_defaults(
    published_repo: PublishedRepo,
) -> None:
    root = Metadata[Root].from_file(str(published_repo.trusted_root)).signed
    assert root.consistent_snapshot
    assert (len(root.roles["root"].keyids), root.roles["root"].threshold) == (3, 2)
    for role in ("targets", "snapshot", "timestamp"):
        assert (len(root.roles[role].keyids), root.roles[role].threshold) == (1, 1)
    names = sorted(p.name for p in (published_repo.dir / "metadata").iterdir())
    assert names == ["1.root.json", "1.snapshot.json", "1.targets.json", "timestamp.json"]
    for key in published_repo.keys.rglob("*.json"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    for where in ("online", "offline"):
        assert stat.S_IMODE((published_repo.keys / where).stat().st_mode) == 0o700
    placed = {
        where: sorted(p.name.split("-")[0] for p in (published_repo.keys / where).iterdir())
        for where in ("online", "offline")
    }
    assert placed == {
        "online": ["snapshot", "timestamp"],
        "offline": ["root", "root", "root", "targets"],
    }
    days = {
        role: (published_repo.store.load(role).signed.expires - root.expires).days
        for role in ("targets", "snapshot", "timestamp")
    }
    assert days == {"targets": -275, "snapshot": -358, "timestamp": -364}


def test_init_twice_is_refused(published_repo: PublishedRepo) -> None:
    with pytest.raises(TufRepoError, match="already holds a repository"):
        publish_repo(published_repo.work)


def test_release_round_trip_over_http(published_repo: PublishedRepo) -> None:
    first = published_repo.release("1.0.0")
    second = published_repo.release("1.1.0", channels=("beta", "stable"))
    client = published_repo.client()
    client.refresh()
    index = read_index(client)
    assert [(e["version"], e["channels"]) for e in index] == [
        ("1.0.0", ["stable"]),
        ("1.1.0", ["beta", "stable"]),
    ]
    for artifact, entry in zip((first, second), index, strict=True):
        info = client.get_targetinfo(str(entry["target"]))
        assert info is not None
        assert info.path == f"caio/{entry['version']}/caio-{entry['version']}.tar.gz"
        assert info.custom["caio"]["version"] == entry["version"]
        downloaded = Path(client.download_target(info)).read_bytes()
        assert downloaded == artifact.read_bytes()


def test_same_version_with_other_bytes_is_refused(published_repo: PublishedRepo) -> None:
    published_repo.release("1.0.0")
    before = sorted(p.name for p in (published_repo.dir / "metadata").iterdir())
    other = published_repo.build("1.0.0", body="changed = True\n")
    with pytest.raises(TufRepoError, match="different bytes"):
        published_repo.publisher().add_release(other, ["stable"])
    assert sorted(p.name for p in (published_repo.dir / "metadata").iterdir()) == before


def test_same_bytes_again_is_a_no_op_and_new_channels_republish(
    published_repo: PublishedRepo,
) -> None:
    artifact = published_repo.release("1.0.0")
    publisher = published_repo.publisher()
    assert not publisher.add_release(artifact, ["stable"]).changed
    assert publisher.add_release(artifact, ["stable", "lts"]).changed
    client = published_repo.client()
    assert read_index(client)[0]["channels"] == ["lts", "stable"]


@pytest.mark.parametrize("name", ["caio.tar.gz", "caio-1.0.tar", "other-1.0.0.tar.gz"])
def test_artifact_with_a_wrong_name_is_refused(published_repo: PublishedRepo, name: str) -> None:
    path = published_repo.work / name
    path.write_bytes(b"x")
    with pytest.raises(ReleaseError, match=r"caio-<version>\.tar\.gz"):
        published_repo.publisher().add_release(path, ["stable"])


def _tarball(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    import io

    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


GOOD_MANIFEST = json.dumps({"version": "2.0.0"}).encode()


@pytest.mark.parametrize(
    ("members", "links", "message"),
    [
        ({"caio-2.0.0/caio/__init__.py": b""}, None, "manifest.json is missing"),
        ({"caio-2.0.0/manifest.json": GOOD_MANIFEST}, None, "__init__.py is missing"),
        (
            {
                "caio-2.0.0/manifest.json": json.dumps({"version": "2.0.1"}).encode(),
                "caio-2.0.0/caio/__init__.py": b"",
            },
            None,
            "manifest says version '2.0.1'",
        ),
        ({"caio-2.0.0/../evil": b"", "caio-2.0.0/manifest.json": GOOD_MANIFEST}, None, "unsafe"),
        ({"/etc/evil": b""}, None, "unsafe"),
        ({"other/file": b""}, None, "outside the top directory caio-2.0.0/"),
        ({}, {"caio-2.0.0/link": "/etc/passwd"}, "links are not allowed"),
    ],
)
def test_invalid_release_is_refused_and_nothing_changes(
    published_repo: PublishedRepo,
    members: dict[str, bytes],
    links: dict[str, str] | None,
    message: str,
) -> None:
    artifact = _tarball(published_repo.work / "caio-2.0.0.tar.gz", members, links)
    before = {p: p.read_bytes() for p in published_repo.dir.rglob("*") if p.is_file()}
    with pytest.raises(ReleaseError, match=message):
        published_repo.publisher().add_release(artifact, ["stable"])
    after = {p: p.read_bytes() for p in published_repo.dir.rglob("*") if p.is_file()}
    assert after == before


def test_not_a_tarball_is_refused(published_repo: PublishedRepo) -> None:
    path = published_repo.work / "caio-3.0.0.tar.gz"
    path.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(ReleaseError, match="not a valid gzip tarball"):
        published_repo.publisher().add_release(path, ["stable"])


def test_builds_are_byte_identical_and_well_formed(tmp_path: Path) -> None:
    src = make_source_tree(tmp_path / "src", body="x = 1\n")
    (src / "caio" / "__pycache__").mkdir()
    (src / "caio" / "__pycache__" / "junk.pyc").write_bytes(b"junk")
    (src / "caio" / "z.py").write_text("z = 3\n")
    (src / "caio" / "sub").mkdir()
    (src / "caio" / "sub" / "mod.py").write_text("y = 2\n")
    one = build_release(src, "1.2.0", tmp_path / "a")
    two = build_release(src, "1.2.0", tmp_path / "b")
    assert one.read_bytes() == two.read_bytes()
    with tarfile.open(one) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        manifest = json.loads(tar.extractfile("caio-1.2.0/manifest.json").read())  # type: ignore[union-attr]
    assert names[:2] == ["caio-1.2.0", "caio-1.2.0/manifest.json"]
    assert names[2:] == sorted(names[2:])
    assert "caio-1.2.0/caio/__pycache__/junk.pyc" not in names
    assert "caio-1.2.0/caio/sub/mod.py" in names
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    assert len({m.mtime for m in members}) == 1
    assert manifest["version"] == "1.2.0"
    assert manifest["commit"] == "unknown"  # no git here
    assert set(manifest) == {"name", "version", "build_date", "commit", "update_url", "channel"}


def test_source_date_epoch_makes_builds_reproducible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    src = make_source_tree(tmp_path / "src")
    one = build_release(src, "1.0.0", tmp_path / "a")
    (src / "caio" / "__init__.py").touch()
    two = build_release(src, "1.0.0", tmp_path / "b")
    assert one.read_bytes() == two.read_bytes()
    with tarfile.open(one) as tar:
        manifest = json.loads(tar.extractfile("caio-1.0.0/manifest.json").read())  # type: ignore[union-attr]
    assert manifest["build_date"] == "2023-11-14T22:13:20Z"
    three = build_release(src, "1.0.1", tmp_path / "c")
    assert three.read_bytes() != one.read_bytes()


def test_real_source_tree_builds_reproducibly_with_its_git_commit(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    one = build_release(root, "9.9.9", tmp_path / "a")
    two = build_release(root, "9.9.9", tmp_path / "b")
    assert one.read_bytes() == two.read_bytes()
    with tarfile.open(one) as tar:
        names = tar.getnames()
    assert "caio-9.9.9/caio/api/app.py" in names
    assert not any(n.startswith("caio-9.9.9/tuf_repo") for n in names)


def test_invalid_version_is_refused(tmp_path: Path) -> None:
    src = make_source_tree(tmp_path / "src")
    with pytest.raises(ReleaseError, match="PEP 440"):
        build_release(src, "one.two", tmp_path)
    with pytest.raises(ReleaseError, match="normalised"):
        build_release(src, "1.0.0-RC1", tmp_path)
    with pytest.raises(ReleaseError, match="not a CAIO source tree"):
        build_release(tmp_path / "nowhere", "1.0.0", tmp_path)


def test_hash_bins_round_trip(tmp_path: Path) -> None:
    repo = publish_repo(tmp_path, bins=8)
    try:
        repo.release("1.0.0")
        repo.release("1.1.0")
        names = {p.name for p in (repo.dir / "metadata").iterdir()}
        assert {f"1.bin-{n}.json" for n in range(8)} <= names
        assert repo.publisher().status().roles[1].version == 1  # top-level targets untouched
        # Bins by version only in the snapshot; targets.json (offline) pinned by hash too.
        meta = RepoStore(repo.dir).load("snapshot").signed.meta
        bins = [m for name, m in meta.items() if name.startswith("bin-")]
        assert len(bins) == 8 and all(m.length is None and m.hashes is None for m in bins)
        assert meta["targets.json"].hashes and meta["targets.json"].length
        client = repo.client()
        assert [e["version"] for e in read_index(client)] == ["1.0.0", "1.1.0"]
        info = client.get_targetinfo("caio/1.1.0/caio-1.1.0.tar.gz")
        assert info is not None
        client.download_target(info)
    finally:
        repo.server.stop()


def test_server_serves_only_repository_files_and_ranges(published_repo: PublishedRepo) -> None:
    artifact = published_repo.release("1.0.0")
    sha = hashlib.sha256(artifact.read_bytes()).hexdigest()
    url = f"{published_repo.url}/targets/caio/1.0.0/{sha}.caio-1.0.0.tar.gz"
    full = httpx.get(url)
    assert full.content == artifact.read_bytes()
    part = httpx.get(url, headers={"Range": "bytes=10-"})
    assert part.status_code == 206
    assert part.content == artifact.read_bytes()[10:]
    assert part.headers["Content-Range"] == f"bytes 10-{len(full.content) - 1}/{len(full.content)}"
    assert httpx.get(url, headers={"Range": "bytes=999999-"}).status_code == 416
    for missing in ("/metadata/99.root.json", "/tuf-repo.json", "/staged/root.json", "/", "/../x"):
        assert httpx.get(published_repo.url + missing).status_code == 404


def test_an_add_learns_bin_expiry_from_its_index_and_notices_a_changed_bin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 23, item 4: with 100,000 targets, parsing every bin was 3/4 of an add."""
    repo = publish_repo(tmp_path, bins=16)
    try:
        repo.release("1.0.0")
        assert (repo.dir / "expiry-index.json").is_file()
        loaded: list[str] = []
        real_load = RepoStore.load

        def counting(self: RepoStore, role: str, version: int | None = None) -> Metadata[Any]:
            loaded.append(role)
            return real_load(self, role, version)

        with monkeypatch.context() as patch:
            patch.setattr(RepoStore, "load", counting)
            repo.release("1.1.0")
        bins = {r for r in loaded if r.startswith("bin-")}
        # The bins it changes and reads, not all 16: the release's, the index's, the
        # delta's from 1.0.0, and the one listing 1.0.0 (the delta's base).
        assert len(bins) <= 4, bins

        (repo.dir / "expiry-index.json").write_text("{damaged")  # a cache: read the bins again
        repo.release("1.2.0")
        assert json.loads((repo.dir / "expiry-index.json").read_text())  # and learnt again

        # A bin changed behind the index (re-signed in place, now expired) is read again.
        store = RepoStore(repo.dir)
        succinct = store.load("targets").signed.delegations.succinct_roles
        assert succinct is not None
        busy = {
            succinct.get_role_for_target(p) for p in (INDEX_PATH, "caio/1.3.0/caio-1.3.0.tar.gz")
        }
        idle = next(r for r in succinct.get_roles() if r not in busy)
        md = store.load(idle)
        md.signed.expires = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        md.signatures.clear()
        for signer in Keyring.from_dir(repo.keys).signers(succinct.keyids):
            md.sign(signer, append=True)
        store.metadata_path(idle, md.signed.version).write_bytes(RepoStore.serialise(md))
        with pytest.raises(TufRepoError, match=f"{idle} v{md.signed.version} expired on"):
            repo.release("1.3.0")
    finally:
        repo.server.stop()
