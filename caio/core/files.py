"""File access shared by CAIO and tuf_repo: crash-safe writes, and ``file://`` reads for ngclient.

Writes go to a temp file in the same directory, are fsynced, then
``os.replace``-d. :class:`FileFetcher` serves a ``file://`` repository (an
air-gapped mirror, or ``tuf-repo verify``) to python-tuf's ngclient.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from caio.core._file_fetcher import FileFetcher

__all__ = ["FileFetcher", "atomic_write_bytes", "atomic_write_json", "fsync_dir"]


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a mix.

    ``durable``: also survive a power cut (fsync of the file and its directory).
    A cache that is rebuilt anyway (``state/check.json``) need not pay for it.

    Raises:
        OSError: the directory is not writable, the disk is full, ...
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            os.fchmod(tmp.fileno(), mode)
            tmp.write(data)
            tmp.flush()
            if durable:
                os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any, *, mode: int = 0o644, durable: bool = True) -> None:
    """Atomically write ``obj`` as pretty, key-sorted JSON with a trailing newline."""
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(path, text.encode(), mode=mode, durable=durable)


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def __getattr__(name: str) -> Any:
    """``FileFetcher`` is imported on first use: it pulls in python-tuf's ngclient,
    which commands that only write files (most of the CLI) should not pay for."""
    if name == "FileFetcher":
        from caio.core._file_fetcher import FileFetcher

        return FileFetcher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
