"""More than a year of a publishing host at the shipped timer's cadence, hour by hour.

Run by tests/test_trust_lifecycle.py as ``LD_PRELOAD=libfaketime.so.1
FAKETIME_NO_CACHE=1 python -m tests.calendar_years --work DIR``; this process
moves its own clock by setting ``FAKETIME``, which libfaketime reads at every
clock call. The publishing host holds only the online keys; every offline key
is with its holder (``holders/``), who signs only when `refresh` has said so
(exit code 3) for as long as that holder is late this time: 1 to 30 days.

* Every hour, a few minutes past (the timer's ``RandomizedDelaySec``): the
  real ``tuf-repo refresh --keys keys/online``, in this process, except:
  the machine is off for nine hours on day 40 (the runs are missed, the
  timer's ``Persistent`` runs one at boot), one run on day 100 is 50 minutes
  late, and on day 150 the run is a separate process killed half way through
  moving a publication into place (``TUF_REPO_FAULT_AT``); the next hour's
  run completes it.
* Release engineers (online keys only, so everything they do is staged):
  four releases, a withdrawal, a targets key rotation (day 160) and a root
  rotation (day 300). New keys go to their holders; holders retire old ones
  with ``tuf-repo key retire`` once the rotation is published.
* Every day after the 04:00 refresh, ``tuf-repo prune`` removes what no client
  can be sent any more (what was superseded more than a week ago).
* Four times a day a long-running python-tuf ngclient refreshes and fetches
  the release index; once a day a fresh ngclient bootstraps from the first
  root, and CAIO's own client (``TrustedRepository``) refreshes.

Prints one JSON line per day, then a summary line (``"summary": true``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Root
from tuf.ngclient import Updater

from caio.core.release_format import INDEX_PATH, parse_index
from caio.update.transport import HttpTransport
from tests.calendar_driver import START, caio_check, set_clock, tuf_repo
from tests.tuf_fixtures import make_source_tree
from tuf_repo.release import build_release
from tuf_repo.server import RepoServer
from tuf_repo.transaction import FAULT_ENV

EXIT_OK, EXIT_FAILED, EXIT_SIGNATURES = 0, 1, 3
CLIENT_HOURS = (3, 9, 15, 21)
SIGNING_HOUR = 10
HOLDER_DELAYS_DAYS = (30, 2, 14, 30, 7, 25, 1, 30, 12)  # each time signatures are asked for
OFF_DAY, OFF_HOURS = 40, range(1, 10)
LATE_DAY, LATE_HOUR, LATE_MINUTES = 100, 5, 50
CRASH_DAY = 150
CRASH_AT_STEP = 4  # past the journal: a publication half moved into place
RELEASES = {10: "1.1.0", 120: "1.2.0", 250: "1.3.0", 380: "1.4.0"}
WITHDRAW = (200, "1.2.0")
ROTATE_TARGETS_DAY, ROTATE_ROOT_DAY = 160, 300
PRUNE_HOUR = 4


class Calendar:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.repo = work / "repo"
        self.keys = work / "keys"
        self.online = self.keys / "online"
        self.holders = work / "holders"  # each offline key with its holder, away from the host
        self.ceremony = work / "ceremony"  # where a rotation writes its new keys
        self.waiting_since: int | None = None  # the hour exit 3 was first seen, this time
        self.asked = 0  # how many times signatures were asked for, and then given
        self.retiring: set[Path] = set()  # rotated out, retired once no root lists them
        self.day_record: dict[str, Any] = {}

    def hour(self, day: int, hour: int) -> int:
        return day * 24 + hour

    # --- the publishing host ------------------------------------------------------------
    def cron(self, day: int, hour: int) -> None:
        if day == OFF_DAY and hour in OFF_HOURS:
            return  # the machine is off; Persistent=true runs the missed one at boot
        jitter = (day * 24 + hour) * 37 % 300  # RandomizedDelaySec=5min, deterministic
        late = LATE_MINUTES * 60 if (day, hour) == (LATE_DAY, LATE_HOUR) else 0
        set_clock(START + timedelta(days=day, hours=hour, seconds=jitter + late))
        crash_due = day == CRASH_DAY and "crashed" not in self.day_record
        if crash_due and self._crashing_refresh():
            self.day_record["crashed"] = hour
            return
        code, out = tuf_repo("refresh", "--repo", self.repo, "--keys", self.online)
        self.day_record.setdefault("refresh", {}).setdefault(str(code), 0)
        self.day_record["refresh"][str(code)] += 1
        if code not in (EXIT_OK, EXIT_SIGNATURES):
            self.day_record.setdefault("refresh_failures", []).append([hour, out[-600:]])
        if code == EXIT_SIGNATURES:
            if self.waiting_since is None:
                self.waiting_since = self.hour(day, hour)
        else:
            self.waiting_since = None
        if hour == PRUNE_HOUR:
            self.prune()

    def prune(self) -> None:
        """The daily `tuf-repo prune` (deploy/publisher/tuf-repo-prune.timer), after the refresh."""
        code, out = tuf_repo("prune", "--repo", self.repo)
        if code:
            self.day_record.setdefault("prune_failures", []).append(out[-600:])
        elif not out.startswith("removed 0 files"):
            self.day_record["pruned"] = out.split(" files")[0].removeprefix("removed ")

    def _crashing_refresh(self) -> bool:
        """A refresh in its own process, killed mid-publication; True if it was killed."""
        env = {**os.environ, FAULT_ENV: str(CRASH_AT_STEP)}
        command = ["refresh", "--repo", str(self.repo), "--keys", str(self.online)]
        # No timeout here: under libfaketime, the sleep subprocess's timeout polls with can
        # fail with EINVAL (seen once the suite ran on both cores). The test that runs this
        # calendar bounds it (540 s), and pytest-timeout bounds the test.
        done = subprocess.run(
            [sys.executable, "-m", "tuf_repo.cli", *command],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        return done.returncode == -9

    # --- people -------------------------------------------------------------------------
    def release_engineers(self, day: int) -> None:
        set_clock(START + timedelta(days=day, hours=SIGNING_HOUR - 1, minutes=30))
        if day in RELEASES:
            version = RELEASES[day]
            source = make_source_tree(self.work / f"src-{version}")
            artifact = build_release(source, version, self.work / "dist")
            self._staged("add", "--repo", self.repo, "--keys", self.online, artifact)
        if day == WITHDRAW[0]:
            self._staged(
                "withdraw", "--repo", self.repo, "--keys", self.online, WITHDRAW[1], "--reason", "x"
            )
        if day == ROTATE_TARGETS_DAY:
            self._rotate("targets")
        if day == ROTATE_ROOT_DAY:
            self._rotate("root")

    def _staged(self, *args: str | Path) -> None:
        code, out = tuf_repo(*args)
        self.day_record.setdefault("events", []).append([str(args[0]), code])
        if code != EXIT_SIGNATURES:
            raise SystemExit(f"{args[0]} was not staged for its signers ({code}): {out}")

    def _rotate(self, role: str) -> None:
        """New keys made at a ceremony, staged until the old root keys' holders sign."""
        shutil.rmtree(self.ceremony, ignore_errors=True)
        (self.ceremony / "offline").mkdir(parents=True)
        before = set(self.holders.glob(f"{role}-*.json"))
        self._staged("rotate", "--repo", self.repo, "--keys", self.ceremony, role)
        for key in (self.ceremony / "offline").rglob(f"{role}-*.json"):  # one dir per holder
            shutil.move(key, self.holders / key.name)
        self.retiring |= before

    def signers(self, day: int) -> None:
        """Holders sign what refresh asked for, once this time's delay has passed."""
        if self.waiting_since is None:
            return
        delay = HOLDER_DELAYS_DAYS[self.asked % len(HOLDER_DELAYS_DAYS)]
        if self.hour(day, SIGNING_HOUR) - self.waiting_since < delay * 24:
            return
        set_clock(START + timedelta(days=day, hours=SIGNING_HOUR, minutes=30))
        signed = []
        for role in ("root", "targets"):
            for key in sorted(self.holders.glob(f"{role}-*.json")):
                if role != "root" and key in self.retiring:
                    continue  # rotated out: only an old root key still signs (the new root)
                code, out = tuf_repo("sign", "--repo", self.repo, "--key", key, "--yes", role)
                if code in (EXIT_OK, EXIT_SIGNATURES):  # 3: more signatures to come
                    signed.append(role)
                elif "nothing is staged" not in out:
                    self.day_record.setdefault("sign_failures", []).append([role, code, out[-400:]])
        self.day_record["signed"] = sorted(set(signed))
        self.asked += 1
        self.waiting_since = None

    def retire_old_keys(self) -> None:
        """Holders run `tuf-repo key retire`: a rotated-out key keeps only its public half."""
        before = {p.name for p in self.holders.glob("*.json")}
        code, out = tuf_repo("key", "retire", "--repo", self.repo, "--keys", self.holders)
        if code:
            self.day_record.setdefault("sign_failures", []).append(["retire", code, out[-400:]])
        gone = before - {p.name for p in self.holders.glob("*.json")}
        if gone:
            self.day_record.setdefault("retired", []).extend(sorted(gone))
            self.retiring = {p for p in self.retiring if p.name not in gone}

    # --- clients ------------------------------------------------------------------------
    def clients(self, day: int, hour: int, url: str, anchor: bytes, transport: Any) -> None:
        """At half past a client hour; the last one of the day also bootstraps afresh."""
        set_clock(START + timedelta(days=day, hours=hour, minutes=30))
        failures = self.day_record.setdefault("client_failures", [])
        if (outcome := ngclient(url, self.work / "ngclient-host", anchor)) != "ok":
            failures.append([hour, "ngclient", outcome])
        if hour != CLIENT_HOURS[-1]:
            return
        fresh = self.work / "ngclient-fresh"
        shutil.rmtree(fresh, ignore_errors=True)
        if (outcome := ngclient(url, fresh, anchor)) != "ok":
            failures.append([hour, "ngclient-fresh", outcome])
        if (outcome := caio_check(url, self.work, anchor, transport)) != "ok":
            failures.append([hour, "caio", outcome])


def ngclient(url: str, metadata: Path, anchor: bytes) -> str:
    """Refresh and fetch the release index; "ok" or what failed."""
    metadata.mkdir(parents=True, exist_ok=True)
    targets = metadata / "targets"
    targets.mkdir(exist_ok=True)
    try:
        updater = Updater(
            str(metadata), f"{url}/metadata/", str(targets), f"{url}/targets/", bootstrap=anchor
        )
        updater.refresh()
        info = updater.get_targetinfo(INDEX_PATH)
        if info is not None:
            parse_index(Path(updater.download_target(info)).read_bytes(), strict=True)
    except tuf_errors.ExpiredMetadataError:
        return "metadata_expired"
    except (tuf_errors.RepositoryError, tuf_errors.DownloadError, ValueError) as e:
        return f"{type(e).__name__}: {e}"[:300]
    return "ok"


def index_seen_by_ngclient(url: str, work: Path, anchor: bytes) -> list[dict[str, Any]]:
    metadata = work / "ngclient-final"
    metadata.mkdir()
    updater = Updater(
        str(metadata), f"{url}/metadata/", str(metadata), f"{url}/targets/", bootstrap=anchor
    )
    updater.refresh()
    info = updater.get_targetinfo(INDEX_PATH)
    assert info is not None
    entries = parse_index(Path(updater.download_target(info)).read_bytes(), strict=True)
    return [{"version": e.version, "withdrawn": e.withdrawn is not None} for e in entries]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--days", type=int, default=420)
    args = parser.parse_args()
    cal = Calendar(args.work)
    os.environ["TUF_REPO_STATE_DIR"] = str(args.work / "state")
    set_clock(START)
    code, out = tuf_repo("init", "--repo", cal.repo, "--keys", cal.keys)
    if code:
        sys.exit(f"init failed: {out}")
    shutil.move(cal.keys / "offline", cal.holders)
    first_root = Metadata.from_bytes((cal.repo / "metadata" / "1.root.json").read_bytes())
    anchor = (cal.repo / "metadata" / "1.root.json").read_bytes()
    server = RepoServer(cal.repo, quiet=True).start()
    transport = HttpTransport(server.url, user_agent="calendar-years")
    try:
        for day in range(args.days):
            cal.day_record = {"day": day}
            for hour in range(24):
                cal.cron(day, hour)
                if hour == SIGNING_HOUR - 1:
                    cal.release_engineers(day)
                if hour == SIGNING_HOUR:
                    cal.signers(day)
                    cal.retire_old_keys()
                if hour in CLIENT_HOURS:
                    cal.clients(day, hour, server.url, anchor, transport)
            print(json.dumps(cal.day_record), flush=True)
        root = Metadata[Root].from_bytes(
            (cal.repo / "metadata" / f"{_newest_root(cal.repo)}.root.json").read_bytes()
        )
        summary = {
            "summary": True,
            "root_version": root.signed.version,
            "root_keys_changed": set(root.signed.roles["root"].keyids)
            != set(first_root.signed.roles["root"].keyids),
            "targets_keys_changed": set(root.signed.roles["targets"].keyids)
            != set(first_root.signed.roles["targets"].keyids),
            "index": index_seen_by_ngclient(server.url, args.work, anchor),
            "staged_left": sorted(p.name for p in (cal.repo / "staged").glob("*.json")),
            "kept": {
                "snapshots": len(list((cal.repo / "metadata").glob("*.snapshot.json"))),
                "targets": len(list((cal.repo / "metadata").glob("*.targets.json"))),
                "index_copies": len(list((cal.repo / "targets").rglob("*.index.json"))),
            },
        }
        print(json.dumps(summary), flush=True)
    finally:
        transport.close()
        server.stop()
    return 0


def _newest_root(repo: Path) -> int:
    return max(int(p.name.split(".")[0]) for p in (repo / "metadata").glob("*.root.json"))


if __name__ == "__main__":
    sys.exit(main())
