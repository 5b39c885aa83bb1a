"""``caio-tuf-client``: the TUF conformance suite's client CLI, on CAIO's own TUF stack.

It uses exactly what CAIO updates with: :class:`TrustedRepository` (ngclient
with a fresh Updater per run), :class:`HttpTransport` (the urllib3 fetcher) and
:class:`ArtifactDownloader` (single-pass verified download), so the suite
measures the code that protects CAIO.

    caio-tuf-client --metadata-dir DIR init TRUSTED_ROOT
    caio-tuf-client --metadata-url URL --metadata-dir DIR refresh
    caio-tuf-client --metadata-url URL --metadata-dir DIR --target-name P [--target-name P2 ...]
                    --target-dir TDIR --target-base-url TURL download

``METADATA_DIR`` holds only metadata files with non-versioned names, byte for
byte as received (ngclient works in a private scratch copy); ``TARGET_DIR``
holds only complete, verified targets, and one already there with matching
hashes is not downloaded again. Exit status: 0 on success, exactly 1 on any
failure (usage errors included).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

from tuf.api import exceptions as tuf

from caio.core.errors import CaioError
from caio.core.files import atomic_write_bytes
from caio.update import (
    ArtifactDownloader,
    RepositoryView,
    RetryPolicy,
    TrustedRepository,
    make_transport,
)

USER_AGENT = "caio-tuf-client"
ROOT_FILE = "root.json"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"caio-tuf-client: {message}", file=sys.stderr)
        sys.exit(1)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="caio-tuf-client", description="TUF conformance client on CAIO's TUF stack")
    p.add_argument("--metadata-dir", required=True, type=Path)
    p.add_argument("--metadata-url")
    p.add_argument("--target-name", action="append", default=[])
    p.add_argument("--target-dir", type=Path)
    p.add_argument("--target-base-url")
    p.add_argument("command", choices=["init", "refresh", "download"])
    p.add_argument("trusted_root", nargs="?", type=Path)
    return p


def init(metadata_dir: Path, trusted_root: Path) -> None:
    """Make ``trusted_root`` the trusted root; no network."""
    metadata_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(metadata_dir / ROOT_FILE, trusted_root.read_bytes())


class ConformanceSession:
    """One run: a scratch ngclient cache seeded from, and copied back to, METADATA_DIR."""

    def __init__(self, metadata_dir: Path, metadata_url: str, target_base_url: str | None) -> None:
        self.metadata_dir = metadata_dir
        self._scratch = Path(tempfile.mkdtemp(prefix="caio-tuf-client-"))
        cache = self._scratch / "metadata"
        cache.mkdir()
        for path in metadata_dir.glob("*.json"):
            if path.name != ROOT_FILE:
                shutil.copyfile(path, cache / path.name)
        self.transport = make_transport(
            metadata_url, user_agent=USER_AGENT, token=None, timeout=30.0
        )
        retry = RetryPolicy(attempts=1)
        self.repository = TrustedRepository(
            metadata_url=metadata_url,
            targets_url=target_base_url or metadata_url,
            metadata_dir=cache,
            trusted_root=(metadata_dir / ROOT_FILE).read_bytes(),
            transport=self.transport,
            retry=retry,
            user_agent=USER_AGENT,
        )
        self.downloader = ArtifactDownloader(self.transport, self._scratch / "downloads", retry)

    def refresh(self) -> RepositoryView:
        try:
            return self.repository.refresh_metadata()
        finally:
            self._publish_metadata()

    def download(self, view: RepositoryView, target_name: str, target_dir: Path) -> None:
        # Every role file ngclient verifies on the way, through delegations and
        # whether or not the lookup finds the target, is kept in METADATA_DIR.
        try:
            info = view.target_info(target_name)
            dest = target_dir / quote(target_name, safe="")
            if dest.exists():
                try:
                    with dest.open("rb") as f:
                        info.verify_length_and_hashes(f)
                    return  # already here and verified
                except tuf.LengthOrHashMismatchError:
                    pass  # the artifact changed upstream: download the new one below
            verified = self.downloader.fetch(view.target_url(info), info, lambda _d, _t: None)
        finally:
            self._publish_metadata()
        target_dir.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.move(verified, tmp)
        os.replace(tmp, dest)

    def _publish_metadata(self) -> None:
        """Copy what ngclient now trusts into METADATA_DIR, unversioned, byte for byte."""
        cache = self.repository.metadata_dir
        for path in cache.glob("*.json"):
            data = path.resolve().read_bytes()  # root.json may be a link into root_history/
            target = self.metadata_dir / path.name
            if not target.exists() or target.read_bytes() != data:
                atomic_write_bytes(target, data)

    def close(self) -> None:
        self.transport.close()
        shutil.rmtree(self._scratch, ignore_errors=True)


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "init":
        if args.trusted_root is None:
            _parser().error("init needs TRUSTED_ROOT")
        init(args.metadata_dir, args.trusted_root)
        return 0
    if not args.metadata_url:
        _parser().error(f"{args.command} needs --metadata-url")
    if args.command == "download" and not (
        args.target_name and args.target_dir and args.target_base_url
    ):
        _parser().error("download needs --target-name, --target-dir and --target-base-url")
    session = ConformanceSession(args.metadata_dir, args.metadata_url, args.target_base_url)
    try:
        view = session.refresh()
        for name in args.target_name if args.command == "download" else []:
            session.download(view, name, args.target_dir)
    finally:
        session.close()
    return 0


def main() -> None:
    try:
        code = run(sys.argv[1:])
    except (CaioError, OSError, tuf.RepositoryError, tuf.DownloadError, ValueError) as e:
        print(f"caio-tuf-client: {e}", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
