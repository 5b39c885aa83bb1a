"""Boot counting for ``caio serve-current`` (the systemd unit): a release that does not stay
up for ``CAIO_BOOT_ATTEMPTS`` boots in a row is rolled back before the next one.

Under systemd nothing watches a new release the way the supervisor does: one that
fails at start is restarted by systemd until its start limit, and the service is
down. As boot loaders count the boots of an A/B slot, ``state/boot.json`` holds
the version being booted, how it went and its failures so far:

* ``caio serve-current``, before it runs ``current``: a last boot of the same
  version still ``booting`` (it neither stayed up ``CAIO_STABLE_SECONDS`` nor
  stopped cleanly) was a failure. At ``CAIO_BOOT_ATTEMPTS`` failures, ``previous``
  is made current again, the version marked bad, and the verdict recorded, as the
  supervisor records its own (:mod:`caio.restart.verdict`).
* the serving process marks its boot ``up`` once it has served for
  ``CAIO_STABLE_SECONDS`` (the count starts again), and ``stopped`` when it stops
  cleanly (``systemctl restart`` is no verdict). A boot that ended otherwise,
  starting or serving, is a ``child_exit`` audit record at the next start, as the
  supervisor records its children's (``caio_child_exits``).

A release without this module (older than boot counting) never marks its boots;
it is booted as it always was, and its boots are not counted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from caio.core.files import atomic_write_json
from caio.core.layout import InstallLayout
from caio.restart.verdict import Verdicts

log = logging.getLogger("caio.boots")

BOOT_FILE = "boot.json"
BootState = Literal["booting", "up", "stopped"]


@dataclass(frozen=True)
class BootRecord:
    version: str
    state: BootState
    failures: int  # boots of ``version`` in a row that neither stayed up nor stopped cleanly


class BootCounter:
    """``state/boot.json``: the boot of one version, and how it went."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> BootRecord | None:
        """The record; None when there is none, or it is unreadable (counting starts over)."""
        try:
            data = json.loads(self.path.read_text())
            record = BootRecord(str(data["version"]), data["state"], int(data["failures"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return record if record.state in ("booting", "up", "stopped") else None

    def begin(self, version: str) -> int:
        """Count the last boot of ``version`` if it failed, and record this one as booting.

        Returns the failures in a row so far (0 for a version booted for the first time).
        """
        last = self.read()
        failures = 0
        if last is not None and last.version == version and last.state != "up":
            failures = last.failures + (1 if last.state == "booting" else 0)
        self._write(BootRecord(version, "booting", failures))
        return failures

    def counting(self, version: str) -> bool:
        """Whether this process's boot of ``version`` is being counted (it was begun)."""
        last = self.read()
        return last is not None and last.version == version and last.state == "booting"

    def mark(self, version: str, state: BootState) -> None:
        """``up`` (once) or ``stopped``, for the boot of ``version`` now running (one that
        was begun): a clean stop of a boot that was up is recorded too, so the next start
        tells it from a crash."""
        last = self.read()
        if last is None or last.version != version or last.state == "stopped":
            return
        if state == "up" and last.state != "booting":
            return
        failures = 0 if "up" in (state, last.state) else last.failures
        self._write(BootRecord(version, state, failures))

    def forget(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _write(self, record: BootRecord) -> None:
        atomic_write_json(self.path, asdict(record), mode=0o600)


def counts_boots(release: Path) -> bool:
    """Whether ``release`` marks its own boots (it has this module)."""
    return (release / "caio" / "restart" / "boots.py").is_file()


def release_to_boot(layout: InstallLayout, attempts: int) -> str | None:
    """The release ``caio serve-current`` runs: ``current``, or ``previous`` when ``current``
    has failed ``attempts`` boots in a row (then rolled back, with its verdict recorded).

    ``previous`` is not chosen when it is itself a bad version: the service then keeps
    booting ``current`` (systemd's start limit and the operator decide).
    """
    current = layout.current_version
    if current is None:
        return None
    counter = BootCounter(layout.state_dir / BOOT_FILE)
    verdicts = Verdicts(layout)
    last = counter.read()
    if last is not None and last.state != "stopped":  # it ended without a clean stop
        during = "start" if last.state == "booting" else "serving"
        verdicts.audit.append("child_exit", version=last.version, during=during)
    if not counts_boots(layout.release_dir(current)):
        counter.forget()
        return current
    failures = counter.begin(current)
    previous = layout.previous_version
    if (
        failures < attempts
        or previous is None
        or previous == current
        or previous in layout.bad_versions()
    ):
        if failures:
            log.warning("booting %s again (%d boots in a row did not stay up)", current, failures)
        return current
    reason = f"it did not stay up in {failures} boots in a row under systemd"
    verdicts.roll_back(current, previous, ("did_not_start", reason))
    if counts_boots(layout.release_dir(previous)):
        counter.begin(previous)
    else:
        counter.forget()
    return previous


def mark_when_stable(
    counter: BootCounter,
    version: str,
    serving: Callable[[], bool],
    stable_seconds: float,
    stop: threading.Event,
) -> None:
    """Mark the boot of ``version`` up once it has served for ``stable_seconds`` (a thread's
    body; ``stop`` ends it early: the process is stopping)."""
    while not serving():
        if stop.wait(0.1):
            return
    if not stop.wait(stable_seconds):
        counter.mark(version, "up")
