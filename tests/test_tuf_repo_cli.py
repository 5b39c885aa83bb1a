"""The tuf-repo command line as release engineers and cron use it: outputs and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.background import end, spawn
from tests.tuf_fixtures import make_source_tree, move_key, write_wheel

pytestmark = pytest.mark.slow  # real processes

EXIT_FAILED, EXIT_USAGE, EXIT_SIGNATURES_NEEDED = 1, 2, 3


def tuf_repo(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuf_repo", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_a_release_engineers_session(tmp_path: Path) -> None:
    repo, keys, dist = tmp_path / "repo", tmp_path / "keys", tmp_path / "dist"
    init = tuf_repo("init", "--repo", repo, "--keys", keys, "--expiry", "timestamp=2")
    assert init.returncode == 0, init.stderr
    assert init.stdout.strip() == str(repo / "metadata" / "1.root.json")

    src = make_source_tree(tmp_path / "src")
    built = tuf_repo("build", src, "--version", "1.0.0", "--out", dist, "--channel", "beta")
    assert built.returncode == 0, built.stderr
    artifact = Path(built.stdout.strip())
    assert artifact == dist / "caio-1.0.0.tar.gz"

    added = tuf_repo("add", "--repo", repo, "--keys", keys, artifact, "--channel", "beta")
    assert added.returncode == 0, added.stderr
    assert "published caio/1.0.0/caio-1.0.0.tar.gz (beta)" in added.stdout

    verified = tuf_repo("verify", "--repo", repo, "--trusted-root", init.stdout.strip())
    assert verified.returncode == 0, verified.stderr
    assert "ok  releases: 1.0.0" in verified.stdout
    assert "ok  timestamp" in verified.stdout

    status = tuf_repo("status", "--repo", repo)
    assert status.returncode == 0
    assert "timestamp" in status.stdout
    assert "staged: nothing" in status.stdout
    assert "prune has never run (tuf-repo prune, daily)" in status.stdout

    # A newer release, then the old one stops being listed; its bytes wait for prune.
    newer = tuf_repo("build", src, "--version", "1.1.0", "--out", dist, "--channel", "beta")
    again = tuf_repo(
        "add", "--repo", repo, "--keys", keys, newer.stdout.strip(), "--channel", "beta"
    )
    assert again.returncode == 0, again.stderr
    newest = tuf_repo("remove", "--repo", repo, "--keys", keys, "1.1.0")
    assert newest.returncode == 1 and "the newest release on beta" in newest.stderr
    removed = tuf_repo("remove", "--repo", repo, "--keys", keys, "1.0.0")
    assert removed.returncode == 0, removed.stderr
    assert "removed 1.0.0 (caio/1.0.0/caio-1.0.0.tar.gz)" in removed.stdout
    root = init.stdout.strip()
    listed = tuf_repo("verify", "--repo", repo, "--trusted-root", root)
    assert "ok  releases: 1.1.0" in listed.stdout
    pruned = tuf_repo("prune", "--repo", repo, "--dry-run")
    assert pruned.returncode == 0 and pruned.stdout.startswith("would remove 0 files")
    after = tuf_repo("prune", "--repo", repo)
    assert after.returncode == 0 and "superseded metadata files kept" in after.stdout
    assert "storage: " in tuf_repo("status", "--repo", repo).stdout
    assert "prune last ran" in tuf_repo("status", "--repo", repo).stdout

    nothing = tuf_repo("refresh", "--repo", repo, "--keys", keys, "--within", "0.5")
    assert (nothing.returncode, nothing.stdout) == (0, "")
    assert "nothing needs refreshing" in nothing.stderr
    refreshed = tuf_repo("refresh", "--repo", repo, "--keys", keys, "--within", "3")
    assert refreshed.returncode == 0
    assert refreshed.stdout.strip() == "refreshed snapshot, timestamp"


def test_offline_signature_needed_has_its_own_exit_code(tmp_path: Path) -> None:
    repo, keys = tmp_path / "repo", tmp_path / "keys"
    assert tuf_repo("init", "--repo", repo, "--keys", keys).returncode == 0
    move_key(keys, "targets", tmp_path / "vault")
    cron = tuf_repo("refresh", "--repo", repo, "--keys", keys, "--within", "100")
    assert cron.returncode == EXIT_SIGNATURES_NEEDED
    assert "tuf-repo sign" in cron.stderr
    status = tuf_repo("status", "--repo", repo)
    assert "staged: targets v2: 0 of 1 signatures" in status.stdout
    vault_key = next((tmp_path / "vault").iterdir())
    unconfirmed = tuf_repo("sign", "--repo", repo, "--key", vault_key, "--keys", keys, "targets")
    assert unconfirmed.returncode == 2  # not a terminal: --yes or --digest is needed
    assert "digest (sha256 of what is signed)" in unconfirmed.stdout
    signed = tuf_repo(
        "sign", "--repo", repo, "--key", vault_key, "--keys", keys, "--yes", "targets"
    )
    assert signed.returncode == 0, signed.stderr
    assert "published" in signed.stdout
    assert (
        tuf_repo(
            "verify", "--repo", repo, "--trusted-root", repo / "metadata/1.root.json"
        ).returncode
        == 0
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["status", "--repo", "{tmp}/nowhere"], EXIT_FAILED, "not a tuf-repo repository"),
        (
            ["add", "--repo", "{repo}", "--keys", "{tmp}/nokeys", "{tmp}/x"],
            EXIT_FAILED,
            "key directory not found",
        ),
        (
            ["add", "--repo", "{repo}", "--keys", "{keys}", "{tmp}/caio-1.0.0.tar.gz"],
            EXIT_FAILED,
            "artifact not found",
        ),
        (
            ["sign", "--repo", "{repo}", "--key", "{tmp}/missing.json", "root"],
            EXIT_FAILED,
            "key file not found",
        ),
        (["rotate", "--repo", "{repo}", "--keys", "{keys}", "mirror"], EXIT_FAILED, "unknown role"),
        (
            ["init", "--repo", "{tmp}/r2", "--keys", "{tmp}/k2", "--root-threshold", "4"],
            EXIT_USAGE,
            "--root-threshold",
        ),
        (
            ["init", "--repo", "{tmp}/r3", "--keys", "{tmp}/k3", "--expiry", "forever"],
            EXIT_USAGE,
            "ROLE=DAYS",
        ),
        (
            ["init", "--repo", "{tmp}/r4", "--keys", "{tmp}/k4", "--bins", "3"],
            EXIT_USAGE,
            "power of two",
        ),
        (["build", "{tmp}", "--version", "x.y"], EXIT_FAILED, "PEP 440"),
        (
            ["verify", "--repo", "{repo}", "--trusted-root", "{tmp}/none.json"],
            EXIT_FAILED,
            "cannot be read",
        ),
        (["add", "--repo", "{repo}"], EXIT_USAGE, "Missing"),
        (
            ["add", "--repo", "{repo}", "--keys", "{keys}", "missing.tar.gz"],
            EXIT_FAILED,
            "artifact not found: missing.tar.gz",
        ),
    ],
)
def test_bad_input_is_one_clear_line_and_the_right_exit_code(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    repo, keys = tmp_path / "repo", tmp_path / "keys"
    assert tuf_repo("init", "--repo", repo, "--keys", keys).returncode == 0
    filled = [a.format(tmp=tmp_path, repo=repo, keys=keys) for a in args]
    done = tuf_repo(*filled)
    assert done.returncode == code
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_build_with_deps_bundles_wheels_from_an_offline_mirror(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    write_wheel(mirror, "caiodep", "1.0")
    src = make_source_tree(tmp_path / "src")
    (src / "pyproject.toml").write_text('[project]\nname = "caio"\ndependencies = ["caiodep>=1"]\n')
    env = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(mirror), "SOURCE_DATE_EPOCH": "1700000000"}
    one = tuf_repo(
        "build", src, "--version", "2.0.0", "--out", tmp_path / "a", "--with-deps", **env
    )
    assert one.returncode == 0, one.stderr
    two = tuf_repo(
        "build", src, "--version", "2.0.0", "--out", tmp_path / "b", "--with-deps", **env
    )
    artifact = Path(one.stdout.strip())
    assert artifact.read_bytes() == Path(two.stdout.strip()).read_bytes()
    with tarfile.open(artifact) as tar:
        assert "caio-2.0.0/wheels/caiodep-1.0-py3-none-any.whl" in tar.getnames()

    (src / "pyproject.toml").write_text('[project]\nname = "caio"\ndependencies = ["absent>=1"]\n')
    missing = tuf_repo(
        "build", src, "--version", "2.0.1", "--out", tmp_path / "c", "--with-deps", **env
    )
    assert missing.returncode == EXIT_FAILED
    assert "could not fetch dependency wheels" in missing.stderr
    assert json.loads((src / "manifest.json").read_text())["version"] == "0.0.0"


def test_serve_command_serves_the_repository_on_loopback(tmp_path: Path) -> None:
    import httpx

    from tests.helpers import free_port

    repo, keys = tmp_path / "repo", tmp_path / "keys"
    assert tuf_repo("init", "--repo", repo, "--keys", keys).returncode == 0
    port = free_port()
    proc = spawn(
        [sys.executable, "-m", "tuf_repo", "serve", "--repo", str(repo), "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                root = httpx.get(f"{base}/metadata/1.root.json")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert root.status_code == 200
        assert root.content == (repo / "metadata" / "1.root.json").read_bytes()
        assert httpx.get(f"{base}/keys").status_code == 404
        assert httpx.get(f"{base}/metadata/nope.json").status_code == 404
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        finally:
            end(proc, grace=0)
    assert f"serving {repo} at http://127.0.0.1:{port}" in err
