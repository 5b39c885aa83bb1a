"""The release index as a signer reviews it: a readable diff, and a cross-check.

A staged targets (or hash bin) that changes ``caio/index.json`` used to show
only "target changed caio/index.json": a staged index that re-listed a
withdrawn release at 100 % was signed on its digest. The review now shows,
release by release, what the index changes (added, removed, each signed
field before and after, a withdrawal lifted called out), and refuses an
index entry that disagrees with its target's own signed metadata (hosts
refuse to install such a release: ``index_mismatch``).
"""

from __future__ import annotations

import json
from typing import Any

from packaging.version import Version
from tuf.api.metadata import Metadata, Targets

from caio.core.release_format import INDEX_PATH, IndexEntry, entry_disagreement, target_custom
from tuf_repo.context import Changes, RepoContext
from tuf_repo.errors import MetadataError
from tuf_repo.releases import index_of
from tuf_repo.staged import StagedWork


def index_diff(old: list[IndexEntry], new: list[IndexEntry]) -> list[str]:
    """One line per release added or removed, and per signed field changed."""
    before = {e.version: _fields(e) for e in old}
    after = {e.version: _fields(e) for e in new}
    lines = []
    # parse_index keeps only PEP 440 versions: every one here parses.
    for version in sorted(set(before) | set(after), key=Version):
        if version not in before:
            lines.append(f"index: release {version} added: {_show(after[version])}")
        elif version not in after:
            lines.append(f"index: release {version} REMOVED")
        else:
            was, now = before[version], after[version]
            for field in sorted(set(was) | set(now)):
                if was.get(field) != now.get(field):
                    lines.append(
                        f"index: release {version} {field}: "
                        f"{_show(was.get(field))} -> {_show(now.get(field))}"
                    )
            if "withdrawn" in was and "withdrawn" not in now:
                lines.append(f"index: release {version} is NO LONGER WITHDRAWN")
    return lines


def review_index(
    ctx: RepoContext,
    role: str,
    published: Metadata[Any] | None,
    staged: Metadata[Any],
    group: Changes,
) -> tuple[list[str], list[str]]:
    """(diff lines, problems) for a staged ``role`` that lists the release index."""
    if not isinstance(staged.signed, Targets) or INDEX_PATH not in staged.signed.targets:
        return [], []
    try:
        new = index_of(ctx, staged)
        old = index_of(ctx, published) if published is not None else []
    except MetadataError as e:
        return [], [f"staged {role}: its release index cannot be read: {e}"]
    lines = index_diff(old, new)
    unchanged = {e.version: _fields(e) for e in old}
    problems = []
    for entry in new:
        if unchanged.get(entry.version) == _fields(entry):
            continue
        custom = _target_custom_of(ctx, entry.target, group)
        if custom is None:
            problems.append(f"index lists {entry.version} at {entry.target}, which no role signs")
            continue
        if disagree := entry_disagreement(entry, custom):
            problems.append(
                f"index entry {entry.version} and the signed metadata of {entry.target} "
                f"disagree on {', '.join(disagree)}"
            )
    return lines, problems


def _target_custom_of(ctx: RepoContext, path: str, group: Changes) -> dict[str, Any] | None:
    work = StagedWork(ctx.store)
    top = group.get(Targets.type) or work.latest(Targets.type)
    delegations = top.signed.delegations
    role = (
        delegations.succinct_roles.get_role_for_target(path)
        if delegations is not None and delegations.succinct_roles is not None
        else Targets.type
    )
    md = group.get(role) or work.latest(role)
    info = md.signed.targets.get(path)
    return None if info is None else dict(info.custom or {})


def _fields(entry: IndexEntry) -> dict[str, Any]:
    fields: dict[str, Any] = target_custom(entry)["caio"]
    return fields


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(", ", ": "))
