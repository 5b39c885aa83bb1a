"""This host's id: its place in every staged rollout, kept, and renewed on a cloned machine.

The id lives in ``state/host_id``, random at first use, with the machine it
was made on (a digest of ``/etc/machine-id``, never the id itself). Copying
the state directory to another machine (a VM image, a restored backup on new
hardware) would give every copy the same id, so a whole group of clones
would land in the same rollout wave; a host whose machine differs from the
recorded one therefore makes a new id and says so in its audit log. Image
builders run ``caio host-id reset`` (and empty ``/etc/machine-id``, as
systemd expects of images) so that each instance starts with its own.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from caio.core.rollout import HOST_ID_RE

__all__ = ["MACHINE_ID_FILES", "HostIdentity", "host_identity", "machine_binding", "reset_host_id"]

#: Where the machine's identity is read (systemd's, then D-Bus's copy).
MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
_BINDING_PREFIX = "machine "


@dataclass(frozen=True)
class HostIdentity:
    """The id to use, and the id of the machine this state was copied from, if it was."""

    id: str
    replaced: str | None = None  # the id a copy carried, when this one replaced it


def machine_binding(machine_id_files: Sequence[Path] = MACHINE_ID_FILES) -> str | None:
    """A digest of this machine's id (None when no machine id can be read)."""
    for path in machine_id_files:
        try:
            value = path.read_text().strip()
        except OSError:
            continue
        if value:
            return hashlib.sha256(b"caio host id\0" + value.encode()).hexdigest()[:32]
    return None


def host_identity(
    state_dir: Path, machine_id_files: Sequence[Path] = MACHINE_ID_FILES
) -> HostIdentity:
    """This host's id, made at first use, renewed when the state was copied from another machine.

    A file from an older CAIO (the id alone) is kept and bound to this machine.
    Two processes starting at once (a supervisor's old and new child) agree on
    one id: the first is created with O_EXCL semantics, and a renewal is read
    back after it is written.
    """
    path = state_dir / "host_id"
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        lines = []
    existing = lines[0].strip() if lines else ""
    recorded = next(
        (
            ln.removeprefix(_BINDING_PREFIX).strip()
            for ln in lines[1:]
            if ln.startswith(_BINDING_PREFIX)
        ),
        None,
    )
    binding = machine_binding(machine_id_files)
    if HOST_ID_RE.fullmatch(existing):
        if recorded is None or binding is None or recorded == binding:
            if recorded is None and binding is not None:
                _write(path, existing, binding, exclusive=False)  # an older file: bind it
            return HostIdentity(existing)
        _write(path, secrets.token_hex(16), binding, exclusive=False)  # a copy: renew
        return HostIdentity(_read_id(path), replaced=existing)
    fresh = secrets.token_hex(16)
    if existing:  # not an id (damaged): replace it
        _write(path, fresh, binding, exclusive=False)
        return HostIdentity(_read_id(path))
    if _write(path, fresh, binding, exclusive=True):
        return HostIdentity(fresh)
    return HostIdentity(_read_id(path))  # another process made one meanwhile


def reset_host_id(state_dir: Path) -> str | None:
    """Forget this host's id (the next start makes a new one); the id forgotten, if any."""
    path = state_dir / "host_id"
    try:
        old = _read_id(path)
    except FileNotFoundError:
        return None
    path.unlink(missing_ok=True)
    return old or None


def _read_id(path: Path) -> str:
    lines = path.read_text().splitlines()
    return lines[0].strip() if lines else ""


def _write(path: Path, host_id: str, binding: str | None, *, exclusive: bool) -> bool:
    """Write the id file; with ``exclusive``, only if none exists. False: one existed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".host_id.{os.getpid()}"
    text = host_id + "\n" + (f"{_BINDING_PREFIX}{binding}\n" if binding else "")
    staging.write_text(text)
    os.chmod(staging, 0o600)
    try:
        if exclusive:
            os.link(staging, path)  # fails if another process made one meanwhile
        else:
            os.replace(staging, path)
    except FileExistsError:
        return False
    finally:
        staging.unlink(missing_ok=True)
    return True
