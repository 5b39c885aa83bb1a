"""Transport rules (token scope, redirects, retries), air-gapped mirrors, trust install."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tuf.api.exceptions import DownloadError

from caio.core.errors import ErrorCode, NotFoundError, TrustError
from caio.core.trust import install_trusted_root
from caio.update.errors import from_os_error
from caio.update.transport import HttpTransport
from tests.update_fixtures import NEWER, RUNNING, UpdateEnv


class Recorder(http.server.BaseHTTPRequestHandler):
    """Records Authorization headers; /redirect-away sends the client to another server."""

    seen: list[tuple[str, str | None]]
    redirect_to: str = ""
    failures_left: list[int]

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        if self.path == "/redirect-away":
            self.send_response(302)
            self.send_header("Location", f"{self.redirect_to}/landing")
            self.end_headers()
            return
        if self.path == "/redirect-home":
            self.send_response(302)
            self.send_header("Location", "/landing")
            self.end_headers()
            return
        if self.path == "/flaky" and self.failures_left and self.failures_left[0] > 0:
            self.failures_left[0] -= 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        return


def serve(
    **attrs: object,
) -> tuple[http.server.ThreadingHTTPServer, str, list[tuple[str, str | None]]]:
    seen: list[tuple[str, str | None]] = []
    handler = type("H", (Recorder,), {"seen": seen, **attrs})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", seen


Servers = tuple[str, list[Any], str, list[Any]]


@pytest.fixture
def two_servers() -> Iterator[Servers]:
    other, other_url, other_seen = serve()
    repo, repo_url, repo_seen = serve(redirect_to=other_url, failures_left=[2])
    yield repo_url, repo_seen, other_url, other_seen
    for s in (repo, other):
        s.shutdown()
        s.server_close()


def test_token_goes_only_to_the_repository_origin(two_servers: Servers) -> None:
    repo_url, repo_seen, other_url, other_seen = two_servers
    transport = HttpTransport(repo_url, user_agent="caio/test", token="s3cret")
    assert b"".join(transport.fetch(f"{repo_url}/metadata/x.json")) == b"ok"
    assert repo_seen[-1] == ("/metadata/x.json", "Bearer s3cret")
    b"".join(transport.fetch(f"{other_url}/direct"))
    assert other_seen[-1] == ("/direct", None)


def test_token_never_follows_a_redirect_to_another_host(two_servers: Servers) -> None:
    repo_url, repo_seen, _, other_seen = two_servers
    transport = HttpTransport(repo_url, user_agent="caio/test", token="s3cret")
    assert b"".join(transport.fetch(f"{repo_url}/redirect-away")) == b"ok"
    assert repo_seen[-1] == ("/redirect-away", "Bearer s3cret")
    assert other_seen[-1] == ("/landing", None)
    b"".join(transport.fetch(f"{repo_url}/redirect-home"))
    assert repo_seen[-1] == ("/landing", "Bearer s3cret")


def test_transport_errors_are_download_errors() -> None:
    transport = HttpTransport("http://127.0.0.1:9", user_agent="caio/test", timeout=2)
    with pytest.raises(DownloadError):
        b"".join(transport.fetch("http://127.0.0.1:9/metadata/1.root.json"))


def test_network_errors_are_retried_with_backoff(update_env: UpdateEnv) -> None:
    update_env.publish(NEWER)
    from tuf_repo.server import RepoRequestHandler

    calls: list[int] = []

    def flaky(handler: RepoRequestHandler) -> None:
        calls.append(1)
        if len(calls) <= 2:
            handler.send_error(503, "busy")
        else:
            RepoRequestHandler.do_GET(handler)

    update_env.behaviours["/timestamp.json"] = flaky
    status = update_env.run_update(update_env.client())
    assert status["status"] == "complete", status
    assert len(calls) == 3


def test_verification_errors_are_not_retried(update_env: UpdateEnv) -> None:
    update_env.publish(NEWER)
    path = next((update_env.repo.dir / "targets" / "caio" / NEWER).glob("*.tar.gz"))
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    status = update_env.run_update(update_env.client())
    assert status["error"]["code"] == "hash_mismatch"
    gets = [p for p, _ in update_env.requests if p.endswith(path.name)]
    assert len(gets) == 1


def test_air_gapped_file_mirror(update_env: UpdateEnv) -> None:
    update_env.publish(NEWER)
    update_env.settings = update_env.settings.model_copy(
        update={"update_url": update_env.repo.dir.resolve().as_uri()}
    )
    status = update_env.run_update(update_env.client())
    assert status["status"] == "complete", status
    assert update_env.layout.current_version == NEWER
    assert update_env.requests == []  # nothing went over HTTP


def test_a_partial_download_left_by_a_crash_is_resumed(update_env: UpdateEnv) -> None:
    artifact = update_env.publish(NEWER)
    data = artifact.read_bytes()
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    downloads = update_env.layout.downloads
    downloads.mkdir(parents=True)
    (downloads / f"{sha}.caio-{NEWER}.tar.gz.part").write_bytes(data[:1000])
    status = update_env.run_update(update_env.client())
    assert status["status"] == "complete", status
    ranges = [r for p, r in update_env.requests if p.endswith(f"caio-{NEWER}.tar.gz")]
    assert ranges == ["bytes=1000-"]


def test_a_corrupt_partial_download_fails_verification_and_is_discarded(
    update_env: UpdateEnv,
) -> None:
    artifact = update_env.publish(NEWER)
    import hashlib

    data = artifact.read_bytes()
    part = (
        update_env.layout.downloads / f"{hashlib.sha256(data).hexdigest()}.caio-{NEWER}.tar.gz.part"
    )
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 1000)
    status = update_env.run_update(update_env.client())
    assert status["error"]["code"] == "hash_mismatch"
    assert not part.exists()
    again = update_env.run_update(update_env.client())
    assert again["status"] == "complete"


def test_old_releases_are_pruned(update_env: UpdateEnv) -> None:
    for version in (NEWER, "1.2.0", "1.3.0", "1.4.0"):
        update_env.publish(version)
        status = update_env.run_update(update_env.client(), {"target_version": version})
        assert status["status"] == "complete", status
    layout = update_env.layout
    assert (layout.current_version, layout.previous_version) == ("1.4.0", "1.3.0")
    assert layout.installed_versions() == ["1.2.0", "1.3.0", "1.4.0"]  # keep_releases = 3
    assert RUNNING not in layout.installed_versions()


@pytest.mark.parametrize(
    ("errno_name", "code"),
    [
        ("ENOSPC", ErrorCode.DISK_FULL),
        ("EDQUOT", ErrorCode.DISK_FULL),
        ("EACCES", ErrorCode.PERMISSION_DENIED),
        ("EROFS", ErrorCode.PERMISSION_DENIED),
    ],
)
def test_os_errors_map_to_stable_codes(errno_name: str, code: ErrorCode) -> None:
    import errno
    import os

    number = getattr(errno, errno_name)
    error = from_os_error(OSError(number, os.strerror(number), "/x"), "writing")
    assert error.code == code.value


def test_trust_install_checks_the_root(update_env: UpdateEnv, tmp_path: Path) -> None:
    dest = tmp_path / "anchor" / "trusted_root.json"
    summary = install_trusted_root(update_env.repo.trusted_root, dest)
    assert summary.startswith("root v1, 3 keys, threshold 2")
    assert dest.read_bytes() == update_env.repo.trusted_root.read_bytes()

    doc = json.loads(update_env.repo.trusted_root.read_text())
    doc["signed"]["expires"] = "2099-01-01T00:00:00Z"  # signatures no longer match
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    with pytest.raises(TrustError, match="not signed by 2 of its own root keys"):
        install_trusted_root(forged, tmp_path / "x.json")
    timestamp = update_env.repo.dir / "metadata" / "timestamp.json"
    with pytest.raises(TrustError, match="not root"):
        install_trusted_root(timestamp, tmp_path / "x.json")
    with pytest.raises(NotFoundError, match="does not exist"):
        install_trusted_root(tmp_path / "missing.json", tmp_path / "x.json")
    not_json = tmp_path / "garbage.json"
    not_json.write_text("garbage")
    with pytest.raises(TrustError, match="not TUF metadata"):
        install_trusted_root(not_json, tmp_path / "x.json")


def _source_with_dependency(tmp_path: Path, dependency: str) -> Path:
    import shutil

    from caio.core.settings import SOURCE_DIR

    src = tmp_path / "src-with-deps"
    shutil.copytree(SOURCE_DIR / "caio", src / "caio", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(SOURCE_DIR / "manifest.json", src / "manifest.json")
    (src / "pyproject.toml").write_text(
        f'[project]\nname = "caio"\ndependencies = ["{dependency}"]\n'
    )
    return src


def test_bundled_wheels_are_installed_offline_into_the_release(
    update_env: UpdateEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.tuf_fixtures import write_wheel
    from tuf_repo import build_release

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    write_wheel(mirror, "caiodep", "1.0", b"ANSWER = 42\n")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(mirror))
    src = _source_with_dependency(tmp_path, "caiodep")
    artifact = build_release(src, NEWER, tmp_path / "dist", with_deps=True)
    update_env.repo.publisher().add_release(artifact, ["stable"])

    status = update_env.run_update(update_env.client())
    assert status["status"] == "complete", status
    installed = update_env.layout.release_dir(NEWER) / "site-packages" / "caiodep" / "__init__.py"
    assert installed.read_text() == "ANSWER = 42\n"


def test_a_bundled_wheel_that_does_not_install_fails_preflight(
    update_env: UpdateEnv, tmp_path: Path
) -> None:
    import io
    import tarfile

    from caio.core.settings import SOURCE_DIR
    from tuf_repo import build_release

    good = build_release(SOURCE_DIR, NEWER, tmp_path / "dist")
    bad = tmp_path / f"caio-{NEWER}.tar.gz"
    with tarfile.open(good) as src, tarfile.open(bad, "w:gz") as out:
        for member in src:
            out.addfile(member, src.extractfile(member) if member.isfile() else None)
        junk = b"not a zip file"
        info = tarfile.TarInfo(f"caio-{NEWER}/wheels/caiodep-1.0-py3-none-any.whl")
        info.size = len(junk)
        out.addfile(info, io.BytesIO(junk))
    update_env.repo.publisher().add_release(bad, ["stable"])

    status = update_env.run_update(update_env.client())
    assert status["error"]["code"] == "preflight_failed"
    assert "bundled wheels failed to install" in status["error"]["message"]
    assert update_env.layout.current_version is None
    assert update_env.leftovers() == []
