"""`tuf-repo key create / add / remove` with file keys (the token case is in test_hsm.py)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tuf_repo import RepoStore
from tuf_repo.cli import app


def run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def root_keyids(repo: Path) -> list[str]:
    """The keyids of the newest published root's root role."""
    return list(RepoStore(repo).load("root").signed.roles["root"].keyids)


def test_a_key_is_created_added_to_root_and_removed_again(tmp_path: Path) -> None:
    repo, keys = tmp_path / "repo", tmp_path / "keys"
    assert run("init", "--repo", repo, "--keys", keys)[0] == 0
    code, out = run("key", "create", "--keys", keys, "--role", "root")
    assert code == 0 and "(in the file)" in out
    key_file = Path(out.strip().rsplit(": ", 1)[1])
    assert key_file.parent == keys / "offline" and key_file.stat().st_mode & 0o777 == 0o600
    keyid = json.loads(key_file.read_text())["keyid"]

    code, out = run("key", "add", "--repo", repo, "--keys", keys, "root", key_file)
    assert code == 0 and "4 keys, threshold 2" in out, out
    assert keyid in root_keyids(repo)
    code, out = run("key", "add", "--repo", repo, "--keys", keys, "root", key_file)
    assert code == 1 and "already a root key" in out

    code, out = run("key", "remove", "--repo", repo, "--keys", keys, "root", keyid[:10])
    assert code == 0 and "3 keys left" in out, out
    assert "1 old key(s) retired" in out  # the removed key cannot sign a forged root any more
    assert not key_file.exists()
    retired = json.loads((keys / "retired" / key_file.name).read_text())
    assert retired["keyid"] == keyid and "private_pem" not in retired
    code, out = run("key", "remove", "--repo", repo, "--keys", keys, "root", "ffff")
    assert code == 2 and "0 root keys match" in out


def test_a_key_is_never_removed_below_the_threshold(tmp_path: Path) -> None:
    repo, keys = tmp_path / "repo", tmp_path / "keys"
    assert run("init", "--repo", repo, "--keys", keys, "--root-keys", "2")[0] == 0
    first = root_keyids(repo)[0]
    code, out = run("key", "remove", "--repo", repo, "--keys", keys, "root", first)
    assert code == 1 and "fewer keys than its threshold 2" in out
    code, out = run("key", "create", "--keys", keys, "--role", "root", "--hsm")
    assert code == 2 and "--token-label and --pin-env" in out
