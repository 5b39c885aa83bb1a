"""Installing the trust anchor: checked TUF root metadata, written atomically."""

from __future__ import annotations

from pathlib import Path

from tuf.api.metadata import Metadata, Root
from tuf.api.serialization import DeserializationError

from caio.core.errors import ConfigError
from caio.core.files import atomic_write_bytes


def install_trusted_root(source: Path, destination: Path) -> str:
    """Check that ``source`` is root metadata signed to its own threshold, then install it.

    Returns a one-line summary (version, threshold, expiry).

    Raises:
        ConfigError: unreadable, not root metadata, or not self-signed to threshold.
    """
    try:
        data = source.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {source}: {e.strerror}") from e
    try:
        md = Metadata[Root].from_bytes(data)
    except DeserializationError as e:
        raise ConfigError(f"{source} is not TUF metadata: {e}") from e
    if not isinstance(md.signed, Root):
        raise ConfigError(f"{source} holds {md.signed.type} metadata, not root")
    result = md.signed.get_verification_result(Root.type, md.signed_bytes, md.signatures)
    if not result.verified:
        raise ConfigError(
            f"{source} is not signed by {result.threshold} of its own root keys "
            f"({len(result.signed)} valid signatures)"
        )
    atomic_write_bytes(destination, data)
    return (
        f"root v{md.signed.version}, {len(md.signed.roles[Root.type].keyids)} keys, "
        f"threshold {md.signed.roles[Root.type].threshold}, expires {md.signed.expires:%Y-%m-%d}"
    )
