"""A publication is all of its files or none: the journal, and the repair after a crash.

A publication writes several files that clients read together (targets
roles, snapshot, root, ``timestamp.json``) and then forgets the staged work
it published. Killed between two of those writes, it used to leave clients
failing (a new root naming a timestamp key that no timestamp was signed
with yet), or a staged role that was already published and wedged every
later command. Now it is written as a transaction::

    DIR/.transaction/<n>            the new files, in the order they go into place
    DIR/.transaction/journal.json   written last: the commit point

Before the journal exists, a crash leaves the repository as it was and the
next command discards the leftovers. Once it exists, the next command that
takes the writer lock completes the publication: it moves the remaining
files into place in the journal's order, records the high-water mark, and
unstages what was published. Every step is durable (fsync) and idempotent,
and each one can be a crash point in the tests (``TUF_REPO_FAULT_AT=N`` kills
the process with SIGKILL at its N-th durable step).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
from collections.abc import Iterable, Mapping
from pathlib import Path

from caio.core.files import atomic_write_bytes, fsync_dir
from tuf_repo.errors import MetadataError
from tuf_repo.store import HighWaterMark, RepoStore

TXN_NAME = ".transaction"
DONE_NAME = ".transaction.done"  # an applied transaction, being removed
JOURNAL = "journal.json"
#: Tests: SIGKILL this process at its N-th durable step.
FAULT_ENV = "TUF_REPO_FAULT_AT"

_log = logging.getLogger("tuf_repo")
_steps = [0]  # durable steps taken by this process


def durable_step() -> None:
    """Count one durable write; die here if it is the configured crash point."""
    _steps[0] += 1
    wanted = os.environ.get(FAULT_ENV)
    if wanted is not None and wanted.isdigit() and int(wanted) == _steps[0]:
        os.kill(os.getpid(), signal.SIGKILL)


def publish_files(
    root: Path,
    writes: list[tuple[str, bytes]],
    *,
    unstage: Iterable[str] = (),
    high_water: tuple[HighWaterMark, dict[str, int]] | None = None,
) -> None:
    """Put ``writes`` (paths relative to ``root``, in order) in place, all or none.

    ``unstage``: staged roles this publishes; ``high_water``: the versions to
    record once the files are in place. Call with the writer lock held.
    """
    txn = root / TXN_NAME
    if txn.exists():
        raise MetadataError(f"{txn} exists: an interrupted publication was not repaired first")
    txn.mkdir()
    for n, (_, data) in enumerate(writes):
        atomic_write_bytes(txn / str(n), data)
        durable_step()
    journal = {
        "writes": [relpath for relpath, _ in writes],
        "unstage": sorted(set(unstage)),
        "high_water": (
            {"path": str(high_water[0].path), "versions": high_water[1]}
            if high_water is not None
            else None
        ),
    }
    atomic_write_bytes(txn / JOURNAL, json.dumps(journal).encode(), mode=0o600)
    durable_step()
    _apply(root, journal)


def recover(root: Path) -> str | None:
    """Complete or discard a publication a crash interrupted; what was done, for the user.

    Call with the writer lock held.

    Raises:
        MetadataError: the journal of a committed publication cannot be read.
    """
    shutil.rmtree(root / DONE_NAME, ignore_errors=True)
    txn = root / TXN_NAME
    if not txn.exists():
        return None
    try:
        journal = json.loads((txn / JOURNAL).read_bytes())
    except FileNotFoundError:
        shutil.rmtree(txn)
        fsync_dir(root)
        note = "discarded a publication interrupted before it changed anything"
    except (OSError, ValueError) as e:
        raise MetadataError(f"the journal of an interrupted publication is unreadable: {e}") from e
    else:
        _apply(root, journal)
        note = "completed a publication that was interrupted after its commit point"
    _log.warning(note)
    return note


def pending(root: Path) -> str | None:
    """An interrupted publication, described without touching it (for ``status``)."""
    txn = root / TXN_NAME
    if not txn.exists():
        return None
    if (txn / JOURNAL).exists():
        return "a publication was interrupted after its commit point: the next command completes it"
    return "a publication was interrupted before its commit point: the next command discards it"


def _apply(root: Path, journal: Mapping[str, object]) -> None:
    """Carry out a committed journal; safe to repeat after a crash at any step."""
    from tuf_repo.staged import StagedWork  # staged.py stages through this module

    txn = root / TXN_NAME
    writes = journal["writes"]
    if not isinstance(writes, list):
        raise MetadataError(f"{txn / JOURNAL}: no list of writes")
    for n, relpath in enumerate(writes):
        staged = txn / str(n)
        if not staged.exists():
            continue  # moved into place before a crash
        dest = root / str(relpath)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, dest)
        fsync_dir(dest.parent)
        durable_step()
    high_water = journal.get("high_water")
    if isinstance(high_water, dict):
        versions = {str(k): int(v) for k, v in dict(high_water["versions"]).items()}
        HighWaterMark(Path(str(high_water["path"]))).record(versions)
        durable_step()
    unstage = journal.get("unstage")
    if isinstance(unstage, list) and unstage:
        StagedWork(RepoStore(root)).unstage(str(role) for role in unstage)
        durable_step()
    done = root / DONE_NAME
    os.replace(txn, done)  # one rename ends the transaction
    fsync_dir(root)
    durable_step()
    shutil.rmtree(done)
