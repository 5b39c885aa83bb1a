"""The trust anchor: checked TUF root metadata, installed atomically, only ever advanced.

A host that trusted an old root could be captured by anyone holding that
root's retired keys (a forged next root). So the anchor handed to a new host
is the newest root (``tuf-repo export-root``), and CAIO advances its stored
anchor to every newer root it has verified: wiping the TUF cache never puts
a host back on an old root.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tuf.api.metadata import Metadata, Root
from tuf.api.serialization import DeserializationError

from caio.core.errors import NotFoundError, TrustError
from caio.core.files import atomic_write_bytes

log = logging.getLogger(__name__)


def root_version(data: bytes) -> int | None:
    """The version of serialised root metadata, None when it is not readable as such."""
    try:
        version = json.loads(data)["signed"]["version"]
    except (ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, int) else None


class TrustAnchor:
    """The stored trust anchor (``trusted_root.json``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> bytes:
        """Raises: OSError: missing or unreadable."""
        return self.path.read_bytes()

    def advance(self, verified_root: bytes) -> bool:
        """Store ``verified_root`` (already verified by ngclient) if it is newer; never older.

        Returns whether the anchor changed. A read-only anchor is left as it is,
        with a warning: the host still verifies from it, only less far ahead.
        """
        new = root_version(verified_root)
        try:
            current = root_version(self.path.read_bytes())
        except OSError:
            current = None
        if new is None or (current is not None and new <= current):
            return False
        try:
            atomic_write_bytes(self.path, verified_root)
        except OSError as e:
            log.warning("cannot advance the trust anchor %s to root v%d: %s", self.path, new, e)
            return False
        log.info("trust anchor %s advanced to root v%d", self.path, new)
        return True


def install_trusted_root(source: Path, destination: Path, *, force: bool = False) -> str:
    """Check that ``source`` is root metadata signed to its own threshold, then install it.

    An anchor older than the one installed is refused unless ``force``.
    Returns a one-line summary (version, threshold, expiry).

    Raises:
        NotFoundError: ``file_not_found``: ``source`` does not exist.
        TrustError: unreadable, not root metadata, not self-signed to
            threshold, or older than the installed anchor.
    """
    try:
        data = source.read_bytes()
    except FileNotFoundError as e:
        raise NotFoundError(f"{source} does not exist", code="file_not_found") from e
    except OSError as e:
        raise TrustError(f"cannot read {source}: {e.strerror}") from e
    try:
        md = Metadata[Root].from_bytes(data)
    except DeserializationError as e:
        raise TrustError(f"{source} is not TUF metadata: {e}") from e
    if not isinstance(md.signed, Root):
        raise TrustError(f"{source} holds {md.signed.type} metadata, not root")
    result = md.signed.get_verification_result(Root.type, md.signed_bytes, md.signatures)
    if not result.verified:
        raise TrustError(
            f"{source} is not signed by {result.threshold} of its own root keys "
            f"({len(result.signed)} valid signatures)"
        )
    try:
        installed = root_version(destination.read_bytes())
    except OSError:
        installed = None
    if installed is not None and md.signed.version < installed and not force:
        raise TrustError(
            f"{source} is root v{md.signed.version}, older than the installed anchor "
            f"v{installed}; an old root can be captured with retired keys (use --force "
            "only if you know why)"
        )
    atomic_write_bytes(destination, data)
    return (
        f"root v{md.signed.version}, {len(md.signed.roles[Root.type].keyids)} keys, "
        f"threshold {md.signed.roles[Root.type].threshold}, expires {md.signed.expires:%Y-%m-%d}"
    )
