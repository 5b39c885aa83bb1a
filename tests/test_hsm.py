"""Signing keys held in a PKCS#11 token: Debian's SoftHSM2, a throw-away token per test.

Every step runs the real `tuf-repo` CLI in its own process (a PKCS#11 library
is initialised once per process); an independent python-tuf client verifies
what the keys in the token signed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.components import require
from tests.tuf_fixtures import PublishedRepo, make_source_tree
from tuf_repo import RepoServer, RepoStore
from tuf_repo.release import build_release

pytestmark = [pytest.mark.slow, pytest.mark.hsm]

PIN, SO_PIN, TOKEN = "246810", "13579111", "caio-test"
MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")


@dataclass
class Token:
    env: dict[str, str]  # SOFTHSM2_CONF, PYKCS11LIB and the PIN variable


@pytest.fixture
def token(tmp_path: Path) -> Token:
    util = require("softhsm2-util", "softhsm2")
    if not MODULE.is_file():
        require("libsofthsm2.so (missing)", "softhsm2")
    tokens = tmp_path / "softhsm" / "tokens"
    tokens.mkdir(parents=True)
    conf = tmp_path / "softhsm" / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf), "PYKCS11LIB": str(MODULE), "HSM_PIN": PIN}
    made = subprocess.run(
        [util, "--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", SO_PIN],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    return Token(env)


def tuf_repo(token: Token, *args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuf_repo", *map(str, args)],
        env={**token.env, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def created_key(output: str) -> Path:
    return Path(output.strip().rsplit(": ", 1)[1])


def hsm_create(token: Token, keys: Path, role: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`tuf-repo key create --hsm` for ROLE in the test's token."""
    command = ["key", "create", "--keys", str(keys), "--role", role, "--hsm"]
    command += ["--token-label", TOKEN, "--pin-env", "HSM_PIN"]
    return tuf_repo(token, *command, **env)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[PublishedRepo]:
    """A repository made by the `tuf-repo init` CLI, served on loopback."""
    repo_dir, keys = tmp_path / "repo", tmp_path / "keys"
    init = subprocess.run(
        [sys.executable, "-m", "tuf_repo", "init", "--repo", repo_dir, "--keys", keys],
        capture_output=True,
        text=True,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    server = RepoServer(repo_dir, quiet=True).start()
    yield PublishedRepo(repo_dir, keys, tmp_path, server)
    server.stop()


def targets_key_in_token(token: Token, repo: PublishedRepo) -> Path:
    """Replace the targets key by one made in the token; returns its key file."""
    keys = repo.keys
    hsm_key = created_key(ok(hsm_create(token, keys, "targets")))
    ok(tuf_repo(token, "key", "add", "--repo", repo.dir, "--keys", keys, "targets", hsm_key))
    old = next(p for p in (keys / "offline").glob("targets-*.json") if p != hsm_key)
    old_id = json.loads(old.read_text())["keyid"]
    removed = ok(
        tuf_repo(token, "key", "remove", "--repo", repo.dir, "--keys", keys, "targets", old_id)
    )
    assert "1 old key(s) retired" in removed and not old.exists()  # only the token signs now
    return hsm_key


def root_keys(repo_dir: Path) -> list[str]:
    """The keyids of the newest published root's root role."""
    return list(RepoStore(repo_dir).load("root").signed.roles["root"].keyids)


def test_a_two_of_three_root_with_one_key_in_the_token(
    token: Token, repo: PublishedRepo, tmp_path: Path
) -> None:
    repo_dir, keys = repo.dir, repo.keys
    made = ok(hsm_create(token, keys, "root"))
    hsm_key = created_key(made)
    body = json.loads(hsm_key.read_text())
    assert body["uri"].startswith("hsm:") and "private_pem" not in body
    assert body["public"]["keytype"] == "ecdsa" and "PRIVATE" not in hsm_key.read_text()

    ok(tuf_repo(token, "key", "add", "--repo", repo_dir, "--keys", keys, "root", hsm_key))
    file_keys = sorted((keys / "offline").glob("root-*.json"))
    file_keys = [k for k in file_keys if k != hsm_key]
    first_file = json.loads(file_keys[0].read_text())["keyid"]
    ok(tuf_repo(token, "key", "remove", "--repo", repo_dir, "--keys", keys, "root", first_file))
    in_root = root_keys(repo_dir)
    assert len(in_root) == 3 and body["keyid"] in in_root  # 2 file keys + 1 in the token

    # Only one file key and the token at hand: the token's signature makes the threshold.
    holder = tmp_path / "holder"
    holder.mkdir()
    (holder / "online").mkdir()
    for path in (keys / "online").glob("*.json"):
        (holder / "online" / path.name).write_bytes(path.read_bytes())
    kept_file = next(k for k in file_keys[1:] if json.loads(k.read_text())["keyid"] in in_root)
    (holder / kept_file.name).write_bytes(kept_file.read_bytes())
    (holder / hsm_key.name).write_bytes(hsm_key.read_bytes())
    (holder / "offline").mkdir()
    ok(tuf_repo(token, "rotate", "--repo", repo_dir, "--keys", holder, "timestamp"))

    updater = repo.client()  # bootstrapped from 1.root.json
    updater.refresh()  # every root from v1 on, the last signed with the token's key
    trusted = json.loads((tmp_path / "client" / "metadata" / "root.json").read_text())
    assert trusted["signed"]["version"] == 4
    assert body["keyid"] in {sig["keyid"] for sig in trusted["signatures"]}


def test_a_targets_key_in_the_token_signs_a_release_a_client_verifies(
    token: Token, repo: PublishedRepo, tmp_path: Path
) -> None:
    repo_dir, keys = repo.dir, repo.keys
    hsm_key = targets_key_in_token(token, repo)

    artifact = build_release(make_source_tree(tmp_path / "src"), "1.1.0", tmp_path / "dist")
    ok(tuf_repo(token, "add", "--repo", repo_dir, "--keys", keys, artifact))
    targets = RepoStore(repo_dir).load("targets")
    assert list(targets.signatures) == [json.loads(hsm_key.read_text())["keyid"]]

    updater = repo.client()
    updater.refresh()
    info = updater.get_targetinfo("caio/1.1.0/caio-1.1.0.tar.gz")
    assert info is not None
    path = updater.download_target(info, str(tmp_path / "got.tar.gz"))
    assert Path(path).read_bytes() == artifact.read_bytes()


def test_the_token_key_rotated_out_of_root_is_followed_by_a_client(
    token: Token, repo: PublishedRepo, tmp_path: Path
) -> None:
    repo_dir, keys = repo.dir, repo.keys
    hsm_key = created_key(ok(hsm_create(token, keys, "root")))
    ok(tuf_repo(token, "key", "add", "--repo", repo_dir, "--keys", keys, "root", hsm_key))
    early = repo.client("early")
    early.refresh()  # holds root v2, which trusts the token's key
    keyid = json.loads(hsm_key.read_text())["keyid"]
    ok(tuf_repo(token, "key", "remove", "--repo", repo_dir, "--keys", keys, "root", keyid[:16]))
    assert keyid not in root_keys(repo_dir)

    early = repo.client("early")
    early.refresh()  # v2 -> v3, without the token's key
    trusted = json.loads((tmp_path / "early" / "metadata" / "root.json").read_text())
    assert trusted["signed"]["version"] == 3 and keyid not in trusted["signed"]["keys"]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"HSM_PIN": "000000"}, "wrong PIN"),
        ({"PYKCS11LIB": "/nonexistent/libpkcs11.so"}, "PYKCS11LIB"),
    ],
)
def test_a_wrong_pin_or_module_is_a_clear_error_naming_the_key_and_writes_nothing(
    token: Token, repo: PublishedRepo, change: dict[str, str], says: str
) -> None:
    repo_dir, keys = repo.dir, repo.keys
    refused = hsm_create(token, keys, "root", **change)
    assert refused.returncode == 1 and says in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr

    hsm_key = created_key(ok(hsm_create(token, keys, "root")))
    before = sorted(p.name for p in (repo_dir / "metadata").iterdir())
    failed = tuf_repo(
        token, "key", "add", "--repo", repo_dir, "--keys", keys, "root", hsm_key, **change
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert str(hsm_key) in failed.stderr and "Traceback" not in failed.stderr
    assert sorted(p.name for p in (repo_dir / "metadata").iterdir()) == before  # nothing written
    status = ok(tuf_repo(token, "status", "--repo", repo_dir))
    assert "staged: nothing" in status


def test_an_unset_pin_or_an_absent_token_is_one_line_naming_the_key_file(
    token: Token, repo: PublishedRepo, tmp_path: Path
) -> None:
    repo_dir, keys = repo.dir, repo.keys
    hsm_key = created_key(ok(hsm_create(token, keys, "root")))
    elsewhere = tmp_path / "no-tokens"
    (elsewhere / "tokens").mkdir(parents=True)
    (elsewhere / "softhsm2.conf").write_text(
        f"directories.tokendir = {elsewhere / 'tokens'}\nobjectstore.backend = file\n"
    )
    cases = {
        "unset PIN": {k: v for k, v in token.env.items() if k != "HSM_PIN"},
        "token absent": {**token.env, "SOFTHSM2_CONF": str(elsewhere / "softhsm2.conf")},
    }
    before = sorted(p.name for p in (repo_dir / "metadata").iterdir())
    for case, env in cases.items():
        command = ["key", "add", "--repo", repo_dir, "--keys", keys, "root", hsm_key]
        failed = subprocess.run(
            [sys.executable, "-m", "tuf_repo", *map(str, command)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert failed.returncode == 1, (case, failed.stdout + failed.stderr)
        assert "Traceback" not in failed.stderr, (case, failed.stderr)
        assert str(hsm_key) in failed.stderr, (case, failed.stderr)
        assert len(failed.stderr.strip().splitlines()) == 1, (case, failed.stderr)
    assert sorted(p.name for p in (repo_dir / "metadata").iterdir()) == before


def test_a_root_signing_the_file_keys_can_do_never_asks_for_the_tokens_pin(
    token: Token, repo: PublishedRepo
) -> None:
    repo_dir, keys = repo.dir, repo.keys
    hsm_key = created_key(ok(hsm_create(token, keys, "root")))
    ok(tuf_repo(token, "key", "add", "--repo", repo_dir, "--keys", keys, "root", hsm_key))
    hsm_keyid = json.loads(hsm_key.read_text())["keyid"]
    before = json.loads((repo_dir / "metadata" / "2.root.json").read_text())
    assert hsm_keyid in {s["keyid"] for s in before["signatures"]}  # it proved it can sign

    no_pin = {k: v for k, v in token.env.items() if k != "HSM_PIN"}
    command = ["refresh", "--repo", str(repo_dir), "--keys", str(keys), "--within", "400"]
    refresh = subprocess.run(
        [sys.executable, "-m", "tuf_repo", *command],
        env=no_pin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refresh.returncode == 0, refresh.stdout + refresh.stderr
    resigned = json.loads((repo_dir / "metadata" / "3.root.json").read_text())
    assert hsm_keyid not in {s["keyid"] for s in resigned["signatures"]}
    assert len(resigned["signatures"]) == 2  # the threshold, from file keys
    repo.client("after").refresh()


def test_an_approval_repository_signs_its_approvals_with_a_key_in_the_token(
    token: Token, repo: PublishedRepo, tmp_path: Path
) -> None:
    """Two-party approval with the approvers' targets key in their HSM."""
    repo_dir, keys = repo.dir, repo.keys
    hsm_key = targets_key_in_token(token, repo)

    vendor, vendor_keys = tmp_path / "vendor", tmp_path / "vendor-keys"
    vendor_root = ok(tuf_repo(token, "init", "--repo", vendor, "--keys", vendor_keys)).strip()
    artifact = build_release(make_source_tree(tmp_path / "src"), "1.1.0", tmp_path / "dist")
    ok(tuf_repo(token, "add", "--repo", vendor, "--keys", vendor_keys, artifact))
    approved = ok(
        tuf_repo(
            token,
            "approve",
            "--repo",
            repo_dir,
            "--keys",
            keys,
            "--from",
            vendor,
            "--trusted-root",
            vendor_root,
            "1.1.0",
            "--yes",
        )
    )
    assert "approved caio/1.1.0/caio-1.1.0.tar.gz" in approved
    targets = RepoStore(repo_dir).load("targets")
    assert list(targets.signatures) == [json.loads(hsm_key.read_text())["keyid"]]
    updater = repo.client()
    updater.refresh()
    info = updater.get_targetinfo("caio/1.1.0/caio-1.1.0.tar.gz")
    assert info is not None and info.length == artifact.stat().st_size
