"""Two-party approval (TAP 4) against in-memory repositories: the decision rule and the attacks.

Two repositories published by ``tuf_repo``, each with its own keys: the
vendor's, and an approval repository that lists the same artifacts (the same
bytes). CAIO's real TUF client refreshes both; only what both sign is offered.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from caio.api import create_app
from caio.core.errors import ConfigError, UpdateError
from caio.core.repository_map import RepositoryMap
from caio.core.rollout import Rollout, Step
from caio.core.settings import Settings
from caio.update import ArtifactDownloader, RetryPolicy
from caio.update.consensus import ConsensusRepository, ConsensusView, Source, combine, slowest
from caio.update.repository import Release
from examples import tap4_decision
from tests.helpers import map_doc, write_map
from tests.memory_repo import BASE, MemoryRepository
from tests.tuf_fixtures import make_source_tree
from tests.update_fixtures import NEWER, UpdateEnv
from tuf_repo import build_release


@dataclass(frozen=True)
class Pair:
    vendor: MemoryRepository
    approval: MemoryRepository
    vendor_dist: Path


@pytest.fixture(scope="session")
def published_pair(tmp_path_factory: pytest.TempPathFactory) -> Pair:
    """1.0.0 and 1.1.0 in both; 1.2.0 signed by the vendor alone (as with stolen keys)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUF_REPO_STATE_DIR", str(tmp_path_factory.mktemp("consensus-state")))
        work = tmp_path_factory.mktemp("vendor")
        vendor = MemoryRepository.published(work, ("1.0.0", "1.1.0", "1.2.0"))
        dist = work / "dist"
        approved = (dist / "caio-1.0.0.tar.gz", dist / "caio-1.1.0.tar.gz")
        approval = MemoryRepository.published(
            tmp_path_factory.mktemp("approval"), (), artifacts=approved
        )
        return Pair(vendor, approval, dist)


@pytest.fixture
def pair(published_pair: Pair) -> Pair:
    return Pair(
        published_pair.vendor.copy(), published_pair.approval.copy(), published_pair.vendor_dist
    )


def approval_with(
    tmp_path: Path,
    pair: Pair,
    *,
    vendors: tuple[str, ...] = ("1.0.0", "1.1.0"),
    extra: tuple[Path, ...] = (),
    then: Any = None,
    name: str = "approval",
) -> MemoryRepository:
    """A fresh approval repository with the vendor's ``vendors`` releases, plus ``extra``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUF_REPO_STATE_DIR", str(tmp_path / "state"))
        artifacts = tuple(pair.vendor_dist / f"caio-{v}.tar.gz" for v in vendors)
        return MemoryRepository.published(
            tmp_path / name, (), artifacts=artifacts + extra, then=then
        )


def differing(tmp_path: Path, pair: Pair) -> MemoryRepository:
    """An approval repository listing the vendor's 1.0.0 and other bytes as 1.1.0."""
    return approval_with(
        tmp_path, pair, vendors=("1.0.0",), extra=(own_build(tmp_path, "1.1.0"),), name="differing"
    )


def fallthrough_map() -> dict[str, Any]:
    """Both repositories for everything, not terminating; then the vendor alone for 1.2.x."""
    doc = map_doc(["vendor", "approval"], terminating=False)
    doc["mapping"].append(
        {"paths": ["caio/1.2.*"], "repositories": ["vendor"], "threshold": 1, "terminating": True}
    )
    return doc


def own_build(tmp_path: Path, version: str) -> Path:
    """A release of ``version`` built by someone else: other bytes than the vendor's."""
    src = make_source_tree(tmp_path / f"other-{version}", body="# not the vendor's\n")
    return build_release(src, version, tmp_path / "other-dist")


def two_party(
    work: Path, repos: dict[str, MemoryRepository], doc: dict[str, Any] | None = None
) -> ConsensusRepository:
    """CAIO's consensus over ``repos``, each through its own TUF client and cache."""
    repository_map = RepositoryMap.parse(doc or map_doc(list(repos)))
    sources = {name: Source(name, [repo.client(work / name)[0]]) for name, repo in repos.items()}
    return ConsensusRepository(repository_map, sources)


def decide(tmp_path: Path, repos: dict[str, MemoryRepository], **kw: Any) -> ConsensusView:
    return two_party(tmp_path / "host", repos, **kw).refresh()


def code_of(view: ConsensusView, version: str) -> str:
    problem = view.refusal(version)
    return problem.code if problem is not None else "offered"


def test_what_both_sign_is_offered_and_downloads_from_the_first(pair: Pair, tmp_path: Path) -> None:
    view = decide(tmp_path, {"vendor": pair.vendor, "approval": pair.approval})
    assert [r.version for r in view.releases] == ["1.0.0", "1.1.0"]
    agreement = view.agreements["1.1.0"]
    assert agreement.signed_by == ("vendor", "approval") and agreement.missing == ()
    release = view.releases[-1]
    info = view.verified_target(release)
    (url, transport), *others = view.locations(info, release.version)
    assert transport is pair.vendor and len(others) == 1  # the approval repository's copy
    downloader = ArtifactDownloader(None, tmp_path / "downloads", RetryPolicy(attempts=1))
    artifact = downloader.fetch(url, info, lambda _d, _t: None, transport=transport)
    assert artifact.read_bytes() == pair.vendor.files[pair.vendor.artifact("1.1.0")]


def test_a_release_only_the_vendor_signs_is_never_offered(pair: Pair, tmp_path: Path) -> None:
    """The vendor's targets keys stolen: a release signed there alone reaches no host."""
    view = decide(tmp_path, {"vendor": pair.vendor, "approval": pair.approval})
    assert "1.2.0" not in [r.version for r in view.releases]
    problem = view.refusal("1.2.0")
    assert problem is not None and problem.code == "approval_missing"
    assert "signed by vendor, missing from approval" in problem.message
    with pytest.raises(UpdateError) as refused:
        view.verified_target(next(r for r in view.views["vendor"].releases if r.version == "1.2.0"))
    assert refused.value.code == "approval_missing"


def test_the_approval_repository_alone_cannot_add_a_release(pair: Pair, tmp_path: Path) -> None:
    """The approval keys stolen: an artifact the vendor never signed reaches no host."""
    approval = approval_with(tmp_path, pair, extra=(own_build(tmp_path, "1.3.0"),))
    view = decide(tmp_path, {"vendor": pair.vendor, "approval": approval})
    assert [r.version for r in view.releases] == ["1.0.0", "1.1.0"]
    assert code_of(view, "1.3.0") == "approval_missing"
    assert "missing from vendor" in str(view.refusal("1.3.0"))


def test_other_bytes_under_the_same_version_disagree(pair: Pair, tmp_path: Path) -> None:
    view = decide(tmp_path, {"vendor": pair.vendor, "approval": differing(tmp_path, pair)})
    assert [r.version for r in view.releases] == ["1.0.0"]
    assert code_of(view, "1.1.0") == "repositories_disagree"
    message = str(view.refusal("1.1.0"))
    assert "vendor:" in message and "approval:" in message and "sha256" in message


def test_a_withdrawal_in_either_repository_withdraws_it(pair: Pair, tmp_path: Path) -> None:
    approval = approval_with(
        tmp_path, pair, then=lambda p: p.withdraw("1.1.0", "not approved after all")
    )
    view = decide(tmp_path, {"vendor": pair.vendor, "approval": approval})
    release = next(r for r in view.releases if r.version == "1.1.0")
    assert release.withdrawn is not None and release.withdrawn.reason == "not approved after all"


@pytest.mark.parametrize("fault", ["unreachable", "expired", "replayed"])
def test_one_repository_failing_fails_the_check_naming_it(
    pair: Pair, tmp_path: Path, fault: str
) -> None:
    """Never a fallback to fewer repositories: no decision at all, and why."""
    consensus = two_party(tmp_path / "host", {"vendor": pair.vendor, "approval": pair.approval})
    consensus.refresh()
    approval = pair.approval
    if fault == "unreachable":
        approval.files.clear()
    elif fault == "expired":
        ts = approval.load("/metadata/timestamp.json")
        ts.signed.expires = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        ts.signed.version += 1
        approval.resign("timestamp", ts)
    else:
        old = approval.files["/metadata/timestamp.json"]
        approval.point_timestamp_at(approval.newest("snapshot"))
        consensus.refresh()  # the newer timestamp is seen first
        approval.files["/metadata/timestamp.json"] = old
    with pytest.raises(UpdateError) as failed:
        consensus.refresh()
    expected = {
        "unreachable": "repository_unreachable",
        "expired": "metadata_expired",
        "replayed": "metadata_rollback",
    }
    assert failed.value.code == expected[fault]
    assert failed.value.message.startswith("repository 'approval': ")


def test_thresholds_and_non_terminating_mappings(pair: Pair, tmp_path: Path) -> None:
    repos = {"vendor": pair.vendor, "approval": pair.approval}
    either = decide(tmp_path / "a", repos, doc=map_doc(["vendor", "approval"], threshold=1))
    assert [r.version for r in either.releases] == ["1.0.0", "1.1.0", "1.2.0"]
    doc = fallthrough_map()
    fallthrough = decide(tmp_path / "b", repos, doc=doc)
    assert "1.2.0" in [r.version for r in fallthrough.releases]  # the second mapping decides
    doc["mapping"][0]["terminating"] = True
    stopped = decide(tmp_path / "c", repos, doc=doc)
    assert code_of(stopped, "1.2.0") == "approval_missing"
    uncovered = map_doc(["vendor", "approval"], paths=["something-else-*"])
    nobody = decide(tmp_path / "d", repos, doc=uncovered)
    assert nobody.releases == [] and code_of(nobody, "1.1.0") == "approval_missing"


# --- the map file --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d.pop("mapping"), "the map lacks mapping"),
        (lambda d: d.update(extra=1), "unknown field(s) extra"),
        (lambda d: d["repositories"].update({"bad name": ["https://x/"]}), "'bad name'"),
        (lambda d: d["repositories"].update(x=[]), "repositories.x must be a list"),
        (lambda d: d["repositories"].update(x=["ftp://x/"]), "repositories.x: 'ftp://x/'"),
        (lambda d: d["mapping"][0].update(threshold=3), "mapping[0].threshold must be between"),
        (lambda d: d["mapping"][0].update(threshold=True), "mapping[0].threshold must be a whole"),
        (lambda d: d["mapping"][0].update(repositories=["ghost"]), "unknown repositories: ghost"),
        (lambda d: d["mapping"][0].update(paths=[]), "mapping[0].paths must be"),
        (lambda d: d["mapping"][0].update(terminating="yes"), "terminating must be true or false"),
        (lambda d: d["mapping"][0].pop("threshold"), "mapping[0] lacks threshold"),
    ],
)
def test_a_malformed_map_is_refused_naming_the_field(change: Any, named: str) -> None:
    doc = map_doc(["vendor", "approval"])
    change(doc)
    with pytest.raises(ValueError, match=None) as refused:
        RepositoryMap.parse(doc)
    assert named in str(refused.value)


def test_a_map_others_may_write_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "map.json"
    path.write_text(json.dumps(map_doc(["vendor", "approval"])))
    path.chmod(0o644)
    assert RepositoryMap.load(path).names == ("vendor", "approval")
    path.chmod(0o664)
    with pytest.raises(ConfigError) as refused:
        RepositoryMap.load(path)
    assert "writable by others" in refused.value.message and str(path) in refused.value.message
    path.chmod(0o600)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        RepositoryMap.load(path)
    os.unlink(path)
    with pytest.raises(ConfigError, match="cannot be read"):
        RepositoryMap.load(path)


# --- combining the signed fields -----------------------------------------------------------

T0 = datetime(2026, 12, 1, tzinfo=UTC)
HOUR = 3600


def plan(
    *steps: tuple[int, int], start: datetime = T0, paused_at: datetime | None = None
) -> Rollout:
    return Rollout(start, tuple(Step(h * HOUR, pct) for h, pct in steps), paused_at)


def test_the_slowest_plan_wins_at_every_moment() -> None:
    fast = plan((0, 50), (24, 100))
    slow = plan((0, 10), (12, 20), (48, 100), start=T0 + timedelta(hours=6))
    both = slowest([fast, slow, None])
    assert both is not None
    for hours in range(-2, 80):
        now = T0 + timedelta(hours=hours)
        assert both.percent_at(now) == min(fast.percent_at(now), slow.percent_at(now)), hours
    assert slowest([None, None]) is None
    assert slowest([fast, None]) == fast


def test_a_pause_in_either_plan_holds_the_release() -> None:
    paused = plan((0, 10), (24, 100), paused_at=T0 + timedelta(hours=1))
    running = plan((0, 100))
    both = slowest([paused, running])
    assert both is not None and both.paused
    assert both.percent_at(T0 + timedelta(days=30)) == 10
    never = slowest([plan((0, 10), paused_at=T0 - timedelta(hours=1)), running])
    assert never is not None and never.percent_at(T0 + timedelta(days=30)) == 0
    assert never.eligible_at(0.0, T0) is None


def test_channels_are_those_all_agree_on_and_the_last_release_time_counts() -> None:
    vendor = Release(
        "1.1.0", "caio-1.1.0.tar.gz", ("stable", "beta"), released_at="2026-12-01T00:00:00Z"
    )
    approval = Release("1.1.0", "caio-1.1.0.tar.gz", ("beta",), released_at="2026-12-03T00:00:00Z")
    both = combine([vendor, approval])
    assert both.channels == ("beta",) and both.released_at == "2026-12-03T00:00:00Z"


# --- the service, with two repositories served on loopback -----------------------------------


def two_party_settings(vendor: UpdateEnv, approval: UpdateEnv, tmp_path: Path) -> Settings:
    """Settings of the vendor's host, now with a map naming both repositories and their anchors."""
    path = write_map(
        tmp_path / "map.json", map_doc({"vendor": vendor.repo.url, "approval": approval.repo.url})
    )
    layout = vendor.layout
    for name, env in (("vendor", vendor), ("approval", approval)):
        anchor = layout.repository_dir(name) / "trusted_root.json"
        anchor.parent.mkdir(parents=True)
        anchor.write_bytes(env.repo.trusted_root.read_bytes())
    return vendor.settings.model_copy(update={"repository_map": path})


def test_the_service_installs_only_what_both_sign_and_records_who_did(
    update_env: UpdateEnv, approval_env: UpdateEnv, tmp_path: Path
) -> None:
    update_env.publish(NEWER)
    approval_env.publish(NEWER)  # the same bytes: builds are reproducible
    update_env.publish("1.2.0")  # the vendor's alone
    client = TestClient(create_app(two_party_settings(update_env, approval_env, tmp_path)))
    viewer = update_env.auth("viewer")
    check = client.get("/api/v1/update/check", headers=viewer).json()
    assert [r["version"] for r in check["releases"]] == [NEWER]  # 1.2.0 lacks approval
    assert check["releases"][0]["signed_by"] == ["vendor", "approval"]
    assert check["update_available"]["version"] == NEWER
    (held,) = check["unapproved"]
    assert (held["version"], held["code"], held["signed_by"], held["missing"]) == (
        "1.2.0",
        "approval_missing",
        ["vendor"],
        ["approval"],
    )
    metrics = client.get("/metrics", headers=update_env.auth()).text.splitlines()
    series = [line for line in metrics if line.startswith("caio_release_")]
    assert 'caio_release_signed{repository="approval",version="1.1.0"} 1.0' in series
    assert 'caio_release_signed{repository="approval",version="1.2.0"} 0.0' in series
    assert 'caio_release_unapproved{code="approval_missing",version="1.2.0"} 1.0' in series
    assert {"vendor/timestamp", "approval/timestamp"} <= set(check["metadata"]["versions"])
    refused = update_env.run_update(client, {"target_version": "1.2.0"})
    assert refused["error"]["code"] == "approval_missing", refused
    assert "missing from approval" in refused["error"]["message"]
    done = update_env.run_update(client)
    assert (done["status"], done["to_version"]) == ("complete", NEWER), done
    record = client.get("/api/v1/update/history", headers=viewer).json()["records"][-1]
    assert (record["outcome"], record["signed_by"]) == ("activated", ["vendor", "approval"])

    approval_env.repo.server.stop()  # one repository gone: no check, no install, still healthy
    down = client.get("/api/v1/update/check", headers=viewer)
    assert down.status_code == 502
    assert down.json()["error"]["code"] == "repository_unreachable"
    assert "repository 'approval'" in down.json()["error"]["message"]
    assert client.get("/health").status_code == 200


def test_without_an_anchor_for_a_repository_it_says_which(
    update_env: UpdateEnv, approval_env: UpdateEnv, tmp_path: Path
) -> None:
    settings = two_party_settings(update_env, approval_env, tmp_path)
    (update_env.layout.repository_dir("approval") / "trusted_root.json").unlink()
    client = TestClient(create_app(settings))
    check = client.get("/api/v1/update/check", headers=update_env.auth("viewer"))
    assert check.status_code == 503
    assert "caio trust install --repository approval" in check.json()["error"]["message"]


# --- an independent check: plain ngclient Updaters and the rule written out again -------------


def test_plain_ngclient_updaters_reach_the_same_decisions(pair: Pair, tmp_path: Path) -> None:
    """examples/tap4_decision.py (no CAIO code) against CAIO, on every case above."""
    other = differing(tmp_path, pair)
    own = approval_with(tmp_path, pair, extra=(own_build(tmp_path / "own", "1.3.0"),))
    fallthrough = fallthrough_map()
    cases = {
        "both, and the vendor alone": ({"vendor": pair.vendor, "approval": pair.approval}, None),
        "the approval repository alone": ({"vendor": pair.vendor, "approval": own}, None),
        "other bytes": ({"vendor": pair.vendor, "approval": other}, None),
        "one of two": (
            {"vendor": pair.vendor, "approval": pair.approval},
            map_doc(["vendor", "approval"], threshold=1),
        ),
        "fall through": ({"vendor": pair.vendor, "approval": pair.approval}, fallthrough),
    }
    seen: set[str] = set()
    for n, (case, (repos, doc)) in enumerate(cases.items()):
        view = decide(tmp_path / f"caio-{n}", repos, doc=doc)
        caio = {v: a.problem.code if a.problem else "offered" for v, a in view.agreements.items()}
        plain_doc = json.loads(json.dumps(doc or map_doc(list(repos))))
        plain_doc["repositories"] = {name: [BASE] for name in repos}
        plain = tap4_decision.decide(
            plain_doc,
            {name: repo.files["/metadata/1.root.json"] for name, repo in repos.items()},
            tmp_path / f"plain-{n}",
            fetchers=dict(repos),
        )
        assert plain == caio, case
        seen.update(plain.values())
    assert seen == {"offered", "approval_missing", "repositories_disagree"}


# --- deltas with a map -------------------------------------------------------------------------

LATER = "1.2.0"


def _approval_signs_tar(approval: UpdateEnv, version: str, tar: dict[str, Any] | None) -> None:
    """The approval repository signs ``version`` again with another tar, or none (as an
    approval made before deltas did)."""
    targets = approval.repo.store.load("targets")
    custom = targets.signed.targets[f"caio/{version}/caio-{version}.tar.gz"].custom
    if tar is None:
        del custom["tar"]
    else:
        custom["tar"] = tar
    approval.repo.publisher().commit({"targets": targets})


@pytest.mark.parametrize("approval_tar", ["the same", "none", "another"])
def test_with_a_map_a_delta_must_make_the_tar_every_repository_signs(
    update_env: UpdateEnv, approval_env: UpdateEnv, tmp_path: Path, approval_tar: str
) -> None:
    for env in (update_env, approval_env):
        env.publish(NEWER)
    client = TestClient(create_app(two_party_settings(update_env, approval_env, tmp_path)))
    first = update_env.run_update(client)  # whole: no kept tar yet
    assert (first["status"], first["to_version"]) == ("complete", NEWER), first
    later = update_env.publish(LATER)  # with the delta from NEWER, in the vendor's only
    approval_env.repo.publisher().add_release(later, ("stable",), delta_from=0)
    if approval_tar == "none":
        _approval_signs_tar(approval_env, LATER, None)
    elif approval_tar == "another":
        _approval_signs_tar(approval_env, LATER, {"sha256": "0" * 64, "length": 10})
    update_env.requests.clear()

    check = client.get("/api/v1/update/check", headers=update_env.auth("viewer")).json()
    offered = next(r for r in check["releases"] if r["version"] == LATER)
    assert offered["signed_by"] == ["vendor", "approval"]  # the release itself: agreed
    done = update_env.run_update(client)
    assert (done["status"], done["to_version"]) == ("complete", LATER), done
    record = client.get("/api/v1/update/history", headers=update_env.auth()).json()["records"][-1]
    assert record["signed_by"] == ["vendor", "approval"]
    fetched = [path for path, _ in update_env.requests if "/targets/" in path]
    whole = any(path.endswith(f"caio-{LATER}.tar.gz") for path in fetched)
    if approval_tar == "the same":
        assert any(p.endswith(f"caio-{LATER}.from-{NEWER}.delta") for p in fetched)
        assert offered["delta"]["from_version"] == NEWER and offered["delta"]["applies"]
        assert record["delta"] == {"from": NEWER, "bytes": offered["delta"]["bytes"]}
        assert not whole
    else:
        assert offered["delta"] is None  # the check offers no delta that would be refused
        assert "delta" not in record and whole
        assert (
            "approval signs no tar of 1.2.0, or another one than vendor" in record["delta_fallback"]
        )
    assert not [p for p, _ in approval_env.requests if p.endswith(".delta")]
