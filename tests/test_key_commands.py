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


def test_keys_a_staged_rotation_ends_are_retired_once_it_is_published(tmp_path: Path) -> None:
    """Issue 20, low: staged rotations left old private keys on the cron host and with
    holders. Whoever holds such a key retires it once the rotation is published: `sign`
    its own key, `refresh` the online keys, `key retire` any holder's directory."""
    repo, keys, holders = tmp_path / "repo", tmp_path / "keys", tmp_path / "holders"
    assert run("init", "--repo", repo, "--keys", keys)[0] == 0
    (keys / "offline").rename(holders)
    old_timestamp = next((keys / "online").glob("timestamp-*.json"))
    code, out = run("rotate", "--repo", repo, "--keys", keys, "timestamp")
    assert code == 3, out  # the root holders are away: staged
    code, out = run("refresh", "--repo", repo, "--keys", keys / "online")
    assert code == 3 and old_timestamp.exists()  # still the published timestamp key

    first, second, third = sorted(holders.glob("root-*.json"))
    assert run("sign", "--repo", repo, "--key", first, "--yes", "root")[0] == 3
    assert run("sign", "--repo", repo, "--key", second, "--yes", "root")[0] == 0
    assert first.exists() and second.exists()  # root keys sign on: nothing to retire

    code, out = run("refresh", "--repo", repo, "--keys", keys / "online")
    assert code == 0, out
    assert "1 key(s) no longer listed by this repository retired" in out
    assert not old_timestamp.exists()
    retired = json.loads((keys / "online" / "retired" / old_timestamp.name).read_text())
    assert "private_pem" not in retired
    assert len(list((keys / "online").glob("timestamp-*.json"))) == 1  # the new one stays

    # A root rotation: the holder whose signature publishes it loses the old key at once;
    # the other holders run `key retire`. A key this repository never listed is left alone.
    ceremony = tmp_path / "ceremony"
    ceremony.mkdir()
    code, out = run("rotate", "--repo", repo, "--keys", ceremony, "root")
    assert code == 3, out
    assert "each new key is in a directory of its own" in out
    made = sorted(ceremony.rglob("root-*.json"))
    assert len(made) == 3 and len({p.parent for p in made}) == 3  # one per holder
    assert run("sign", "--repo", repo, "--key", first, "--yes", "root")[0] == 3
    online = ("--keys", keys / "online")  # so that this signature publishes at once
    code, out = run("sign", "--repo", repo, *online, "--key", third, "--yes", "root")
    assert code == 0 and "1 key(s) no longer listed" in out, out
    assert not third.exists() and first.exists()
    stranger = run("key", "create", "--keys", holders, "--role", "root")[1]
    stranger_file = Path(stranger.strip().rsplit(": ", 1)[1])
    code, out = run("key", "retire", "--repo", repo, "--keys", holders)
    assert code == 0 and "2 key(s) no longer listed" in out, out  # first and second
    left = sorted(p.name for p in holders.glob("*.json"))
    assert left == sorted([stranger_file.name, *(p.name for p in holders.glob("targets-*"))])
    assert len(left) == 2  # the stranger, and the targets key, still the targets key
    code, out = run("key", "retire", "--repo", repo, "--keys", holders)
    assert (code, out.strip()) == (0, "no key under it was rotated out")
