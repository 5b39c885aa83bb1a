"""Publishing deltas with `tuf-repo add`: signed patch targets a TUF client verifies and applies."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from caio.core.delta import DeltaInfo, TarDigest, apply_delta, delta_target_path
from caio.core.release_format import target_path
from tests.tuf_fixtures import PublishedRepo, publish_repo
from tuf_repo.cli import app


def tar_of(artifact: Path, into: Path) -> Path:
    tar = into / artifact.name.removesuffix(".gz")
    tar.write_bytes(gzip.decompress(artifact.read_bytes()))
    return tar


def delta_paths(repo: PublishedRepo) -> set[str]:
    return {
        str(p.relative_to(repo.dir / "targets")).replace(p.name, p.name.split(".", 1)[1])
        for p in (repo.dir / "targets").rglob("*.delta")
    }


def test_an_add_publishes_verified_deltas_that_rebuild_the_release(
    published_repo: PublishedRepo, tmp_path: Path
) -> None:
    repo = published_repo
    artifacts = {v: repo.release(v, body=f"VERSION = {v!r}\n") for v in ("1.0.0", "1.1.0", "1.2.0")}
    artifacts["1.3.0"] = repo.release("1.3.0", body="VERSION = '1.3.0'\n")

    client = repo.client()
    client.refresh()
    release = client.get_targetinfo(target_path("1.3.0"))
    assert release is not None
    signed_tar = TarDigest.from_json(release.custom["tar"])  # the release's own tar, signed
    assert signed_tar == TarDigest.of_file(tar_of(artifacts["1.3.0"], tmp_path))

    for base in ("1.1.0", "1.2.0"):  # the two newest before it on its channel
        info = client.get_targetinfo(delta_target_path(base, "1.3.0"))
        assert info is not None, base
        delta = DeltaInfo.from_json(info.custom["delta"])
        assert (delta.base_version, delta.result_version, delta.result) == (
            base,
            "1.3.0",
            signed_tar,
        )
        downloaded = client.download_target(info, str(tmp_path / f"from-{base}.delta"))
        base_dir = tmp_path / base
        base_dir.mkdir()
        out = io.BytesIO()
        with open(downloaded, "rb") as f:
            apply_delta(f, tar_of(artifacts[base], base_dir), delta, out)
        assert out.getvalue() == gzip.decompress(artifacts["1.3.0"].read_bytes())
        assert info.length < len(artifacts["1.3.0"].read_bytes())
    assert client.get_targetinfo(delta_target_path("1.0.0", "1.3.0")) is None  # only two


def test_withdrawn_releases_and_other_channels_are_no_base(
    published_repo: PublishedRepo,
) -> None:
    repo = published_repo
    repo.release("1.0.0")
    repo.release("1.1.0", channels=("beta",))
    repo.release("1.2.0")
    repo.publisher().withdraw("1.2.0", "broken")
    repo.release("1.3.0")
    assert delta_paths(repo) >= {delta_target_path("1.0.0", "1.2.0")}
    made = {p for p in delta_paths(repo) if p.startswith("caio/1.3.0/")}
    assert made == {delta_target_path("1.0.0", "1.3.0")}  # not beta's 1.1.0, not withdrawn 1.2.0


def test_the_release_keeps_its_signed_tar_through_rollout_and_withdrawal(
    published_repo: PublishedRepo,
) -> None:
    repo = published_repo
    repo.release("1.0.0")
    publisher = repo.publisher()
    publisher.withdraw("1.0.0", "a reason")
    client = repo.client()
    client.refresh()
    info = client.get_targetinfo(target_path("1.0.0"))
    assert info is not None and "tar" in info.custom
    assert info.custom["caio"]["withdrawn"]["reason"] == "a reason"


def test_adding_again_signs_nothing_new_and_no_deltas_when_asked(tmp_path: Path) -> None:
    repo = publish_repo(tmp_path, bins=16)
    try:
        repo.release("1.0.0")
        second = repo.build("1.1.0", body="X = 1\n")
        first = repo.publisher().add_release(second, ["stable"])
        assert "deltas from 1.0.0" in first.message
        versions = json.loads((repo.dir / "metadata" / "timestamp.json").read_text())
        again = repo.publisher().add_release(second, ["stable"])
        assert not again.changed and "deltas" not in again.message
        assert json.loads((repo.dir / "metadata" / "timestamp.json").read_text()) == versions
        third = repo.build("1.2.0", body="X = 2\n")
        none = repo.publisher().add_release(third, ["stable"], delta_from=0)
        assert "deltas" not in none.message
        assert not any(p.startswith("caio/1.2.0/") for p in delta_paths(repo))
        client = repo.client()
        client.refresh()  # with hash bins, the client finds the delta in its bin
        assert client.get_targetinfo(delta_target_path("1.0.0", "1.1.0")) is not None
    finally:
        repo.server.stop()


def test_tuf_repo_add_says_which_deltas_it_published(published_repo: PublishedRepo) -> None:
    repo = published_repo
    repo.release("1.0.0")
    artifact = repo.build("1.1.0", body="Y = 1\n")
    ran = CliRunner().invoke(
        app,
        [
            "add",
            "--repo",
            str(repo.dir),
            "--keys",
            str(repo.keys),
            str(artifact),
            "--delta-from",
            "1",
        ],
    )
    assert ran.exit_code == 0, ran.output
    assert "deltas from 1.0.0 (" in ran.output and "bytes)" in ran.output
    assert CliRunner().invoke(app, ["add", "--help"]).output.count("--delta-from") == 1


@pytest.mark.parametrize("count", [-1])
def test_a_negative_delta_count_is_a_usage_error(published_repo: PublishedRepo, count: int) -> None:
    artifact = published_repo.build("1.0.0")
    args = ["add", "--repo", str(published_repo.dir), "--keys", str(published_repo.keys)]
    ran = CliRunner().invoke(app, [*args, str(artifact), "--delta-from", str(count)])
    assert ran.exit_code == 2
