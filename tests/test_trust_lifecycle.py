"""The trust lifecycle with the real `tuf-repo` CLI and real clients (ngclient, CAIO).

A repository that never lapses (420 days of the hourly timer on a simulated
calendar), online keys that cannot ship code, a host that cannot be captured
with retired root keys, signers who see what they sign, and the publisher's
own guards (unsafe paths, reused versions, expired roles).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Root
from tuf.ngclient import Updater

from tests.tuf_fixtures import make_source_tree
from tests.update_fixtures import NEWER, UpdateEnv
from tuf_repo import RepoServer, build_release
from tuf_repo.keys import read_key_file

pytestmark = pytest.mark.slow  # real processes

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGNATURES = 0, 1, 2, 3


def tuf_repo(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuf_repo.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )


def caio(home: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caio", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CAIO_HOME": str(home)},
    )


def client(repo_url: str, work: Path, anchor: Path) -> Updater:
    (work / "metadata").mkdir(parents=True, exist_ok=True)
    return Updater(
        str(work / "metadata"),
        f"{repo_url}/metadata/",
        str(work / "targets"),
        f"{repo_url}/targets/",
        bootstrap=anchor.read_bytes(),
    )


@pytest.fixture
def ceremony(tmp_path: Path) -> Iterator[tuple[Path, Path, RepoServer]]:
    """`tuf-repo init` with the default split: keys/online and keys/offline, served."""
    repo, keys = tmp_path / "repo", tmp_path / "keys"
    assert tuf_repo("init", "--repo", repo, "--keys", keys).returncode == 0
    server = RepoServer(repo, quiet=True).start()
    yield repo, keys, server
    server.stop()


def artifact(tmp_path: Path, version: str) -> Path:
    src = make_source_tree(tmp_path / f"src-{version}")
    return build_release(src, version, tmp_path / "dist")


# --- 1. a repository that never lapses ---------------------------------------------------


def _libfaketime() -> str:
    found = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    if found:
        return found[0]
    if os.environ.get("CI") == "true":
        pytest.fail("libfaketime is missing: scripts/test installs Debian's faketime")
    pytest.skip("needs libfaketime: apt-get install faketime (scripts/test does, as root)")


def faked_clock_env() -> dict[str, str]:
    return {
        **os.environ,
        "LD_PRELOAD": _libfaketime(),
        "FAKETIME": "@2027-01-04 00:00:00",
        "FAKETIME_NO_CACHE": "1",
        "DONT_FAKE_MONOTONIC": "1",
    }


def run_calendar(tmp_path: Path, days: int, sign_after: int) -> list[dict[str, Any]]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.calendar_driver",
            "--work",
            str(tmp_path / "calendar"),
            "--days",
            str(days),
            "--sign-after",
            str(sign_after),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=faked_clock_env(),
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.shares_cpu  # faked time only: it runs beside the real-process tests
@pytest.mark.timeout(600)  # about 90 s here: 10,080 hourly runs and 2,100 client checks
def test_420_days_at_the_shipped_timer_cadence_never_fail_a_client(tmp_path: Path) -> None:
    """Issue 20's proof: hourly refresh, signers up to 30 days late, both rotations, a missed
    boot's worth of runs, a late run, a crash mid-publication, a daily prune; clients never
    fail."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.calendar_years", "--work", str(tmp_path / "cal")],
        capture_output=True,
        text=True,
        timeout=540,
        env=faked_clock_env(),
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    *days, summary = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(days) == 420 and summary["summary"]
    assert [(d["day"], d["client_failures"]) for d in days if d["client_failures"]] == []
    assert [d for d in days if d.get("refresh_failures") or d.get("sign_failures")] == []
    assert {code for d in days for code in d.get("refresh", {})} == {"0", "3"}
    runs = {d["day"]: sum(d.get("refresh", {}).values()) for d in days}
    assert runs[40] == 15 and runs[100] == 24  # nine runs missed; one 50 minutes late
    assert days[150]["crashed"] is not None and runs[150] == 23  # killed, then repaired
    # Signatures were asked for every hour until they came, up to 30 days late.
    streaks, waited = [], 0
    for d in days:
        waited = waited + 1 if d.get("refresh", {}).get("3") else 0
        if d.get("signed"):
            streaks.append(waited)
    assert len(streaks) >= 9 and max(streaks) >= 30
    # Both rotations reached clients; the rotated-out keys are gone from their holders.
    assert summary["root_version"] == 3
    assert summary["root_keys_changed"] and summary["targets_keys_changed"]
    retired = [name for d in days for name in d.get("retired", [])]
    assert sorted(n.split("-")[0] for n in retired) == ["root"] * 3 + ["targets"]
    # The daily prune never failed, and the repository keeps a week of snapshot versions
    # (four a day at this cadence), the current index copy, and every release.
    assert [d for d in days if d.get("prune_failures")] == []
    assert sum(int(d.get("pruned", 0)) for d in days) > 1000
    assert summary["kept"]["snapshots"] <= 8 * 4 and summary["kept"]["index_copies"] == 1
    assert summary["index"] == [
        {"version": "1.1.0", "withdrawn": False},
        {"version": "1.2.0", "withdrawn": True},
        {"version": "1.3.0", "withdrawn": False},
        {"version": "1.4.0", "withdrawn": False},
    ]


def test_when_nobody_signs_the_failure_shows_days_before_clients_are_hit(tmp_path: Path) -> None:
    days = run_calendar(tmp_path, days=100, sign_after=-1)
    first_exit_3 = next(d["day"] for d in days if d["refresh"] == EXIT_SIGNATURES)
    first_client_failure = next(d["day"] for d in days if d["caio"] != "ok")
    assert days[first_client_failure]["caio"] == "metadata_expired"
    assert days[first_client_failure]["ngclient"] == "metadata_expired"
    assert first_client_failure - first_exit_3 >= 30
    warned = days[first_exit_3]["warnings"]
    assert any("targets expires in" in w and "needs signing" in w for w in warned)
    # From the first day to the outage, every refresh said so; then it says "failed".
    assert {d["refresh"] for d in days[first_exit_3:first_client_failure]} == {EXIT_SIGNATURES}
    # The cron at midnight ran moments before the expiry; the next one says "failed".
    after = days[first_client_failure + 1]
    assert after["refresh"] == EXIT_FAILED
    assert any("EXPIRED" in w for w in after["warnings"])


def test_a_staged_timestamp_rotation_does_not_stop_the_heartbeat(
    ceremony: tuple[Path, Path, RepoServer], tmp_path: Path
) -> None:
    repo, keys, server = ceremony
    holders = tmp_path / "holders"
    shutil.move(keys / "offline", holders)
    rotated = tuf_repo("rotate", "--repo", repo, "--keys", keys, "timestamp")
    assert rotated.returncode == EXIT_SIGNATURES, rotated.stderr  # root keys are with holders
    before = json.loads((repo / "metadata" / "timestamp.json").read_text())["signed"]["version"]
    cron = tuf_repo("refresh", "--repo", repo, "--keys", keys / "online", "--within", "2")
    assert cron.returncode == EXIT_SIGNATURES, cron.stderr
    assert "refreshed snapshot, timestamp" in cron.stdout
    after = json.loads((repo / "metadata" / "timestamp.json").read_text())["signed"]["version"]
    assert after == before + 1
    client(server.url, tmp_path / "c", repo / "metadata" / "1.root.json").refresh()


# --- 2. online keys cannot ship code ----------------------------------------------------------


@pytest.mark.parametrize("bins", [0, 4])
def test_the_online_keys_alone_cannot_publish_a_release(tmp_path: Path, bins: int) -> None:
    repo, keys = tmp_path / "repo", tmp_path / "keys"
    init = tuf_repo("init", "--repo", repo, "--keys", keys, "--bins", str(bins))
    assert init.returncode == 0, init.stderr
    online = sorted(p.name.split("-")[0] for p in (keys / "online").iterdir())
    assert online == ["snapshot", "timestamp"]
    added = tuf_repo("add", "--repo", repo, "--keys", keys / "online", artifact(tmp_path, "1.0.0"))
    assert added.returncode == EXIT_SIGNATURES, added.stderr
    server = RepoServer(repo, quiet=True).start()
    try:
        updater = client(server.url, tmp_path / "c", repo / "metadata" / "1.root.json")
        updater.refresh()
        assert updater.get_targetinfo("caio/1.0.0/caio-1.0.0.tar.gz") is None
        assert updater.get_targetinfo("caio/index.json") is None
    finally:
        server.stop()


def test_online_bins_are_an_explicit_choice_with_a_warning(tmp_path: Path) -> None:
    repo, keys = tmp_path / "repo", tmp_path / "keys"
    init = tuf_repo("init", "--repo", repo, "--keys", keys, "--bins", "4", "--online-bins")
    assert init.returncode == 0
    assert "WARNING: --online-bins" in init.stderr and "install" in init.stderr
    added = tuf_repo("add", "--repo", repo, "--keys", keys / "online", artifact(tmp_path, "1.0.0"))
    assert added.returncode == EXIT_OK, added.stderr
    status = tuf_repo("status", "--repo", repo)
    assert "bin-* (4)" in status.stdout and "online release key" in status.stdout


# --- 3. no capture with retired root keys --------------------------------------------------------


def _forge_next_root(repo: Path, retired_keys: list[Path]) -> None:
    """What a holder of the retired v1 root keys can do: sign a next root of their own."""
    newest = max(int(p.name.split(".")[0]) for p in (repo / "metadata").glob("*.root.json"))
    attacker = CryptoSigner.generate_ed25519()
    root = Metadata[Root].from_file(str(repo / "metadata" / f"{newest}.root.json"))
    forged = root.signed
    forged.version = newest + 1
    for role in ("root", "targets", "snapshot", "timestamp"):
        for keyid in list(forged.roles[role].keyids):
            forged.revoke_key(keyid, role)
        forged.add_key(attacker.public_key, role)
        forged.roles[role].threshold = 1
    md = Metadata(forged)
    for key in retired_keys:
        md.sign(read_key_file(key).signer(), append=True)
    md.sign(attacker, append=True)
    (repo / "metadata" / f"{newest + 1}.root.json").write_bytes(md.to_bytes())


def test_retired_root_keys_cannot_capture_a_fresh_or_a_wiped_host(
    update_env: UpdateEnv, tmp_path: Path
) -> None:
    repo, keys = update_env.repo.dir, update_env.repo.keys
    update_env.publish(NEWER)
    stolen = tmp_path / "stolen"
    shutil.copytree(keys / "offline", stolen)  # the attacker copied the v1 root keys
    host = update_env.settings.home
    assert caio(host, "trust", "install", repo / "metadata" / "1.root.json").returncode == 0

    # The existing host checks once: its anchor follows the rotation to v2.
    rotated = tuf_repo("rotate", "--repo", repo, "--keys", keys, "root")
    assert rotated.returncode == 0, rotated.stderr
    assert "private keys destroyed" in rotated.stdout
    for retired in (keys / "retired").glob("root-*.json"):
        assert "private_pem" not in json.loads(retired.read_text())
    with update_env.client() as api:
        assert api.get("/api/v1/update/check", headers=update_env.auth()).status_code == 200
    anchor = json.loads((host / "trusted_root.json").read_text())["signed"]["version"]
    assert anchor == 2

    # A fresh host is given the newest root.
    exported = tmp_path / "newest-root.json"
    assert tuf_repo("export-root", "--repo", repo, "--out", exported).returncode == 0
    assert json.loads(exported.read_text())["signed"]["version"] == 2
    fresh = tmp_path / "fresh-home"
    fresh.mkdir()
    assert caio(fresh, "trust", "install", exported).returncode == 0
    older = caio(fresh, "trust", "install", repo / "metadata" / "1.root.json")
    assert older.returncode != 0 and "older than the installed anchor" in older.stderr

    # The attacker publishes a next root signed by the stolen v1 keys.
    _forge_next_root(repo, sorted(stolen.glob("root-*.json")))
    shutil.rmtree(host / "tuf")  # the existing host's cache is wiped
    for home in (host, fresh):
        settings = update_env.settings.model_copy(update={"home": home})
        from fastapi.testclient import TestClient

        from caio.api.app import create_app

        if home == fresh:
            (home / "tokens.json").write_bytes((host / "tokens.json").read_bytes())
        with TestClient(create_app(settings)) as api:
            answer = api.get("/api/v1/update/check", headers=update_env.auth())
            assert answer.status_code == 502, answer.text
            assert answer.json()["error"]["code"] == "signature_threshold"
            started = api.post("/api/v1/update", json={}, headers=update_env.auth())
            assert started.status_code == 202
            status = update_env.wait(api)
            assert status["error"]["code"] == "signature_threshold"
        assert not (home / "releases" / NEWER).exists()


# --- 4. signers see what they sign ----------------------------------------------------------------


def test_an_edited_staged_root_is_shown_and_its_stale_signature_dropped(
    ceremony: tuple[Path, Path, RepoServer], tmp_path: Path
) -> None:
    repo, keys, _ = ceremony
    holders = tmp_path / "holders"
    shutil.move(keys / "offline", holders)
    a, b, c = sorted(holders.glob("root-*.json"))
    cron = tuf_repo("refresh", "--repo", repo, "--keys", keys / "online", "--within", "400")
    assert cron.returncode == EXIT_SIGNATURES
    first = tuf_repo("sign", "--repo", repo, "--key", a, "--yes", "root")
    assert first.returncode == EXIT_SIGNATURES, first.stderr
    announced = next(
        line.split()[-1] for line in first.stdout.splitlines() if line.startswith("digest")
    )

    staged_path = repo / "staged" / "root.json"
    staged = json.loads(staged_path.read_text())
    staged["signed"]["roles"]["root"]["threshold"] = 1  # someone edits it after A signed
    staged_path.write_text(json.dumps(staged))

    status = tuf_repo("status", "--repo", repo)
    assert "root threshold 2 -> 1" in status.stdout
    assert "is invalid: it will be dropped" in status.stdout
    pinned = tuf_repo("sign", "--repo", repo, "--key", b, "--digest", announced, "root")
    assert pinned.returncode == EXIT_FAILED
    assert "do not sign it" in pinned.stderr
    review = tuf_repo("sign", "--repo", repo, "--key", b, "--yes", "root")
    assert "root threshold 2 -> 1" in review.stdout
    assert (
        f"dropped the signature of {read_key_file(a).keyid[:12]}" in review.stdout + review.stderr
    )
    target_key = next(holders.glob("targets-*.json"))  # refresh staged targets too
    targets = tuf_repo("sign", "--repo", repo, "--key", target_key, "--yes", "targets")
    assert targets.returncode == EXIT_OK  # its own group is complete, whatever root awaits
    assert "every signature is there" in targets.stdout
    last = tuf_repo("sign", "--repo", repo, "--key", c, "--yes", "--keys", keys / "online", "root")
    assert last.returncode == EXIT_OK, last.stdout + last.stderr
    published = json.loads((repo / "metadata" / "2.root.json").read_text())
    signers = {s["keyid"] for s in published["signatures"]}
    assert read_key_file(a).keyid not in signers  # never published with a stale signature
    assert signers == {read_key_file(b).keyid, read_key_file(c).keyid}


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda sig: ("0" if sig[0] != "0" else "1") + sig[1:],
        lambda sig: "not hex at all",
        lambda sig: "",
    ],
    ids=["flipped", "non-hex", "empty"],
)
def test_corrupted_signature_values_are_reported_and_dropped(
    ceremony: tuple[Path, Path, RepoServer], tmp_path: Path, corrupt: Any
) -> None:
    repo, keys, _ = ceremony
    holders = tmp_path / "holders"
    shutil.move(keys / "offline", holders)
    a, b, _c = sorted(holders.glob("root-*.json"))
    tuf_repo("refresh", "--repo", repo, "--keys", keys / "online", "--within", "400")
    tuf_repo("sign", "--repo", repo, "--key", a, "--yes", "root")
    path = repo / "staged" / "root.json"
    staged = json.loads(path.read_text())
    staged["signatures"][0]["sig"] = corrupt(staged["signatures"][0]["sig"])
    path.write_text(json.dumps(staged))
    status = tuf_repo("status", "--repo", repo)
    assert status.returncode == 0, status.stderr
    assert "will be dropped" in status.stdout
    signed = tuf_repo(
        "sign", "--repo", repo, "--key", b, "--yes", "--keys", keys / "online", "root"
    )
    assert signed.returncode == EXIT_SIGNATURES  # 1 of 2: the corrupt one does not count
    assert "dropped the signature" in signed.stdout + signed.stderr
    assert not (repo / "metadata" / "2.root.json").exists()


# --- 5-8. the publisher's own guards ----------------------------------------------------


def test_unsafe_target_paths_are_refused_by_verify_and_never_read_from_a_mirror(
    update_env: UpdateEnv, tmp_path: Path
) -> None:
    from tuf.api.metadata import TargetFile

    from tuf_repo.errors import TufRepoError

    update_env.publish(NEWER)
    with pytest.raises(TufRepoError, match="unsafe target path"):
        update_env.repo.publisher().import_target_files(
            [TargetFile(1, {"sha256": "0" * 64}, "caio/../../outside/x.tar.gz")]
        )
    # A (compromised) targets key signs an index that points outside the repository.
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "caio-9.0.0.tar.gz"
    secret.write_bytes(b"not for the client")
    index = {
        "format": 1,
        "releases": [
            {
                "version": "9.0.0",
                "target": "caio/../../outside/caio-9.0.0.tar.gz",
                "channels": ["stable"],
                "build_date": "2027-01-01T00:00:00Z",
                "commit": "x",
            }
        ],
    }
    publisher = update_env.repo.publisher()
    data = (json.dumps(index) + "\n").encode()
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    update_env.repo.store.put_target("caio/index.json", digest, data)
    targets = update_env.repo.store.load("targets")
    targets.signed.targets["caio/index.json"] = TargetFile(
        len(data), {"sha256": digest}, "caio/index.json"
    )
    publisher.commit({"targets": targets})
    verify = tuf_repo(
        "verify", "--repo", update_env.repo.dir, "--trusted-root", update_env.repo.trusted_root
    )
    assert verify.returncode == EXIT_FAILED
    assert "unsafe target path" in verify.stderr
    mirror = update_env.settings.model_copy(
        update={"update_url": update_env.repo.dir.resolve().as_uri()}
    )
    from fastapi.testclient import TestClient

    from caio.api.app import create_app

    with TestClient(create_app(mirror)) as api:
        check = api.get("/api/v1/update/check", headers=update_env.auth()).json()
        assert [r["version"] for r in check.get("releases", [])] == [], check
        status = update_env.run_update(api, {"target_version": "9.0.0"})
        assert status["error"]["code"] == "target_not_found", status
    assert not (update_env.settings.home / "releases" / "9.0.0").exists()


def test_a_repository_restored_from_a_backup_cannot_reuse_versions(tmp_path: Path) -> None:
    repo, keys = tmp_path / "repo", tmp_path / "keys"
    assert tuf_repo("init", "--repo", repo, "--keys", keys).returncode == 0
    assert (
        tuf_repo("add", "--repo", repo, "--keys", keys, artifact(tmp_path, "1.0.0")).returncode == 0
    )
    backup = tmp_path / "backup"
    shutil.copytree(repo, backup)
    assert (
        tuf_repo("add", "--repo", repo, "--keys", keys, artifact(tmp_path, "1.1.0")).returncode == 0
    )
    shutil.copytree(repo, tmp_path / "live")  # what the web server (and clients) have
    live = RepoServer(tmp_path / "live", quiet=True).start()
    try:
        shutil.rmtree(repo)
        shutil.copytree(backup, repo)  # restored
        again = tuf_repo("add", "--repo", repo, "--keys", keys, artifact(tmp_path, "1.2.0"))
        assert again.returncode == EXIT_FAILED
        assert "restored from a backup" in again.stderr
        assert "timestamp v3 (v3 was published)" in again.stderr
        # On another machine (no high-water mark there), the live repository says the same.
        elsewhere = {"TUF_REPO_STATE_DIR": str(tmp_path / "other-machine")}
        blind = tuf_repo("refresh", "--repo", repo, "--keys", keys, "--within", "2", **elsewhere)
        assert blind.returncode == EXIT_OK  # without --check-live it cannot know
        shutil.rmtree(repo)
        shutil.copytree(backup, repo)
        checked = tuf_repo(
            "add",
            "--repo",
            repo,
            "--keys",
            keys,
            artifact(tmp_path, "1.2.0"),
            "--check-live",
            live.url,
            **{"TUF_REPO_STATE_DIR": str(tmp_path / "third")},
        )
        assert checked.returncode == EXIT_FAILED
        assert "restored from a backup" in checked.stderr
    finally:
        live.stop()


def test_publishing_on_an_expired_offline_role_is_refused(tmp_path: Path) -> None:
    repo, keys = tmp_path / "repo", tmp_path / "keys"
    init = tuf_repo(
        "init", "--repo", repo, "--keys", keys, "--bins", "16", "--expiry", "bins=0.00002"
    )
    assert init.returncode == 0, init.stderr
    time.sleep(2.5)
    added = tuf_repo("add", "--repo", repo, "--keys", keys, artifact(tmp_path, "1.0.0"))
    assert added.returncode == EXIT_FAILED
    assert "bin-" in added.stderr and "expired on" in added.stderr
    assert "tuf-repo refresh" in added.stderr
    cron = tuf_repo("refresh", "--repo", repo, "--keys", keys / "online")
    assert cron.returncode == EXIT_FAILED  # clients are failing: louder than "please sign"
    assert "has EXPIRED" in cron.stderr
    assert "bin-0 v2 awaits signatures" in cron.stderr  # staged for the release key


def test_small_ones_retired_timestamp_key_threshold_zero_and_bins_in_status(
    ceremony: tuple[Path, Path, RepoServer],
) -> None:
    repo, keys, _ = ceremony
    old = next((keys / "online").glob("timestamp-*.json"))
    assert tuf_repo("rotate", "--repo", repo, "--keys", keys, "timestamp").returncode == 0
    assert not old.exists()
    retired = json.loads((keys / "retired" / old.name).read_text())
    assert "private_pem" not in retired and retired["role"] == "timestamp"
    assert len(list((keys / "online").glob("timestamp-*.json"))) == 1
    snapshot_key = next((keys / "online").glob("snapshot-*.json"))
    kept = tuf_repo("rotate", "--repo", repo, "--keys", keys, "snapshot", "--keep-retired-private")
    assert kept.returncode == 0, kept.stderr
    assert "private_pem" in json.loads((keys / "retired" / snapshot_key.name).read_text())
    zero = tuf_repo("rotate", "--repo", repo, "--keys", keys, "targets", "--threshold", "0")
    assert zero.returncode == EXIT_USAGE
    assert "at least 1" in zero.stderr


def test_the_file_mirror_never_opens_a_path_that_climbs_out(tmp_path: Path) -> None:
    from tuf.api.exceptions import DownloadHTTPError

    from caio.update.transport import FileTransport

    outside = tmp_path / "outside.tar.gz"
    outside.write_bytes(b"secret")
    mirror = tmp_path / "mirror" / "targets" / "caio"
    mirror.mkdir(parents=True)
    for url in (
        f"file://{mirror}/../../../outside.tar.gz",
        f"file://{mirror}/%2e%2e/%2e%2e/%2e%2e/outside.tar.gz",
    ):
        with pytest.raises(DownloadHTTPError):
            b"".join(FileTransport().fetch(url))
