"""Attacks on the update path: each ends in `failed` with its code, current unchanged, no leftovers.

Setup for every test: 1.0.0 runs, 1.1.0 was installed by a good update (so
`current` is 1.1.0), and the attack targets the update to 1.2.0.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Timestamp

from caio.core.settings import SOURCE_DIR
from tests.update_fixtures import (
    NEWER,
    RUNNING,
    UpdateEnv,
    clone_update_env,
    cut_after,
    endless,
    make_update_env,
)
from tuf_repo import Keyring
from tuf_repo.release import ReleaseInfo

TARGET = "1.2.0"


@pytest.fixture(scope="session")
def updated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpdateEnv]:
    """1.0.0 and 1.1.0 published, 1.1.0 installed by a good update: built once, cloned per test."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUF_REPO_STATE_DIR", str(tmp_path_factory.mktemp("template-state")))
        template = make_update_env(tmp_path_factory.mktemp("updated-template"))
        template.publish(RUNNING)
        template.publish(NEWER)
        assert template.run_update(template.client())["status"] == "complete"
        assert template.layout.current_version == NEWER
    template.repo.server.stop()
    yield template


@pytest.fixture
def env(updated_template: UpdateEnv, tmp_path: Path) -> Iterator[UpdateEnv]:
    cloned = clone_update_env(updated_template, tmp_path)
    # Attacks on the full download: with a delta the host would not fetch the artifact at
    # all (the delta path's own attacks are in test_delta_update.py).
    cloned.settings = cloned.settings.model_copy(update={"delta": "off"})
    yield cloned
    cloned.repo.server.stop()


def metadata_dir(env: UpdateEnv) -> Path:
    return env.repo.dir / "metadata"


def artifact_file(env: UpdateEnv, version: str) -> Path:
    return next((env.repo.dir / "targets" / "caio" / version).glob("*.tar.gz"))


def latest(env: UpdateEnv, role: str) -> Path:
    return metadata_dir(env) / f"{env.repo.store.published_version(role)}.{role}.json"


def sign_as(env: UpdateEnv, role: str, md: Metadata[Any]) -> bytes:
    """Sign ``md`` with the repository's real key for ``role`` (a compromised online key)."""
    root = Metadata[Root].from_file(str(latest(env, "root"))).signed
    md.signatures.clear()
    for signer in Keyring.from_dir(env.repo.keys).signers(root.roles[role].keyids):
        md.sign(signer, append=True)
    return md.to_bytes()


def forge_timestamp(env: UpdateEnv, snapshot_path: Path, **changes: Any) -> None:
    """A new timestamp, signed with the real timestamp key, pointing at ``snapshot_path``."""
    ts = Metadata[Timestamp].from_file(str(metadata_dir(env) / "timestamp.json"))
    data = snapshot_path.read_bytes()
    version = int(snapshot_path.name.split(".")[0])
    ts.signed.version += 1
    ts.signed.snapshot_meta = MetaFile(version, len(data), {"sha256": _sha(data)})
    for name, value in changes.items():
        setattr(ts.signed, name, value)
    (metadata_dir(env) / "timestamp.json").write_bytes(sign_as(env, "timestamp", ts))


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def expect_failure(env: UpdateEnv, code: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    before = (env.layout.current_version, env.layout.previous_version)
    status = env.run_update(env.client(), body)
    assert status["status"] == "failed", status
    assert status["error"]["code"] == code, status["error"]
    assert (env.layout.current_version, env.layout.previous_version) == before
    assert TARGET not in env.layout.installed_versions()
    assert env.leftovers() == []
    return status


# --- the artifact ----------------------------------------------------------------


def test_tampered_artifact_of_the_same_length(env: UpdateEnv) -> None:
    env.publish(TARGET)
    path = artifact_file(env, TARGET)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    expect_failure(env, "hash_mismatch")


def test_truncated_artifact(env: UpdateEnv) -> None:
    env.publish(TARGET)
    path = artifact_file(env, TARGET)
    path.write_bytes(path.read_bytes()[:-100])
    expect_failure(env, "length_mismatch")


def test_over_long_artifact(env: UpdateEnv) -> None:
    env.publish(TARGET)
    path = artifact_file(env, TARGET)
    path.write_bytes(path.read_bytes() + b"trailing bytes")
    expect_failure(env, "length_mismatch")


def test_endless_data_is_cut_at_the_signed_length(env: UpdateEnv) -> None:
    env.publish(TARGET)
    env.behaviours[artifact_file(env, TARGET).name] = endless
    status = expect_failure(env, "length_mismatch")
    assert "more than the signed" in status["error"]["message"]


def test_endless_metadata_is_cut_too(env: UpdateEnv) -> None:
    env.behaviours["/timestamp.json"] = endless
    expect_failure(env, "length_mismatch")


def test_interrupted_transfer_resumes_with_a_range_and_verifies(env: UpdateEnv) -> None:
    env.publish(TARGET)
    name = artifact_file(env, TARGET).name
    size = artifact_file(env, TARGET).stat().st_size
    env.behaviours[name] = cut_after(size // 2)
    status = env.run_update(env.client())
    assert status["status"] == "complete", status
    assert env.layout.current_version == TARGET
    ranges = [r for path, r in env.requests if path.endswith(name)]
    assert ranges[0] is None
    assert ranges[1] == f"bytes={size // 2}-"


# --- metadata ------------------------------------------------------------------


def test_replayed_old_timestamp_is_refused(env: UpdateEnv) -> None:
    old = (metadata_dir(env) / "timestamp.json").read_bytes()
    env.publish(TARGET)
    env.client().get("/api/v1/update/check", headers=env.auth())  # client trusts the new one
    (metadata_dir(env) / "timestamp.json").write_bytes(old)
    expect_failure(env, "metadata_rollback")


def test_replayed_old_snapshot_is_refused(env: UpdateEnv) -> None:
    old_snapshot = latest(env, "snapshot")
    env.publish(TARGET)
    env.client().get("/api/v1/update/check", headers=env.auth())
    forge_timestamp(env, old_snapshot)
    expect_failure(env, "metadata_rollback")


def test_replayed_old_targets_is_refused(env: UpdateEnv) -> None:
    old_targets = latest(env, "targets")
    env.publish(TARGET)
    env.client().get("/api/v1/update/check", headers=env.auth())
    snapshot = Metadata[Snapshot].from_file(str(latest(env, "snapshot")))
    data = old_targets.read_bytes()
    snapshot.signed.version += 1
    snapshot.signed.meta["targets.json"] = MetaFile(
        int(old_targets.name.split(".")[0]), len(data), {"sha256": _sha(data)}
    )
    new_snapshot = metadata_dir(env) / f"{snapshot.signed.version}.snapshot.json"
    new_snapshot.write_bytes(sign_as(env, "snapshot", snapshot))
    forge_timestamp(env, new_snapshot)
    expect_failure(env, "metadata_rollback")


def test_frozen_repository_is_detected_by_expiry(tmp_path: Path) -> None:
    env = make_update_env(tmp_path)
    try:
        env.publish(RUNNING)
        env.publish(NEWER)
        ts = Metadata[Timestamp].from_file(str(metadata_dir(env) / "timestamp.json"))
        ts.signed.expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        ts.signed.version += 1
        (metadata_dir(env) / "timestamp.json").write_bytes(sign_as(env, "timestamp", ts))
        time.sleep(2.5)  # the publisher stops; a mirror keeps serving the last timestamp
        status = env.run_update(env.client())
        assert status["error"]["code"] == "metadata_expired"
        assert env.layout.current_version is None
        assert env.leftovers() == []
    finally:
        env.repo.server.stop()


def test_root_signed_below_threshold_is_refused(env: UpdateEnv) -> None:
    root = Metadata.from_file(str(latest(env, "root")))
    root.signed.version += 1
    root.signatures.clear()
    one_key = next(env.repo.keys.rglob("root-*.json"))
    from tuf_repo import read_key_file

    root.sign(read_key_file(one_key).signer())  # 1 of the 2 required
    (metadata_dir(env) / "2.root.json").write_bytes(root.to_bytes())
    expect_failure(env, "signature_threshold")


def test_targets_signed_by_an_untrusted_key_is_refused(env: UpdateEnv) -> None:
    targets = Metadata[Timestamp].from_file(str(latest(env, "targets")))
    targets.signed.version += 1
    targets.signatures.clear()
    targets.sign(CryptoSigner.generate_ed25519())
    data = targets.to_bytes()
    (metadata_dir(env) / f"{targets.signed.version}.targets.json").write_bytes(data)
    snapshot = Metadata[Snapshot].from_file(str(latest(env, "snapshot")))
    snapshot.signed.version += 1
    snapshot.signed.meta["targets.json"] = MetaFile(
        targets.signed.version, len(data), {"sha256": _sha(data)}
    )
    new_snapshot = metadata_dir(env) / f"{snapshot.signed.version}.snapshot.json"
    new_snapshot.write_bytes(sign_as(env, "snapshot", snapshot))
    forge_timestamp(env, new_snapshot)
    expect_failure(env, "signature_threshold")


def test_mix_and_match_of_snapshot_and_targets_is_refused(env: UpdateEnv) -> None:
    older_targets = latest(env, "targets").read_bytes()
    env.publish(TARGET)
    # The current snapshot now pins the new targets; serve the older targets under its name.
    latest(env, "targets").write_bytes(older_targets)
    expect_failure(env, "hash_mismatch")


def test_release_missing_from_the_signed_index(env: UpdateEnv) -> None:
    expect_failure(env, "target_not_found", {"target_version": "9.9.9"})


# --- hostile archives (signed: a compromised build, caught at install) ---------


def _archive(members: list[tarfile.TarInfo], data: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info in members:
            payload = data.get(info.name)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


def _file(name: str, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


def _special(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


TOP = f"caio-{TARGET}"
GOOD_MANIFEST = json.dumps(
    {"name": "caio", "version": TARGET, "update_url": "http://127.0.0.1:9", "channel": "stable"}
).encode()
BASE = {f"{TOP}/manifest.json": GOOD_MANIFEST, f"{TOP}/caio/__init__.py": b""}


def _base() -> list[tarfile.TarInfo]:
    return [_file(name, len(data)) for name, data in BASE.items()]


HOSTILE = {
    "traversal": (
        [*_base(), _file(f"{TOP}/../../escape.txt", 1)],
        {f"{TOP}/../../escape.txt": b"x"},
    ),
    "absolute": ([*_base(), _file("/tmp/caio-absolute.txt", 1)], {"/tmp/caio-absolute.txt": b"x"}),
    "symlink": ([*_base(), _special(f"{TOP}/caio/evil", tarfile.SYMTYPE, "/etc/passwd")], {}),
    "hardlink": ([*_base(), _special(f"{TOP}/caio/evil", tarfile.LNKTYPE, "/etc/passwd")], {}),
    "device": ([*_base(), _special(f"{TOP}/caio/null", tarfile.CHRTYPE)], {}),
    "fifo": ([*_base(), _special(f"{TOP}/caio/pipe", tarfile.FIFOTYPE)], {}),
    "outside top": ([*_base(), _file("other-dir/file.txt", 1)], {"other-dir/file.txt": b"x"}),
    "oversize": (
        [*_base(), _file(f"{TOP}/caio/big.bin", 3 * 1024 * 1024)],
        {f"{TOP}/caio/big.bin": b"\0" * (3 * 1024 * 1024)},
    ),
}


WHY = {
    "traversal": "unsafe path",
    "absolute": "unsafe path",
    "symlink": "links are not allowed",
    "hardlink": "links are not allowed",
    "device": "special files are not allowed",
    "fifo": "special files are not allowed",
    "outside top": "outside the top directory",
    "oversize": "unpacks to more than",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_archive_is_refused_at_install(env: UpdateEnv, kind: str) -> None:
    members, extra = HOSTILE[kind]
    path = env.repo.work / f"caio-{TARGET}.tar.gz"
    path.write_bytes(_archive(members, {**BASE, **extra}))
    env.repo.publisher().publish_artifact(path, ReleaseInfo(TARGET, "", "x", "stable"), ["stable"])
    env.settings = env.settings.model_copy(update={"max_unpacked_mb": 2})
    status = expect_failure(env, "package_invalid")
    assert WHY[kind] in status["error"]["message"]
    assert not Path("/tmp/caio-absolute.txt").exists()
    assert not (env.layout.releases.parent / "escape.txt").exists()


def test_manifest_version_must_match_the_signed_version(env: UpdateEnv) -> None:
    lying = json.loads(GOOD_MANIFEST)
    lying["version"] = "1.2.1"
    data = {**BASE, f"{TOP}/manifest.json": json.dumps(lying).encode()}
    path = env.repo.work / f"caio-{TARGET}.tar.gz"
    path.write_bytes(_archive([_file(n, len(d)) for n, d in data.items()], data))
    env.repo.publisher().publish_artifact(path, ReleaseInfo(TARGET, "", "x", "stable"), ["stable"])
    status = expect_failure(env, "package_invalid")
    assert "1.2.1" in status["error"]["message"]


def test_release_that_does_not_import_fails_preflight(env: UpdateEnv) -> None:
    src = env.repo.work / "broken-src"
    import shutil

    shutil.copytree(SOURCE_DIR / "caio", src / "caio")
    shutil.copy(SOURCE_DIR / "manifest.json", src / "manifest.json")
    (src / "caio" / "api" / "app.py").write_text("raise ImportError('broken release')\n")
    from tuf_repo import build_release

    artifact = build_release(src, TARGET, env.repo.work / "dist-broken")
    env.repo.publisher().add_release(artifact, ["stable"])
    status = expect_failure(env, "preflight_failed")
    assert "broken release" in status["error"]["message"]
