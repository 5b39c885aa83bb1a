"""Threads and processes a test starts, ended on every path, pass or fail.

``looping`` runs a loop in daemon threads and stops and joins them when its
block ends, also when an assertion inside the block fails. ``spawn`` starts a
process in its own process group and ``end`` stops that whole group, so a
child's own children (nginx workers, a supervisor's service) go with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["BACKOFF_SECONDS", "end", "looping", "spawn"]

#: How long a load loop waits after a failed request before the next one: a server
#: that is gone must not turn the loop into a busy spin on both cores.
BACKOFF_SECONDS = 0.2


@contextmanager
def looping(
    step: Callable[[threading.Event], None], *, threads: int = 1, name: str = "load"
) -> Iterator[threading.Event]:
    """Call ``step(stop)`` over and over in ``threads`` daemon threads until the block ends.

    ``step`` should return quickly (one request); it may wait on ``stop`` to back off.
    """
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            step(stop)

    workers = [
        threading.Thread(target=loop, name=f"{name}-{n}", daemon=True) for n in range(threads)
    ]
    for worker in workers:
        worker.start()
    try:
        yield stop
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)


def spawn(command: list[str], **popen: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen`` in a new session: the process leads a group that ``end`` stops."""
    return subprocess.Popen(command, start_new_session=True, **popen)


def end(proc: subprocess.Popen[Any], grace: float = 15, sig: int = signal.SIGTERM) -> int:
    """Stop ``proc`` (``sig``, then SIGKILL after ``grace`` seconds) and then its whole group.

    Returns the process's exit code. Safe to call twice and on a process that has ended.
    """
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # Whatever it left in its group; nothing to do when the group is already empty.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode
