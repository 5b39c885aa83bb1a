"""The release contract, written once: the publisher and the client cannot drift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caio.core.release_format import (
    INDEX_PATH,
    IndexEntry,
    is_safe_target_path,
    parse_index,
    render_index,
    target_path,
)
from caio.update.repository import read_index
from tests.tuf_fixtures import PublishedRepo
from tuf_repo.publisher import Publisher
from tuf_repo.releases import read_index as publisher_index

ENTRIES = [
    IndexEntry("1.10.0", target_path("1.10.0"), ("stable",), "2027-01-02T00:00:00Z", "b"),
    IndexEntry("1.2.0", target_path("1.2.0"), ("beta", "stable"), "2027-01-01T00:00:00Z", "a"),
]


def test_an_index_renders_and_parses_back_sorted_by_version() -> None:
    data = render_index(ENTRIES)
    assert render_index(list(reversed(ENTRIES))) == data  # deterministic
    assert parse_index(data) == sorted(ENTRIES, key=lambda e: e.parsed_version)
    assert [r["version"] for r in json.loads(data)["releases"]] == ["1.2.0", "1.10.0"]


def test_the_publishers_index_is_what_the_client_reads(published_repo: PublishedRepo) -> None:
    published_repo.release("1.0.0")
    published_repo.release("1.1.0", channels=("beta",))
    store = published_repo.store
    targets = store.load("targets").signed.targets
    data = store.target_file(INDEX_PATH, targets[INDEX_PATH].hashes["sha256"]).read_bytes()
    releases = read_index(data).entries
    assert [(r.version, r.target, r.channels) for r in releases] == [
        ("1.0.0", target_path("1.0.0"), ("stable",)),
        ("1.1.0", target_path("1.1.0"), ("beta",)),
    ]


def test_an_index_rendered_by_the_contract_is_what_the_publisher_reads(
    published_repo: PublishedRepo,
) -> None:
    publisher: Publisher = published_repo.publisher()
    published_repo.release("1.0.0")
    top = published_repo.store.load("targets")
    listed = publisher_index(publisher.ctx, top)
    assert listed == parse_index(render_index(listed))


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("caio/../../outside/caio-2.0.0.tar.gz", "unsafe target path"),
        ("caio/2.0.0/other.tar.gz", "unsafe target path"),
    ],
)
def test_entries_off_the_contract_path_are_skipped_or_refused(target: str, reason: str) -> None:
    entry = {"version": "2.0.0", "target": target, "channels": ["stable"]}
    data = json.dumps({"format": 1, "releases": [entry]}).encode()
    assert parse_index(data) == []
    with pytest.raises(ValueError, match=reason):
        parse_index(data, strict=True)


@pytest.mark.parametrize(
    "data",
    [b"[]", b'{"format": 2, "releases": []}', b'{"format": 1}', b'{"format": 1, "releases": 3}'],
)
def test_what_is_not_an_index_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_index(data)
    assert parse_index(b'{"format": 1, "releases": [1]}') == []  # an index; its entry skipped


@pytest.mark.parametrize(
    ("path", "safe"),
    [
        ("caio/1.0.0/caio-1.0.0.tar.gz", True),
        ("caio/index.json", True),
        ("caio/../x", False),
        ("/etc/passwd", False),
        ("caio\\\\x", False),
        ("caio//x", False),
        ("./caio", False),
        ("", False),
    ],
)
def test_safe_target_paths(path: str, safe: bool) -> None:
    assert is_safe_target_path(path) is safe


def test_read_index_maps_a_malformed_index_to_repository_invalid(tmp_path: Path) -> None:
    from caio.core.errors import UpdateError

    for junk in (b"not json", b"[" * 100_000 + b"]" * 100_000, b'{"format": 1}', b"[]"):
        with pytest.raises(UpdateError) as e:
            read_index(junk)
        assert e.value.code == "repository_invalid", junk[:20]
    with pytest.raises(UpdateError, match="nested too deeply"):
        read_index(b"[" * 100_000 + b"]" * 100_000)


def test_one_unreadable_entry_is_skipped_and_named_and_the_others_are_offered() -> None:
    """Issue 21, item 12: one bad entry made the whole index repository_invalid."""
    good = json.loads(render_index(ENTRIES))
    bad_entries = [
        {**good["releases"][0], "channels": 5},
        {**good["releases"][0], "channels": None},
        {k: v for k, v in good["releases"][0].items() if k != "version"},
        "a string instead of an object",
        {**good["releases"][0], "version": 7},
    ]
    good["releases"] = [*bad_entries, *good["releases"]]
    report = read_index(json.dumps(good).encode())
    assert [e.version for e in report.entries] == ["1.2.0", "1.10.0"]
    assert len(report.skipped) == len(bad_entries)
    assert report.skipped[0].startswith("entry 1: 1.2.0: its channels must be a list")
    assert report.skipped[3] == "entry 4: not an object but str"
    with pytest.raises(ValueError, match="entry 1"):
        parse_index(json.dumps(good).encode(), strict=True)  # the publisher refuses it


def test_the_signed_custom_metadata_the_publisher_writes_is_what_the_client_reads(
    published_repo: PublishedRepo,
) -> None:
    from caio.core.release_format import signed_release_version

    published_repo.release("1.3.0")
    info = published_repo.store.load("targets").signed.targets[target_path("1.3.0")]
    assert signed_release_version(info.custom) == "1.3.0"
    assert info.custom["caio"]["channels"] == ["stable"]
    assert signed_release_version({"caio": {"version": 3}}) is None
    assert signed_release_version(None) is None
