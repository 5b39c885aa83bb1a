"""Months of daily operation in one process whose clock libfaketime drives.

Run by tests/test_trust_lifecycle.py as ``LD_PRELOAD=libfaketime.so.1
FAKETIME_NO_CACHE=1 python -m tests.calendar_driver ...``: this process moves
its own clock by setting ``FAKETIME`` in its environment, which libfaketime
reads at every clock call. Every simulated day:

* 00:00 the cron job: the real ``tuf-repo refresh --keys KEYS/online`` CLI;
* 09:00 offline signers, if any signatures are awaited and the scenario's
  delay has passed: the real ``tuf-repo sign`` CLI with their offline keys;
* 12:00 clients: CAIO's own TUF client (``TrustedRepository``, a fresh
  Updater over HTTP on loopback) and an independent python-tuf ngclient.

It prints one JSON line per day: the refresh exit code, what ``status``
warned about, and each client's outcome.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import typer.main
from tuf.api import exceptions as tuf_errors
from tuf.ngclient import Updater

from caio.core.errors import UpdateError
from caio.update.repository import RetryPolicy, TrustedRepository
from caio.update.transport import HttpTransport
from tuf_repo.cli import app as tuf_repo_app
from tuf_repo.server import RepoServer

START = datetime(2027, 1, 4, tzinfo=UTC)


def set_clock(when: datetime) -> None:
    os.environ["FAKETIME"] = f"@{when:%Y-%m-%d %H:%M:%S}"


COMMAND = typer.main.get_command(tuf_repo_app)


def tuf_repo(*args: str | Path) -> tuple[int, str]:
    """The real CLI, in this process (so it runs on the faked clock): (exit code, output)."""
    command = COMMAND
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = command.main([str(a) for a in args], standalone_mode=False)
        except click.exceptions.Exit as e:
            code = e.exit_code
        except click.ClickException as e:
            e.show()
            code = e.exit_code
    return int(code or 0), out.getvalue()


def caio_check(url: str, work: Path, anchor: bytes, transport: HttpTransport) -> str:
    repository = TrustedRepository(
        metadata_url=f"{url}/metadata/",
        targets_url=f"{url}/targets/",
        metadata_dir=work / "caio-tuf",
        trusted_root=anchor,
        transport=transport,
        retry=RetryPolicy(attempts=1),
        user_agent="calendar",
    )
    try:
        repository.refresh()
    except UpdateError as e:
        return e.code
    return "ok"


def ngclient_check(url: str, work: Path, anchor: bytes) -> str:
    metadata = work / "ngclient"
    metadata.mkdir(exist_ok=True)
    try:
        Updater(str(metadata), f"{url}/metadata/", bootstrap=anchor).refresh()
    except tuf_errors.ExpiredMetadataError:
        return "metadata_expired"
    except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as e:
        return type(e).__name__
    return "ok"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--sign-after", type=int, default=-1, help="days; -1: nobody signs")
    args = parser.parse_args()
    work = args.work
    set_clock(START)
    repo, keys = work / "repo", work / "keys"
    code, out = tuf_repo("init", "--repo", repo, "--keys", keys)
    if code:
        sys.exit(f"init failed: {out}")
    online, offline = keys / "online", keys / "offline"
    holders = work / "holders"  # each offline key with its own holder, away from the host
    shutil.move(offline, holders)
    anchor = (repo / "metadata" / "1.root.json").read_bytes()
    server = RepoServer(repo, quiet=True).start()
    transport = HttpTransport(server.url, user_agent="calendar")
    waiting_since: int | None = None
    try:
        for day in range(args.days):
            midnight = START + timedelta(days=day)
            set_clock(midnight)
            refresh_code, refresh_out = tuf_repo("refresh", "--repo", repo, "--keys", online)
            status_out = tuf_repo("status", "--repo", repo)[1] if refresh_code else ""
            awaiting = refresh_code == 3
            if not awaiting:
                waiting_since = None
            elif waiting_since is None:
                waiting_since = day
            signed = []
            late = waiting_since is not None and day - waiting_since >= args.sign_after
            if awaiting and args.sign_after >= 0 and late:
                set_clock(midnight + timedelta(hours=9))
                for role in ("root", "targets"):
                    for key in sorted(holders.glob(f"{role}-*.json")):
                        code, out = tuf_repo("sign", "--repo", repo, "--key", key, "--yes", role)
                        signed.append((role, code))
            set_clock(midnight + timedelta(hours=12))
            record = {
                "day": day,
                "refresh": refresh_code,
                "warnings": [ln for ln in status_out.splitlines() if ln.startswith("WARNING")],
                "signed": signed,
                "caio": caio_check(server.url, work, anchor, transport),
                "ngclient": ngclient_check(server.url, work, anchor),
            }
            if refresh_code not in (0, 3):
                record["refresh_output"] = refresh_out[-500:]
            print(json.dumps(record), flush=True)
    finally:
        transport.close()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
