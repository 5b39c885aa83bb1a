"""Which release to install: pure policy, no I/O, testable without a network."""

from __future__ import annotations

from collections.abc import Iterable

from packaging.version import Version

from caio.core.errors import ErrorCode, UpdateError
from caio.update.repository import Release


def releases_for_channel(releases: Iterable[Release], channel: str) -> list[Release]:
    """Releases published to ``channel``, oldest first."""
    return sorted((r for r in releases if channel in r.channels), key=lambda r: r.parsed_version)


def choose_release(
    releases: list[Release],
    *,
    running: str,
    channel: str,
    target_version: str | None = None,
    allow_downgrade: bool = False,
    bad_versions: frozenset[str] = frozenset(),
) -> Release | None:
    """The release to install, or None when the running version is the newest.

    * no ``target_version``: the newest release of ``channel`` above ``running``,
      skipping versions recorded as bad;
    * ``target_version``: exactly that release (any channel, even if bad);
      lower than ``running`` only with ``allow_downgrade``.

    Raises:
        UpdateError: target_not_found (not in the signed index),
            downgrade_refused (lower than running without allow_downgrade).
    """
    current = Version(running)
    if target_version is not None:
        wanted = Version(target_version)
        match = next((r for r in releases if r.parsed_version == wanted), None)
        if match is None:
            raise UpdateError(
                ErrorCode.TARGET_NOT_FOUND, f"version {target_version} is not in the signed index"
            )
        if match.parsed_version < current and not allow_downgrade:
            raise UpdateError(
                ErrorCode.DOWNGRADE_REFUSED,
                f"{target_version} is older than the running {running}; "
                "set allow_downgrade to install it",
            )
        return None if match.parsed_version == current else match
    candidates = [
        r
        for r in releases_for_channel(releases, channel)
        if r.parsed_version > current and r.version not in bad_versions
    ]
    return candidates[-1] if candidates else None
