"""Each step of the version, build date and commit fallback chains."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from caio.core.manifest import Manifest
from caio.core.version import FALLBACK_VERSION, UNKNOWN_COMMIT, resolve_version_info

NOW = datetime(2030, 1, 1, tzinfo=UTC)
NO_DIST = "caio-distribution-that-does-not-exist"


def no_git(args: list[str], cwd: Path) -> str | None:
    return None


def fake_git(args: list[str], cwd: Path) -> str | None:
    return {"log": "2025-05-06T07:08:09+02:00", "rev-parse": "f00dfeed"}[args[0]]


def manifest(**kw: object) -> Manifest:
    base: dict[str, object] = {"name": "caio", "version": "3.1.4", "update_url": "http://x"}
    base.update(kw)
    return Manifest.model_validate(base)


def test_manifest_wins_for_every_field() -> None:
    info = resolve_version_info(
        manifest(build_date="2026-02-03T00:00:00Z", commit="c0ffee"),
        source_dir=Path("."),
        env={"CAIO_COMMIT": "from-env"},
        git=fake_git,
    )
    assert (info.version, info.commit) == ("3.1.4", "c0ffee")
    assert info.build_date == datetime(2026, 2, 3, tzinfo=UTC)


def test_version_falls_back_to_package_metadata_then_fixed_value() -> None:
    from_dist = resolve_version_info(None, source_dir=Path("."), git=no_git, env={})
    import importlib.metadata

    assert from_dist.version == importlib.metadata.version("caio")
    nothing = resolve_version_info(
        None, source_dir=Path("."), git=no_git, env={}, distribution=NO_DIST
    )
    assert nothing.version == FALLBACK_VERSION


def test_build_date_of_a_checkout_is_its_commit_date() -> None:
    """The date ``tuf-repo build`` stamps on a release of the same commit, not the install time.

    An editable install's metadata is written when pip runs: a checkout would report a
    build date later than the releases built from it (the demo's seed 1.0.0 looked newer
    than its 1.1.0).
    """
    info = resolve_version_info(manifest(), source_dir=Path("."), git=fake_git, env={})
    assert info.build_date == datetime(2025, 5, 6, 5, 8, 9, tzinfo=UTC)


def test_build_date_falls_back_to_package_metadata_then_now() -> None:
    from_dist = resolve_version_info(
        manifest(), source_dir=Path("."), git=no_git, env={}, now=lambda: NOW
    )
    assert from_dist.build_date != NOW
    assert from_dist.build_date <= datetime.now(UTC)
    from_now = resolve_version_info(
        manifest(), source_dir=Path("."), git=no_git, env={}, distribution=NO_DIST, now=lambda: NOW
    )
    assert from_now.build_date == NOW


def test_commit_falls_back_to_env_then_git_then_unknown() -> None:
    m = manifest()
    env_info = resolve_version_info(
        m, source_dir=Path("."), git=fake_git, env={"CAIO_COMMIT": "e1"}
    )
    assert env_info.commit == "e1"
    git_info = resolve_version_info(m, source_dir=Path("."), git=fake_git, env={})
    assert git_info.commit == "f00dfeed"
    none_info = resolve_version_info(m, source_dir=Path("."), git=no_git, env={})
    assert none_info.commit == UNKNOWN_COMMIT


def test_real_git_is_read_when_present(tmp_path: Path) -> None:
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("x")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-qm", "m"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    info = resolve_version_info(manifest(), source_dir=tmp_path, env={}, distribution=NO_DIST)
    assert info.commit == head.strip()
    assert abs((info.build_date - datetime.now(UTC)).total_seconds()) < 120
