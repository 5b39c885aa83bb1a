"""The standby child: the next release booted by its own preflight, then promoted at restart.

An update used to start two interpreters for the new release: the preflight
(import the new tree, report its version, exit) and, at the restart, the new
child. Under ``caio run`` they are now one process:

1. The installer's preflight (:class:`StandbyPreflight`, in the serving child)
   sends ``X_CAIO_PREPARE=<version>`` with a nonce to the supervisor.
2. The supervisor (:class:`StandbyKeeper`) starts the release from
   ``releases/<version>`` as a *standby* child on the shared socket. It imports
   the release (and checks it came from there), reports its version over its
   notify socket, and waits for a byte on a pipe.
3. The supervisor writes the verdict (ready, or why not) with the nonce to
   ``state/standby.json``; the job reads it: ready is a passed preflight, any
   other answer a ``preflight_failed`` with what the release printed.
4. At the restart the supervisor writes ``1`` on the pipe: the standby serves,
   and is health-gated, put on probation and rolled back like any new child.

A standby that is not promoted within ``CAIO_STANDBY_SECONDS`` (or is replaced
by another version's, or whose restart targets another version) is stopped,
and the restart starts a fresh child as before. A supervisor says it can do
this in ``CAIO_SUPERVISOR_FEATURES``; a child under one that does not (an
older ``caio run``) keeps the throw-away preflight.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from caio.core.errors import ErrorCode, UpdateError
from caio.core.files import atomic_write_json
from caio.restart import notify
from caio.restart.process import (
    FEATURES_ENV,
    PREPARE_MESSAGE,
    REQUEST_FIELD,
    STANDBY_FAILED,
    STANDBY_READY,
    SUPERVISED_ENV,
)

log = logging.getLogger("caio.supervisor")

FEATURE = "standby"
POLL_SECONDS = 0.02
VERDICT_FILE = "standby.json"


def read_verdict(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # not written yet, or being replaced
    return data if isinstance(data, dict) else None


class StandbyPreflight:
    """The installer's preflight in a child of ``caio run``: the supervisor boots the
    release as the standby child, and its verdict is the preflight's."""

    def __init__(self, notify_socket: str, state_dir: Path, timeout: float) -> None:
        self.notify_socket = notify_socket
        self.verdicts = state_dir / VERDICT_FILE
        self.timeout = timeout

    def __call__(self, tree: Path, version: str) -> None:
        if tree.name != version:
            raise UpdateError(ErrorCode.PREFLIGHT_FAILED, f"{tree} is not releases/{version}")
        request = secrets.token_hex(8)
        notify.send(f"{PREPARE_MESSAGE}={version}\n{REQUEST_FIELD}={request}", self.notify_socket)
        deadline = time.monotonic() + self.timeout + 5  # the supervisor's own deadline, and some
        while time.monotonic() < deadline:
            verdict = read_verdict(self.verdicts)
            if verdict is not None and verdict.get("request") == request:
                if verdict.get("outcome") == "ready":
                    return
                raise UpdateError(
                    ErrorCode.PREFLIGHT_FAILED,
                    f"the new release does not start: {verdict.get('reason', 'no reason given')}",
                )
            time.sleep(POLL_SECONDS)
        raise UpdateError(
            ErrorCode.PREFLIGHT_FAILED,
            f"the supervisor gave no verdict on {version} within {self.timeout + 5:g}s",
        )


def standby_preflight(
    environ: Mapping[str, str], state_dir: Path, timeout: float
) -> StandbyPreflight | None:
    """The standby preflight when this process is a child of a ``caio run`` that offers
    it; None otherwise (the installer then runs the throw-away preflight)."""
    socket_path = environ.get("NOTIFY_SOCKET")
    offered = FEATURE in environ.get(FEATURES_ENV, "").split(",")
    if environ.get(SUPERVISED_ENV) != "1" or not offered or not socket_path:
        return None
    return StandbyPreflight(socket_path, state_dir, timeout)


class StandbyChild(Protocol):
    """What the keeper needs of a child process (the supervisor's ``Child``)."""

    version: str

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def messages(self) -> list[dict[str, str]]: ...


C = TypeVar("C", bound=StandbyChild)


class StandbyKeeper(Generic[C]):
    """The supervisor's side: at most one standby child, its verdict, its expiry.

    ``spawn(version, standby_fd)`` starts a child that waits on ``standby_fd``;
    ``stop(child)`` ends one. :meth:`tend` runs on every turn of the
    supervisor's loop and never blocks.
    """

    def __init__(
        self,
        spawn: Callable[[str, int], C],
        stop: Callable[[C], None],
        state_dir: Path,
        *,
        boot_timeout: float,
        keep_seconds: float,
    ) -> None:
        self._spawn = spawn
        self._stop = stop
        self.verdicts = state_dir / VERDICT_FILE
        self.boot_timeout = boot_timeout
        self.keep_seconds = keep_seconds
        self.child: C | None = None
        self._go: int | None = None  # the pipe's write end
        self._request = ""
        self._since = 0.0  # when it was started, then when it became ready
        self._ready = False

    def prepare(self, version: str, request: str) -> None:
        """Boot ``version`` as the standby (or keep the one already booting it)."""
        if self.child is not None and self.child.version == version and self.child.poll() is None:
            self._request = request
            if self._ready:
                self._verdict("ready")
            return
        self.discard()
        read_end, self._go = os.pipe()
        try:
            self.child = self._spawn(version, read_end)
        except OSError as e:
            os.close(self._go)
            self._go = None
            self._request = request
            self._verdict("failed", version=version, reason=f"cannot start it: {e}")
            return
        finally:
            os.close(read_end)
        self._request, self._since, self._ready = request, time.monotonic(), False
        log.info("standby child (pid %d) is booting %s", self.child.pid, version)

    def tend(self) -> bool:
        """Note a standby's report, its death, a boot past the deadline, or its expiry.

        True when what :meth:`describe` says changed.
        """
        child = self.child
        if child is None:
            return False
        before = self.describe()
        reason = ""
        for message in child.messages():
            if STANDBY_READY in message and message[STANDBY_READY] != child.version:
                reason = f"it reports version {message[STANDBY_READY]}, expected {child.version}"
            elif STANDBY_READY in message:
                self._ready, self._since = True, time.monotonic()
                log.info("standby child (pid %d) is ready: %s", child.pid, child.version)
                self._verdict("ready")
            elif STANDBY_FAILED in message:
                reason = message[STANDBY_FAILED]
        code = child.poll()
        waited = time.monotonic() - self._since
        if reason or code is not None:
            self._fail(reason or f"it exited with code {code}")
        elif not self._ready and waited > self.boot_timeout:
            self._fail(f"it did not import within {self.boot_timeout:g}s")
        elif self._ready and waited > self.keep_seconds:
            log.info("standby child for %s not needed within %gs", child.version, waited)
            self.discard()
        return self.describe() != before

    def take(self, version: str) -> C | None:
        """Promote the standby if it boots ``version``: it starts serving; else None."""
        child, go = self.child, self._go
        if child is None or go is None or child.version != version or child.poll() is not None:
            self.discard()
            return None
        os.write(go, b"1")
        os.close(go)
        self.child, self._go = None, None
        log.info("promoting standby child (pid %d) running %s", child.pid, version)
        return child

    def discard(self) -> None:
        """Stop the standby, if any (it reads end of file and exits, or is killed)."""
        if self._go is not None:
            os.close(self._go)
            self._go = None
        if self.child is not None:
            self._stop(self.child)
            self.child = None
        self._ready = False

    def describe(self) -> dict[str, Any] | None:
        if self.child is None:
            return None
        return {"pid": self.child.pid, "version": self.child.version, "ready": self._ready}

    def _fail(self, reason: str) -> None:
        child = self.child
        if child is None:
            return
        log.error("standby child for %s failed: %s", child.version, reason)
        version = child.version
        self.discard()
        self._verdict("failed", version=version, reason=reason)

    def _verdict(self, outcome: str, *, version: str | None = None, reason: str = "") -> None:
        version = version or (self.child.version if self.child else "")
        record = {"request": self._request, "version": version, "outcome": outcome}
        if reason:
            record["reason"] = reason
        atomic_write_json(self.verdicts, record, mode=0o600, durable=False)
