"""One writer at a time: the repository's lock.

Every command that changes the repository holds an exclusive ``flock`` on
``DIR/.tuf-repo.lock`` for its whole run, so ``add`` racing ``refresh``
cannot publish two snapshots under one version, and two signers cannot both
publish root v2. A second writer waits for the lock (``--wait``, 60 s by
default), then stops with a message naming the holder; nothing is changed.
The kernel releases the lock when its holder exits, however it exits, so a
crashed command never leaves the repository locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from tuf_repo.errors import RepositoryBusy

LOCK_NAME = ".tuf-repo.lock"
DEFAULT_WAIT_SECONDS = 60.0
#: Tests: hold the lock this many seconds before working (a writer that is slow).
HOLD_ENV = "TUF_REPO_HOLD_LOCK_SECONDS"
_POLL_SECONDS = 0.05


@contextlib.contextmanager
def writer_lock(root: Path, command: str, *, wait: float = DEFAULT_WAIT_SECONDS) -> Iterator[None]:
    """Hold the repository's writer lock for ``command`` while the block runs.

    Raises:
        RepositoryBusy: another command held it for all of ``wait`` seconds.
    """
    path = root / LOCK_NAME
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RepositoryBusy(_busy_message(path, wait)) from None
                time.sleep(_POLL_SECONDS)
        holder = {
            "pid": os.getpid(),
            "command": command,
            "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        if (hold := os.environ.get(HOLD_ENV)) is not None:
            time.sleep(float(hold))
        yield
    finally:
        os.close(fd)  # releases the lock


def _busy_message(path: Path, waited: float) -> str:
    try:
        holder = json.loads(path.read_bytes())
        who = f"pid {holder['pid']}, `tuf-repo {holder['command']}`, since {holder['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        who = "another process"
    return (
        f"the repository {path.parent} is being changed by another tuf-repo command ({who}); "
        f"waited {waited:g} s and changed nothing. Run this again when it has finished, "
        "or wait longer with --wait SECONDS."
    )
