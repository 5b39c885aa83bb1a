"""`tuf-repo prune` and `remove`: a repository run for years keeps what a client can be sent.

Repositories published by our own tuf_repo on a clock the test moves, served on
loopback; clients are python-tuf's ngclient (fresh, returning, and one behind a
cache that still serves a timestamp from before the latest publications).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api.exceptions import DownloadError, RepositoryError

from caio.core.release_format import INDEX_PATH, parse_index
from tests.tuf_fixtures import PublishedRepo, move_key, publish_repo
from tuf_repo import Keyring, Publisher, SignaturesNeeded, TufRepoError, verify_repository
from tuf_repo.errors import MetadataError, RepositoryBusy
from tuf_repo.lock import writer_lock
from tuf_repo.server import RepoServer

KEEP = timedelta(days=7)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[PublishedRepo]:
    published = publish_repo(tmp_path, bins=4)
    yield published
    published.server.stop()


def publisher(repo: PublishedRepo, clock: Clock, keys: Path | None = None) -> Publisher:
    return Publisher(repo.store, Keyring.from_dir(keys or repo.keys), clock=clock)


def files(repo: PublishedRepo) -> set[str]:
    return {p.relative_to(repo.dir).as_posix() for p in repo.dir.rglob("*") if p.is_file()}


def fetch_everything(repo_url: str, repo: PublishedRepo, name: str) -> list[str]:
    """A client named ``name`` refreshes from root v1, reads the index, downloads every release."""
    client = repo.client(name)
    if repo_url != repo.url:  # the same trust, through another server
        client = type(client)(
            str(repo.work / name / "metadata"),
            f"{repo_url}/metadata/",
            str(repo.work / name / "targets"),
            f"{repo_url}/targets/",
            bootstrap=repo.trusted_root.read_bytes(),
        )
    client.refresh()
    index_info = client.get_targetinfo(INDEX_PATH)
    assert index_info is not None
    entries = parse_index(Path(client.download_target(index_info)).read_bytes())
    for entry in entries:
        info = client.get_targetinfo(entry.target)
        assert info is not None
        client.download_target(info)
    return [e.version for e in entries]


def behind_a_cache(repo: PublishedRepo, timestamp: bytes, where: Path) -> RepoServer:
    """The repository as a cache serves it: today's files, but an older ``timestamp.json``."""
    shutil.rmtree(where, ignore_errors=True)
    shutil.copytree(repo.dir, where)
    (where / "metadata" / "timestamp.json").write_bytes(timestamp)
    return RepoServer(where, quiet=True).start()


def test_prune_removes_what_no_client_can_be_sent_after_keep_and_nothing_before(
    repo: PublishedRepo, tmp_path: Path
) -> None:
    clock = Clock()
    publisher(repo, clock).add_release(repo.build("1.0.0"), ["stable"])
    assert fetch_everything(repo.url, repo, "returning") == ["1.0.0"]
    stale = (repo.dir / "metadata" / "timestamp.json").read_bytes()
    for version in ("1.1.0", "1.2.0"):
        clock.advance(hours=1)
        publisher(repo, clock).add_release(repo.build(version), ["stable"])
    before = files(repo)

    clock.advance(hours=1)
    never = publisher(repo, clock).status().storage
    assert never is not None and never.last_prune is None and never.superseded > 0
    assert "prune has never run" in never.describe()
    first = publisher(repo, clock).prune(KEEP)
    seen = publisher(repo, clock).status().storage
    assert seen is not None and seen.last_prune == clock.now.replace(microsecond=0)
    assert seen.superseded == never.superseded  # sighted, not yet removed
    assert (first.removed, first.bytes) == ([], 0)
    assert first.waiting > 0  # superseded, first seen now: kept for a week
    assert first.next_due == clock.now.replace(microsecond=0) + KEEP
    assert f"(the first on {first.next_due:%Y-%m-%d %H:%M} UTC)" in first.describe()
    assert files(repo) == before | {"prune-ledger.json"}
    cache = behind_a_cache(repo, stale, tmp_path / "cache")
    try:  # a timestamp from before two publications still leads to files that are there
        assert fetch_everything(cache.url, repo, "behind-a-cache") == ["1.0.0"]
    finally:
        cache.stop()

    clock.advance(days=8)
    publisher(repo, clock).refresh()  # the hourly heartbeat, on the same clock
    refreshed = files(repo)
    dry = publisher(repo, clock).prune(KEEP, dry_run=True)
    assert files(repo) == refreshed  # a dry run lists, and removes nothing
    done = publisher(repo, clock).prune(KEEP)
    assert done.removed == dry.removed and done.bytes == dry.bytes > 0
    removed = set(done.removed)
    assert removed and not removed & files(repo)
    assert not [p for p in removed if p.endswith(".root.json")]  # every root stays
    assert any(p.endswith(".snapshot.json") for p in removed)
    assert any(p.endswith(".index.json") for p in removed)  # the index's old copies
    assert not [p for p in removed if p.endswith(".tar.gz") or p.endswith(".delta")]
    assert done.waiting > 0  # what the refresh just superseded stays another week
    assert publisher(repo, clock).prune(KEEP).removed == []  # nothing left to remove
    after = publisher(repo, clock).status().storage
    assert after is not None and after.superseded == done.waiting  # what waits its week
    served = [f for f in files(repo) if f.startswith(("metadata/", "targets/"))]
    assert after.metadata_files + after.target_files == len(served)

    # Every client that can be sent anywhere still gets everything; the repository verifies.
    assert fetch_everything(repo.url, repo, "returning") == ["1.0.0", "1.1.0", "1.2.0"]
    assert fetch_everything(repo.url, repo, "fresh") == ["1.0.0", "1.1.0", "1.2.0"]
    assert verify_repository(repo.dir, repo.trusted_root).releases == ["1.0.0", "1.1.0", "1.2.0"]
    cache = behind_a_cache(repo, stale, tmp_path / "cache")
    try:  # a timestamp that old expired long ago for real: what it led to is gone
        with pytest.raises((DownloadError, RepositoryError)):
            fetch_everything(cache.url, repo, "behind-a-cache-a-week-on")
    finally:
        cache.stop()


def test_what_awaits_signatures_is_kept_and_publishes_whole(
    repo: PublishedRepo, tmp_path: Path
) -> None:
    """A release staged for the targets holders has its artifact and index copy in place,
    listed by nothing published: prune keeps them, and the signed release works."""
    clock = Clock()
    publisher(repo, clock).add_release(repo.build("1.0.0"), ["stable"])
    holders = [move_key(repo.keys, role, tmp_path / "holder")[0] for role in ("targets", "bins")]
    with pytest.raises(SignaturesNeeded):
        publisher(repo, clock).add_release(repo.build("1.1.0"), ["stable"])
    waiting = files(repo)
    clock.advance(days=8)
    publisher(repo, clock).refresh()
    for _ in range(2):  # the first sees them superseded, the second a week later removes
        publisher(repo, clock).prune(KEEP)
        clock.advance(days=8)
        publisher(repo, clock).refresh()
    kept = files(repo)
    staged_targets = {p for p in waiting if p.startswith("targets/") and "1.1.0" in p}
    assert staged_targets and staged_targets <= kept
    staged = [s.role for s in publisher(repo, clock).status().staged]
    for n, role in enumerate(staged, 1):  # the holders sign, late; the last one publishes
        try:
            publisher(repo, clock).sign(role, holders[0] if role == "targets" else holders[1])
        except SignaturesNeeded:
            assert n < len(staged)
    assert fetch_everything(repo.url, repo, "fresh") == ["1.0.0", "1.1.0"]


def test_prune_refuses_to_guess_on_a_short_keep_or_a_clock_it_cannot_trust(
    repo: PublishedRepo,
) -> None:
    clock = Clock()
    publisher(repo, clock).add_release(repo.build("1.0.0"), ["stable"])
    with pytest.raises(TufRepoError, match="shorter than the timestamp's lifetime"):
        publisher(repo, clock).prune(timedelta(hours=12))
    clock.advance(days=3)  # no refresh for three days, or a clock three days ahead
    before = files(repo)
    with pytest.raises(TufRepoError, match=r"published timestamp expired .* Nothing was removed"):
        publisher(repo, clock).prune(KEEP)
    assert files(repo) == before

    timestamp = repo.dir / "metadata" / "timestamp.json"
    published = timestamp.read_bytes()
    timestamp.write_text('{"signed": {}}')  # damaged on disk
    with pytest.raises(MetadataError, match=r"timestamp\.json has no readable expiry"):
        publisher(repo, clock).prune(KEEP)
    timestamp.write_bytes(published)
    assert files(repo) == before

    publisher(repo, clock).refresh()
    assert publisher(repo, clock).prune(KEEP).waiting > 0  # first sighting: now
    (repo.dir / "prune-ledger.json").write_text("{not json")
    with pytest.raises(MetadataError, match=r"prune-ledger\.json is corrupt"):
        publisher(repo, clock).prune(KEEP)  # never guessed: the sightings are the safety
    (repo.dir / "prune-ledger.json").unlink()  # an operator's way out: sightings start again
    assert publisher(repo, clock).prune(KEEP).removed == []
    sighted = ledger(repo)
    start = clock.now
    clock.now = start - timedelta(days=2)  # the clock goes back two days
    assert publisher(repo, clock).prune(KEEP).removed == []
    assert ledger(repo) == sighted  # a sighting is never moved earlier
    clock.now = start + KEEP - timedelta(hours=1)
    publisher(repo, clock).refresh()
    assert publisher(repo, clock).prune(KEEP).removed == []
    clock.now = start + KEEP + timedelta(hours=1)
    publisher(repo, clock).refresh()
    removed = publisher(repo, clock).prune(KEEP).removed
    assert {f"metadata/{key.split('/')[1]}.{key.split('/')[0]}.json" for key in sighted} <= set(
        removed
    )


def ledger(repo: PublishedRepo) -> dict[str, str]:
    entries: dict[str, str] = json.loads((repo.dir / "prune-ledger.json").read_text())["superseded"]
    return entries


class Killed(BaseException):
    """Stands for SIGKILL: nothing of prune's runs after it."""


def test_prune_killed_between_two_removals_leaves_clients_served_and_the_next_run_finishes(
    repo: PublishedRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        publisher(repo, clock).add_release(repo.build(version), ["stable"])
        clock.advance(hours=1)
    publisher(repo, clock).prune(KEEP)
    clock.advance(days=8)
    publisher(repo, clock).refresh()
    due = publisher(repo, clock).prune(KEEP, dry_run=True).removed
    assert len(due) > 4
    unlink = Path.unlink
    calls = 0

    def dies_on_the_fourth(path: Path, missing_ok: bool = False) -> None:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise Killed
        unlink(path, missing_ok=missing_ok)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "unlink", dies_on_the_fourth)
        with pytest.raises(Killed):
            publisher(repo, clock).prune(KEEP)
    assert fetch_everything(repo.url, repo, "fresh") == ["1.0.0", "1.1.0", "1.2.0"]
    rest = publisher(repo, clock).prune(KEEP).removed
    assert rest == due[3:]
    assert fetch_everything(repo.url, repo, "fresh-after") == ["1.0.0", "1.1.0", "1.2.0"]


def listed(repo: PublishedRepo) -> set[str]:
    """Every target path the published metadata lists (top-level targets and bins)."""
    store = repo.store
    top = store.load("targets").signed
    roles = [top] + [store.load(role).signed for role in top.delegations.succinct_roles.get_roles()]
    return {path for role in roles for path in role.targets}


def test_an_old_release_removed_leaves_the_metadata_and_then_the_disk(
    repo: PublishedRepo,
) -> None:
    clock = Clock()
    for version in ("1.0.0", "1.1.0", "1.2.0"):  # each with deltas from the two before
        publisher(repo, clock).add_release(repo.build(version, body=version), ["stable"])
        clock.advance(hours=1)
    with pytest.raises(TufRepoError, match=r"1\.2\.0 is the newest release on stable"):
        publisher(repo, clock).remove("1.2.0")
    with pytest.raises(TufRepoError, match="not published"):
        publisher(repo, clock).remove("0.9.0")

    done = publisher(repo, clock).remove("1.1.0")
    assert "and 1 delta to it" in done.message
    paths = listed(repo)
    assert not [p for p in paths if p.startswith("caio/1.1.0/")]
    assert "caio/1.2.0/caio-1.2.0.from-1.1.0.delta" in paths  # hosts running 1.1.0 use it
    assert fetch_everything(repo.url, repo, "fresh") == ["1.0.0", "1.2.0"]
    on_disk = {p for p in files(repo) if "/1.1.0/" in p}
    assert on_disk  # listed by metadata a cache may still send for a week

    publisher(repo, clock).prune(KEEP)
    clock.advance(days=8)
    publisher(repo, clock).refresh()
    publisher(repo, clock).prune(KEEP)
    assert not on_disk & files(repo)  # the artifact and the delta to it are gone
    assert any(p.endswith(".from-1.1.0.delta") for p in files(repo))
    assert fetch_everything(repo.url, repo, "fresh-a-week-on") == ["1.0.0", "1.2.0"]
    assert verify_repository(repo.dir, repo.trusted_root).releases == ["1.0.0", "1.2.0"]

    publisher(repo, clock).withdraw("1.2.0", "broken")  # withdrawn, even the newest may go
    assert "removed 1.2.0" in publisher(repo, clock).remove("1.2.0").message
    assert fetch_everything(repo.url, repo, "fresh-last") == ["1.0.0"]


def test_prune_waits_for_a_command_that_is_writing_and_then_stops_changing_nothing(
    repo: PublishedRepo,
) -> None:
    clock = Clock()
    publisher(repo, clock).add_release(repo.build("1.0.0"), ["stable"])
    before = files(repo)
    with writer_lock(repo.dir, "add"):  # a release engineer's `add`, mid-publication
        busy = Publisher(repo.store, Keyring.from_dir(repo.keys), clock=clock, lock_wait=0.2)
        with pytest.raises(RepositoryBusy, match="add"):
            busy.prune(KEEP)
    assert files(repo) == before  # not even the ledger
    assert not (repo.dir / "prune-ledger.json").exists()
