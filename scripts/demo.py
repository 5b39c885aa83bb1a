"""The quick start, end to end on this machine (loopback only).

1. dev keys under keys/dev/ and a TUF repository under .demo/repo (tuf-repo init)
2. two releases built from this tree: the manifest's version and the next one
3. the repository served on loopback; the trust anchor installed (caio trust install)
4. `caio run` (the supervisor) started on the older release
5. the update through the API, with the host client's progress bar
6. the restart, then /api/v1/version reporting the new version
7. keeps serving (URL and admin token printed), or exits with --once

--two-party adds the organisation's approval repository (its own keys): the host
needs both repositories to sign a release, holds the newer one back, and updates
once the approvers have approved it (tuf-repo approve).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

from caio.client import CaioClient
from tuf_repo import RepoServer

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def run(*command: str | Path, env: dict[str, str] | None = None, capture: bool = False) -> str:
    """Run a step; ``capture``: return its stdout, and show its stderr only if it fails."""
    done = subprocess.run(
        [str(c) for c in command],
        env=env,
        text=True,
        check=False,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr or "")
        sys.exit(f"demo: `{' '.join(map(str, command))}` failed with exit code {done.returncode}")
    return (done.stdout or "").strip()


def hold_exclusively(paths: tuple[Path, ...]) -> list[int]:
    """Lock ``PATH.lock`` for each of ``paths`` for this process's life, or exit naming the holder.

    A second demo would wipe the first one's repository, home and keys: its token
    would stop working and releases published into its repository would be gone.
    """
    held = []
    for path in paths:
        lock = Path(f"{path}.lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            sys.exit(
                f"demo: another demo (pid {holder}) is using {path}; stop it first (Ctrl-C "
                "in its terminal), or give this one its own CAIO_DEMO_DIR and CAIO_DEMO_KEYS"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        held.append(fd)
    return held


def port_or_free(port: int) -> int:
    """``port`` if it can be listened on, else a free one.

    Probed with SO_REUSEADDR, as the servers themselves bind: a port left in
    TIME_WAIT by the previous run is free for them, so it is free here too.
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.bind(("127.0.0.1", 0))
            print(f"   port {port} is busy; using {s.getsockname()[1]}")
        return int(s.getsockname()[1])


def _stop_on_signal(signum: int, _frame: object) -> None:
    """SIGTERM and SIGHUP end the demo the way Ctrl-C does: everything it started stops."""
    raise SystemExit(128 + signum)


def _die_with_demo() -> None:
    """In the supervisor's process before exec: SIGTERM it if the demo dies, even by SIGKILL."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def main() -> int:
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on_signal)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="exit after the update and restart")
    parser.add_argument("--port", type=int, default=8000, help="CAIO port (0: any free port)")
    parser.add_argument("--repo-port", type=int, default=8001, help="repository port")
    parser.add_argument(
        "--two-party",
        action="store_true",
        help="add an approval repository: the update waits until it approves the release",
    )
    args = parser.parse_args()

    demo = Path(os.environ.get("CAIO_DEMO_DIR", ROOT / ".demo"))
    keys = Path(os.environ.get("CAIO_DEMO_KEYS", ROOT / "keys" / "dev"))
    hold_exclusively((demo, keys))
    for path in (demo, keys):
        shutil.rmtree(path, ignore_errors=True)
    demo.mkdir(parents=True)
    current = json.loads((ROOT / "manifest.json").read_text())["version"]
    v = Version(current)
    newer = f"{v.major}.{v.minor + 1}.0"
    trusted_root = publish(demo / "repo", demo / "dist", keys, (current, newer))
    server = RepoServer(demo / "repo", port=port_or_free(args.repo_port), quiet=True).start()
    print(f"   repository served at {server.url}")
    servers = [server]
    try:
        two_party = None
        if args.two_party:
            two_party = approval_repository(demo, trusted_root, current, args.repo_port)
            two_party.write_map(demo / "map.json", server.url)
            servers.append(two_party.server)
        return run_caio(demo / "home", trusted_root, server.url, args, current, newer, two_party)
    finally:
        for running in servers:
            running.stop()


@dataclass
class TwoParty:
    """The organisation's approval repository beside the vendor's (``--two-party``)."""

    repo: Path
    keys: Path
    root: str
    vendor_repo: Path
    vendor_root: str
    server: RepoServer
    map_path: Path | None = None

    def write_map(self, path: Path, vendor_url: str) -> None:
        """The host's map: both repositories must sign the same bytes."""
        doc = {
            "repositories": {"vendor": [vendor_url], "approval": [self.server.url]},
            "mapping": [
                {
                    "paths": ["*"],
                    "repositories": ["vendor", "approval"],
                    "threshold": 2,
                    "terminating": True,
                }
            ],
        }
        path.write_text(json.dumps(doc, indent=2) + "\n")
        path.chmod(0o644)
        self.map_path = path

    def approve(self, version: str) -> None:
        run(
            *(BIN / "tuf-repo", "approve", "--repo", self.repo, "--keys", self.keys),
            *("--from", self.vendor_repo, "--trusted-root", self.vendor_root, version, "--yes"),
        )


def approval_repository(demo: Path, vendor_root: str, current: str, port: int) -> TwoParty:
    """What the organisation's security team does: its own repository and keys, approvals."""
    repo, keys = demo / "approval", demo / "approval-keys"
    step(f"--two-party: an approval repository with its own keys ({keys}); {current} approved")
    run(BIN / "tuf-repo", "init", "--repo", repo, "--keys", keys, capture=True)
    root = run(BIN / "tuf-repo", "export-root", "--repo", repo, capture=True)
    server = RepoServer(repo, port=port_or_free(port + 1 if port else 0), quiet=True).start()
    print(f"   approval repository served at {server.url}")
    party = TwoParty(repo, keys, root, demo / "repo", vendor_root, server)
    party.approve(current)
    return party


def publish(repo: Path, dist: Path, keys: Path, versions: tuple[str, str]) -> str:
    """What a release engineer does: key ceremony, build, add, verify."""
    step(f"key ceremony (dev keys in {keys}) and an empty TUF repository")
    run(BIN / "tuf-repo", "init", "--repo", repo, "--keys", keys, capture=True)
    step(f"building and publishing releases {' and '.join(versions)}")
    for version in versions:
        artifact = run(
            BIN / "tuf-repo", "build", ROOT, "--version", version, "--out", dist, capture=True
        )
        run(BIN / "tuf-repo", "add", "--repo", repo, "--keys", keys, artifact)
    # Hosts get the newest root (here still v1): an old root can be captured with retired keys.
    trusted_root = run(BIN / "tuf-repo", "export-root", "--repo", repo, capture=True)
    run(BIN / "tuf-repo", "verify", "--repo", repo, "--trusted-root", trusted_root)
    return trusted_root


def run_caio(
    home: Path,
    trusted_root: str,
    repo_url: str,
    args: argparse.Namespace,
    current: str,
    newer: str,
    two_party: TwoParty | None = None,
) -> int:
    """What an operator and a host do: trust, run, update, restart."""
    port = port_or_free(args.port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIO_")}
    env.update(
        CAIO_HOME=str(home), CAIO_PORT=str(port), CAIO_UPDATE_URL=repo_url, CAIO_LOG_LEVEL="warning"
    )
    install_trust(env, trusted_root, two_party)
    token = run(
        BIN / "caio",
        "token",
        "create",
        "--name",
        "demo-admin",
        "--role",
        "admin",
        env=env,
        capture=True,
    )
    token_file = home / "admin.token"  # the token goes to caio remote in a 0600 file, not argv
    token_file.touch(mode=0o600)
    token_file.write_text(token + "\n")
    print(f"   admin token 'demo-admin' created; kept in {token_file} (mode 0600)")

    step(f"starting `caio run` on {current}")
    supervisor = subprocess.Popen(
        [BIN / "caio", "run"],
        env=env,
        preexec_fn=_die_with_demo,  # noqa: PLW1509 (one prctl call, async-signal-safe)
    )
    url = f"http://127.0.0.1:{port}"
    remote = [BIN / "caio", "remote"]
    try:
        with CaioClient(url, token) as client:
            client.wait_for_version(current, timeout=60)
            shown = json.dumps(client.version().model_dump(mode="json"))
            print(f"   {url}/api/v1/version -> {shown}")
            auth = ["--url", url, "--token-file", token_file]
            if two_party is not None:
                step(f"{newer} is published, but not approved: the host holds it back")
                run(*remote, "check", *auth, env=env)
                step(f"the approvers read {newer} through TUF and approve it")
                two_party.approve(newer)
            step(f"updating to {newer} through the API")
            run(*remote, "update", *auth, "--wait", env=env)
            step("restarting into the new release (the old one serves until it is healthy)")
            run(*remote, "restart", *auth, "--wait", env=env)
            info = client.version()
        shown = json.dumps(info.model_dump(mode="json"))
        print(f"   {url}/api/v1/version -> {shown}")
        if info.version != newer:
            print(f"demo: expected {newer}, got {info.version}", file=sys.stderr)
            return 1
        if args.once:
            step("done (--once): stopping")
            return 0
        show_serving(url, token, home)
        while supervisor.poll() is None:
            time.sleep(0.5)
        return supervisor.returncode
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    finally:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # a second signal must not cut the cleanup
        if supervisor.poll() is None:
            supervisor.send_signal(signal.SIGTERM)
            try:
                supervisor.wait(60)
            except subprocess.TimeoutExpired:
                supervisor.kill()
                supervisor.wait()


def install_trust(env: dict[str, str], trusted_root: str, two_party: TwoParty | None) -> None:
    """The trust anchor; with --two-party, the map and one anchor per repository."""
    if two_party is None:
        step("installing the trust anchor and an admin token")
        run(BIN / "caio", "trust", "install", trusted_root, env=env)
        return
    step("installing the repository map, an anchor per repository, and an admin token")
    env["CAIO_REPOSITORY_MAP"] = str(two_party.map_path)
    for name, root in (("vendor", trusted_root), ("approval", two_party.root)):
        run(BIN / "caio", "trust", "install", "--repository", name, root, env=env)


def show_serving(url: str, token: str, home: Path) -> None:
    step("CAIO keeps serving; Ctrl-C (or SIGTERM, SIGHUP) stops it and everything started")
    print(f"   URL:          {url}   (API docs: {url}/docs)")
    print(f"   admin token:  {token}")
    print(f"   its state:    CAIO_HOME={home}")
    print("   commands:     . .venv/bin/activate  (puts caio and tuf-repo on PATH)")
    print(f"   try:          curl {url}/api/v1/version")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # Ctrl-C during set-up: the step running got it too and has stopped; no traceback.
        print("\ndemo: interrupted", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
