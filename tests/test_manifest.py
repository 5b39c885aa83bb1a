from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from caio.core.errors import ConfigError
from caio.core.manifest import Manifest, load_manifest, save_manifest
from tests.helpers import write_manifest


def test_valid_manifest_loads_every_field(manifest_file: Path) -> None:
    m = load_manifest(manifest_file)
    assert m.version == "1.2.3"
    assert m.build_date == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert m.commit == "abc123"
    assert m.update_url == "http://127.0.0.1:9"
    assert m.channel == "stable"


def test_the_project_manifest_is_valid() -> None:
    m = load_manifest(Path(__file__).parent.parent / "manifest.json")
    assert m.name == "caio"


@pytest.mark.parametrize("field", ["name", "version", "update_url"])
def test_missing_field_is_named_with_the_file(tmp_path: Path, field: str) -> None:
    path = write_manifest(tmp_path / "manifest.json", **{field: None})
    with pytest.raises(ConfigError) as err:
        load_manifest(path)
    assert f"field '{field}'" in err.value.message
    assert str(path) in err.value.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", "not-a-version"),
        ("update_url", "ftp://example.invalid"),
        ("build_date", "yesterday"),
        ("channel", "Has Spaces"),
        ("surprise", 1),
    ],
)
def test_invalid_field_is_named(tmp_path: Path, field: str, value: object) -> None:
    path = write_manifest(tmp_path / "manifest.json", **{field: value})
    with pytest.raises(ConfigError, match=f"field '{field}'"):
        load_manifest(path)


def test_missing_file_and_bad_json_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_manifest(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{ nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_manifest(bad)


def test_save_round_trips_and_leaves_no_temp_files(tmp_path: Path) -> None:
    m = Manifest(name="caio", version="2.0.0", update_url="file:///srv/repo/", channel="beta")
    target = tmp_path / "out" / "manifest.json"
    save_manifest(m, target)
    assert load_manifest(target) == m.model_copy(update={"update_url": "file:///srv/repo"})
    assert json.loads(target.read_text())["version"] == "2.0.0"
    assert [p.name for p in target.parent.iterdir()] == ["manifest.json"]
