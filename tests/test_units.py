"""Direct unit tests of the pure parts: release choice, retry policy, the downloader, pruning.

The downloader runs against an in-memory :class:`Transport` (CAIO's own seam,
like python-tuf's fetcher interface): each test changes what the "server"
sends and asserts one outcome, in milliseconds. python-tuf itself is not mocked.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tuf.api import exceptions as tuf
from tuf.api.metadata import TargetFile

from caio.core.errors import UpdateError
from caio.core.layout import InstallLayout
from caio.core.release_format import IndexEntry, target_path
from caio.update.download import ArtifactDownloader
from caio.update.policy import choose_release
from caio.update.repository import RetryPolicy
from caio.update.transport import RangeResponse, Transport

# --- choose_release ---------------------------------------------------------------------


def release(version: str, *channels: str) -> IndexEntry:
    return IndexEntry(version, target_path(version), channels or ("stable",))


RELEASES = [release("1.0.0"), release("1.1.0"), release("1.2.0", "beta"), release("1.1.5")]
NOW = datetime(2026, 11, 27, tzinfo=UTC)


def pick(releases: list[IndexEntry], **options: Any) -> IndexEntry | None:
    """What ``choose_release`` installs for a host outside any rollout plan."""
    return choose_release(releases, host_id="host-a", now=NOW, **options).release


def test_the_newest_release_of_the_channel_above_the_running_one_is_chosen() -> None:
    chosen = pick(RELEASES, running="1.0.0", channel="stable")
    assert chosen is not None and chosen.version == "1.1.5"
    beta = pick(RELEASES, running="1.0.0", channel="beta")
    assert beta is not None and beta.version == "1.2.0"
    assert pick(RELEASES, running="1.1.5", channel="stable") is None


def test_bad_versions_are_skipped_unless_named() -> None:
    bad = frozenset({"1.1.5"})
    chosen = pick(RELEASES, running="1.0.0", channel="stable", bad_versions=bad)
    assert chosen is not None and chosen.version == "1.1.0"
    named = pick(
        RELEASES, running="1.0.0", channel="stable", target_version="1.1.5", bad_versions=bad
    )
    assert named is not None and named.version == "1.1.5"


@pytest.mark.parametrize(
    ("target", "downgrade", "outcome"),
    [
        ("1.2.0", False, "1.2.0"),  # any channel when named
        ("1.0.0", False, "downgrade_refused"),
        ("1.0.0", True, "1.0.0"),
        ("9.9.9", False, "target_not_found"),
        ("1.1.0", False, None),  # that is what runs
    ],
)
def test_a_named_version(target: str, downgrade: bool, outcome: str | None) -> None:
    try:
        chosen = pick(
            RELEASES,
            running="1.1.0",
            channel="stable",
            target_version=target,
            allow_downgrade=downgrade,
        )
    except UpdateError as e:
        assert e.code == outcome
        return
    assert (chosen.version if chosen else None) == outcome


# --- RetryPolicy ------------------------------------------------------------------------------


def test_the_retry_delay_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(attempts=6, base_delay=0.5, max_delay=3.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_network_errors_are_retried_and_verification_errors_are_not() -> None:
    slept: list[float] = []
    policy = RetryPolicy(attempts=3, base_delay=0.1, sleep=slept.append)
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise tuf.DownloadError("connection reset")
        return "ok"

    assert policy.run("fetching", flaky) == "ok"
    assert slept == [0.1, 0.2]

    def lying() -> str:
        calls.append(1)
        raise tuf.BadVersionNumberError("old timestamp")

    calls.clear()
    with pytest.raises(UpdateError) as e:
        policy.run("refreshing", lying)
    assert (e.value.code, len(calls)) == ("metadata_rollback", 1)


# --- the downloader, against an in-memory transport -------------------------------------------


class MemoryTransport(Transport):
    """Serves ``body`` for every URL; ``chunks`` decides how the bytes arrive."""

    def __init__(self, body: bytes, *, honour_range: bool = True, cut_at: int | None = None):
        self.body = body
        self.honour_range = honour_range
        self.cut_at = cut_at  # the first response ends after this many bytes
        self.ranges: list[int] = []

    def _fetch(self, url: str) -> Iterator[bytes]:
        yield self.body

    @contextlib.contextmanager
    def open_range(self, url: str, offset: int) -> Iterator[RangeResponse]:
        self.ranges.append(offset)
        start = offset if self.honour_range else 0
        data = self.body[start:]
        if self.cut_at is not None:
            data, self.cut_at = data[: self.cut_at], None
        yield RangeResponse(start, iter([data[i : i + 1000] for i in range(0, len(data), 1000)]))


ARTIFACT = bytes(range(256)) * 40  # 10,240 bytes


def target(data: bytes = ARTIFACT, length: int | None = None) -> TargetFile:
    digest = hashlib.sha256(data).hexdigest()
    return TargetFile(len(data) if length is None else length, {"sha256": digest}, "caio/x.tar.gz")


def downloader(transport: Transport, tmp_path: Path) -> ArtifactDownloader:
    return ArtifactDownloader(transport, tmp_path, RetryPolicy(attempts=3, sleep=lambda _: None))


def test_an_interrupted_transfer_resumes_from_the_bytes_on_disk(tmp_path: Path) -> None:
    transport = MemoryTransport(ARTIFACT, cut_at=4000)
    path = downloader(transport, tmp_path).fetch("u", target(), lambda _d, _t: None)
    assert path.read_bytes() == ARTIFACT
    assert transport.ranges == [0, 4000]


def test_a_server_that_ignores_the_range_starts_over(tmp_path: Path) -> None:
    transport = MemoryTransport(ARTIFACT, honour_range=False, cut_at=4000)
    path = downloader(transport, tmp_path).fetch("u", target(), lambda _d, _t: None)
    assert path.read_bytes() == ARTIFACT


def test_more_than_the_signed_length_is_cut_and_refused(tmp_path: Path) -> None:
    transport = MemoryTransport(ARTIFACT + b"endless")
    with pytest.raises(UpdateError) as e:
        downloader(transport, tmp_path).fetch("u", target(), lambda _d, _t: None)
    assert e.value.code == "length_mismatch"
    assert list(tmp_path.iterdir()) == []


def test_a_hash_mismatch_is_refused_and_the_partial_removed(tmp_path: Path) -> None:
    tampered = bytearray(ARTIFACT)
    tampered[5000] ^= 1
    with pytest.raises(UpdateError) as e:
        downloader(MemoryTransport(bytes(tampered)), tmp_path).fetch(
            "u", target(), lambda _d, _t: None
        )
    assert e.value.code == "hash_mismatch"
    assert list(tmp_path.iterdir()) == []


def test_a_stream_that_keeps_ending_short_is_a_length_mismatch(tmp_path: Path) -> None:
    with pytest.raises(UpdateError) as e:
        downloader(MemoryTransport(ARTIFACT[:-10]), tmp_path).fetch(
            "u", target(), lambda _d, _t: None
        )
    assert e.value.code == "length_mismatch"


def test_downloads_keep_only_what_is_asked(tmp_path: Path) -> None:
    keep = tmp_path / "a.part"
    for name in ("a.part", "b.tar.gz", "c.part"):
        (tmp_path / name).write_bytes(b"x")
    removed = downloader(MemoryTransport(b""), tmp_path).prune([keep])
    assert sorted(removed) == ["b.tar.gz", "c.part"]
    assert [p.name for p in tmp_path.iterdir()] == ["a.part"]


# --- pruning releases -----------------------------------------------------------------------------


def test_pruning_keeps_current_previous_and_the_newest_others(tmp_path: Path) -> None:
    layout = InstallLayout(tmp_path)
    layout.ensure()
    for version in ("1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"):
        layout.release_dir(version).mkdir()
    layout.point(layout.previous_link, "1.0.0")
    layout.point(layout.current_link, "1.2.0")
    assert layout.prune(keep=3) == ["1.1.0", "1.3.0"]
    assert layout.installed_versions() == ["1.0.0", "1.2.0", "1.4.0"]
    assert layout.prune(keep=2) == ["1.4.0"]


def test_a_state_file_renamed_away_while_the_layout_is_checked_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supervisor writes ``supervisor.json`` through a temp file it renames; a child
    starting at that moment lists the temp file and must not crash on it (CI saw it)."""
    import os

    layout = InstallLayout(tmp_path)
    layout.ensure()
    temp = layout.state_dir / ".supervisor.json.x1.tmp"
    temp.write_text("{}")
    temp.chmod(0o644)
    kept = layout.state_dir / "update.json"
    kept.write_text("{}")
    kept.chmod(0o644)
    listing = os.scandir

    def listed_then_renamed(path: Any) -> Iterator[os.DirEntry[str]]:
        entries = list(listing(path))
        temp.replace(layout.state_dir / "supervisor.json")  # the other process's rename
        return iter(entries)

    monkeypatch.setattr(os, "scandir", listed_then_renamed)
    layout.ensure()
    assert kept.stat().st_mode & 0o777 == 0o600
