"""Who signs a release, when several repositories must agree on it (two-party approval)."""

from __future__ import annotations

from dataclasses import dataclass

from caio.core.errors import UpdateError


@dataclass(frozen=True)
class Agreement:
    """The repositories that sign one release's bytes, those that do not, and the decision."""

    version: str
    target: str
    signed_by: tuple[str, ...]  # the repositories that agree on its bytes
    missing: tuple[str, ...]  # mapped repositories that do not list it
    dissenting: tuple[str, ...]  # list other bytes, another version, or cannot verify theirs
    threshold: int
    problem: UpdateError | None  # why it is not offered; None: it is

    @property
    def agreed(self) -> bool:
        return self.problem is None
