"""The caio command line and a real service process."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from caio.core.tokens import TokenStore
from tests.background import end, spawn
from tests.helpers import free_port, map_doc, write_manifest, write_map

pytestmark = pytest.mark.slow  # real processes


def caio(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # A free port unless the test names one: no test may depend on 8000 being free.
    full_env = {**os.environ, "CAIO_HOME": str(home), "CAIO_PORT": str(free_port()), **env}
    return subprocess.run(
        [sys.executable, "-m", "caio", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def test_token_create_prints_only_the_token_on_stdout(home: Path) -> None:
    done = caio(home, "token", "create", "--name", "ops", "--role", "viewer")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("caio_")
    principal = TokenStore(home / "tokens.json").authenticate(lines[0])
    assert principal is not None
    assert principal.role == "viewer"
    listed = caio(home, "token", "list")
    assert listed.stdout.startswith("ops\tviewer\t")
    assert lines[0] not in listed.stdout
    assert caio(home, "token", "revoke", "ops").returncode == 0
    assert caio(home, "token", "list").stdout == ""


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["token", "create", "--name", "x", "--role", "root"], {}, "root"),
        (["token", "create", "--name", "x"], {}, "--role"),
        (["serve"], {"CAIO_UPDATE_URL": "ftp://mirror.invalid/"}, "CAIO_UPDATE_URL"),
        (["serve"], {"CAIO_CHANNEL": "Beta Channel"}, "CAIO_CHANNEL"),
        (["token", "revoke", "ghost"], {}, "[token_not_found]: no token named 'ghost'"),
        (["serve", "--port", "0"], {}, "'--port'"),  # the option typed, not the variable
        (["run", "--port", "99999"], {}, "'--port'"),
        (["serve"], {"CAIO_PORT": "65536"}, "CAIO_PORT"),
        (["trust", "install", "missing.json"], {}, "[file_not_found]: missing.json does not exist"),
    ],
)
def test_user_mistakes_exit_non_zero_without_traceback(
    home: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    done = caio(home, *args, **env)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "env", "code"),
    [
        (["token", "revoke", "ghost"], {}, 1),  # failed
        (["serve", "--port", "99999"], {}, 2),  # usage
        (["serve"], {"CAIO_CHANNEL": "Bad Channel"}, 2),  # a bad setting is a usage error too
        (["serve-current"], {"CAIO_BOOT_ATTEMPTS": "0"}, 2),  # 1..5: never zero boots
        (["run"], {"CAIO_BOOT_ATTEMPTS": "many"}, 2),
        (["remote", "version", "--url", "http://127.0.0.1:9"], {}, 3),  # no API to answer
    ],
)
def test_exit_codes_are_the_documented_ones(
    home: Path, args: list[str], env: dict[str, str], code: int
) -> None:
    assert caio(home, *args, **env).returncode == code


def test_both_commands_print_their_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "caio", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == "caio 1.0.0"
    repo = subprocess.run(
        [sys.executable, "-m", "tuf_repo", "--version"], capture_output=True, text=True
    )
    assert repo.returncode == 0 and repo.stdout.startswith("tuf-repo 1.0.0 (python-tuf ")


def test_help_labels_flags_plainly_and_names_each_setting_once(home: Path) -> None:
    """No ``<bool>`` beside a flag, no env var twice, no command summary cut off."""
    for args in (("remote", "update"), ("remote", "check"), ("run",), ()):
        shown = caio(home, *args, "--help")
        assert shown.returncode == 0, shown.stderr
        assert "<bool>" not in shown.stdout
        assert shown.stdout.count("CAIO_URL") <= 1
        assert not any(line.endswith("...") for line in shown.stdout.splitlines()[1:])
    for group in ((), ("key",)):
        listed = subprocess.run(
            [sys.executable, "-m", "tuf_repo", *group, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert not any(line.endswith("...") for line in listed.stdout.splitlines()[1:])


def test_unreadable_tokens_file_is_a_clear_error(home: Path) -> None:
    (home / "tokens.json").write_text("not json")
    done = caio(home, "token", "list")
    assert done.returncode == 2
    assert "corrupt" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_with_invalid_manifest_exits_naming_the_field(home: Path, tmp_path: Path) -> None:
    bad = write_manifest(tmp_path / "m.json", update_url="gopher://old")
    with held_port() as busy:  # the manifest is checked before the port is taken
        done = caio(home, "serve", CAIO_MANIFEST=str(bad), CAIO_PORT=str(busy))
    assert done.returncode == 2
    assert "field 'update_url'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["serve", "run"])
def test_a_busy_port_is_its_own_error_not_a_bad_setting(
    home: Path, manifest_file: Path, command: str
) -> None:
    with held_port() as busy:
        done = caio(home, command, CAIO_MANIFEST=str(manifest_file), CAIO_PORT=str(busy))
    assert done.returncode == 1, done.stderr
    assert f"[address_in_use]: cannot listen on 127.0.0.1:{busy}" in done.stderr
    assert "another program holds that address" in done.stderr
    assert "config_invalid" not in done.stderr and "Traceback" not in done.stderr


@contextlib.contextmanager
def held_port() -> Iterator[int]:
    """A loopback port another program listens on for the duration of the block."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield holder.getsockname()[1]


def test_python_m_caio_main_serves_version_and_health(
    home: Path, manifest_file: Path, port: int
) -> None:
    env = {
        **os.environ,
        "CAIO_HOME": str(home),
        "CAIO_PORT": str(port),
        "CAIO_MANIFEST": str(manifest_file),
        "CAIO_LOG_FORMAT": "json",
    }
    proc = spawn([sys.executable, "-m", "caio.main"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert health.json() == {"status": "ok", "version": "1.2.3", "withdrawn": False}
        assert httpx.get(f"{base}/api/v1/version").json()["commit"] == "abc123"
        assert httpx.get(f"{base}/docs").status_code == 200
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=20)
        finally:
            end(proc, grace=0)
    records = [json.loads(line) for line in err.splitlines()]
    said = [r["message"] for r in records if r["logger"] == "caio"]
    assert f"caio 1.2.3 listening on http://127.0.0.1:{port}" in said
    access = [r for r in records if r["logger"] == "caio.access"]
    assert {"method": "GET", "path": "/health", "status": 200} in [
        {k: r[k] for k in ("method", "path", "status")} for r in access
    ]


def test_trust_install_writes_the_anchor(home: Path, published_repo: object) -> None:
    from tests.tuf_fixtures import PublishedRepo

    assert isinstance(published_repo, PublishedRepo)
    done = caio(home, "trust", "install", str(published_repo.trusted_root))
    assert done.returncode == 0, done.stderr
    assert "root v1, 3 keys, threshold 2" in done.stdout
    assert (home / "trusted_root.json").read_bytes() == published_repo.trusted_root.read_bytes()
    bad = caio(home, "trust", "install", str(published_repo.dir / "metadata" / "timestamp.json"))
    assert bad.returncode == 1
    assert "[trust_root_invalid]" in bad.stderr and "not root" in bad.stderr


def test_two_party_anchors_and_a_bad_map_stop_at_the_door(
    home: Path, published_repo: object, tmp_path: Path
) -> None:
    """Each mapped repository gets its own anchor; a map that is wrong stops the start."""
    from tests.tuf_fixtures import PublishedRepo

    assert isinstance(published_repo, PublishedRepo)
    nowhere = "http://127.0.0.1:9/"
    doc = map_doc({"vendor": nowhere, "approval": nowhere})
    path = write_map(tmp_path / "map.json", doc)
    root = str(published_repo.trusted_root)
    mapped = {"CAIO_REPOSITORY_MAP": str(path)}
    done = caio(home, "trust", "install", "--repository", "approval", root, **mapped)
    assert done.returncode == 0, done.stderr
    anchor = home / "repositories" / "approval" / "trusted_root.json"
    assert anchor.read_bytes() == published_repo.trusted_root.read_bytes()
    ghost = caio(home, "trust", "install", "--repository", "ghost", root, **mapped)
    assert ghost.returncode == 2 and "has no repository 'ghost'" in ghost.stderr
    unmapped = caio(home, "trust", "install", "--repository", "approval", root)
    assert unmapped.returncode == 2 and "CAIO_REPOSITORY_MAP" in unmapped.stderr

    doc["mapping"][0]["threshold"] = 3
    write_map(path, doc)
    serve = caio(home, "serve", **mapped)
    assert serve.returncode == 2, serve.stderr
    assert "mapping[0].threshold must be between 1 and the 2 repositories" in serve.stderr
    assert str(path) in serve.stderr and "Traceback" not in serve.stderr
    path.chmod(0o666)
    loose = caio(home, "serve", **mapped)
    assert loose.returncode == 2 and "writable by others" in loose.stderr


def test_rollback_here_swaps_the_links_records_who_and_waits_for_no_service(
    home: Path,
) -> None:
    """`caio rollback`: for a host whose service does not answer (a release that does not
    start under systemd), the same swap and record as POST /api/v1/rollback."""
    from caio.core.audit import AuditLog
    from caio.core.layout import InstallLayout
    from caio.core.state import JobLock

    layout = InstallLayout(home)
    layout.ensure()
    nothing = caio(home, "rollback")
    assert nothing.returncode == 1 and "[no_previous_release]" in nothing.stderr
    for version in ("1.0.0", "1.1.0"):
        layout.release_dir(version).mkdir()
    layout.point(layout.previous_link, "1.0.0")
    layout.point(layout.current_link, "1.1.0")

    job = JobLock(layout.state_dir / "job.lock")
    assert job.try_acquire()  # an update job runs (here: this test holds its lock)
    try:
        busy = caio(home, "rollback")
    finally:
        job.release()
    assert busy.returncode == 1 and "[update_in_progress]" in busy.stderr
    assert layout.current_version == "1.1.0"  # nothing changed under a running job

    done = caio(home, "rollback")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "1.1.0 -> 1.0.0: 1.0.0 is active again; restart CAIO to run it\n"
    assert (layout.current_version, layout.previous_version) == ("1.0.0", "1.1.0")
    record = AuditLog(layout.state_dir / "audit.jsonl").records()[-1]
    assert (record["event"], record["from"], record["to"]) == ("rollback", "1.1.0", "1.0.0")
    assert record["by"].endswith("(caio rollback)")


def test_a_user_who_may_not_touch_the_state_gets_a_clear_error_not_a_traceback(
    home: Path,
) -> None:
    """`caio audit show|verify` and `caio rollback` by another local user: the state is the
    service user's alone (0700). Played by root without its permission-override capabilities
    on a state directory owned by nobody."""
    import shutil

    from caio.core.audit import AuditLog
    from caio.core.layout import InstallLayout

    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        if os.environ.get("CI") == "true":
            pytest.fail("needs root and setpriv (util-linux) to play another user")
        pytest.skip("needs root and setpriv (util-linux) to play another user")
    layout = InstallLayout(home)
    layout.ensure()
    AuditLog(layout.state_dir / "audit.jsonl").append("rollback", outcome="activated")
    for path in [layout.state_dir, *layout.state_dir.iterdir()]:
        os.chown(path, 65534, 65534)  # the service's user: here nobody
    stranger = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]
    for args in (("audit", "show"), ("audit", "verify"), ("rollback",)):
        done = subprocess.run(
            [*stranger, "--", sys.executable, "-m", "caio", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "CAIO_HOME": str(home)},
            timeout=60,
        )
        assert done.returncode == 1, (args, done.stderr)
        assert "caio: error [permission_denied]: " in done.stderr, (args, done.stderr)
        assert "run this as the user CAIO runs as" in done.stderr
        assert "Traceback" not in done.stderr
