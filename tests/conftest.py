"""Shared fixtures: an isolated CAIO_HOME and settings for each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from caio.core.settings import Settings
from tests.browser import browser  # noqa: F401 (fixture)
from tests.helpers import free_port, write_manifest
from tests.served import started  # noqa: F401 (fixture)
from tests.supervisor_fixtures import supervised  # noqa: F401 (fixture)
from tests.tuf_fixtures import published_repo  # noqa: F401 (fixture)
from tests.update_fixtures import approval_env, update_env  # noqa: F401 (fixtures)

# Every test ends: the per-test backstop and the end-of-run check for leftovers.
pytest_plugins = ["tests.guard"]

CAIO_ENV_KEYS = (
    "CAIO_HOME",
    "CAIO_HOST",
    "CAIO_PORT",
    "CAIO_CONFIG",
    "CAIO_MANIFEST",
    "CAIO_UPDATE_URL",
    "CAIO_UPDATE_TOKEN",
    "CAIO_TRUSTED_ROOT",
    "CAIO_RESTART_STRATEGY",
    "CAIO_LOG_LEVEL",
    "CAIO_LOG_FORMAT",
    "CAIO_COMMIT",
    "CAIO_REPOSITORY_MAP",
    *(f"CAIO_{name}" for name in ("CA_BUNDLE", "CLIENT_CERT", "CLIENT_KEY")),
    *(f"CAIO_TLS_{name}" for name in ("CERT", "KEY", "CLIENT_CA")),
    *(f"CAIO_REMOTE_{name}" for name in ("CA_BUNDLE", "CLIENT_CERT", "CLIENT_KEY")),
)


# A developer's proxy must not stand between the tests and their loopback servers.
PROXY_ENV_KEYS = (
    *(n for b in ("http_proxy", "https_proxy", "no_proxy", "all_proxy") for n in (b, b.upper())),
    "CAIO_PROXY",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The whole suite on both cores without two real-process tests at once.

    Tests marked ``slow`` start real processes and watch their timing (probation
    windows, floods, zero-downtime restarts): with ``--dist loadgroup`` they run one
    after another on one worker, in the order written. The other worker takes the
    in-process tests and the slow tests marked ``shares_cpu`` (long, with no timing
    window: the 420-day calendar), which only compete with them for the CPU, as any
    load on a real host does.
    """
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("shares_cpu"):
            item.add_marker(pytest.mark.xdist_group("real-processes"))


@pytest.fixture(autouse=True)
def _clean_caio_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Tests never see the developer's own CAIO_* environment nor tuf-repo's high-water marks."""
    for key in CAIO_ENV_KEYS + PROXY_ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TUF_REPO_STATE_DIR", str(tmp_path_factory.mktemp("tuf-repo-state")))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "caio-home"
    path.mkdir()
    return path


@pytest.fixture
def manifest_file(tmp_path: Path) -> Path:
    return write_manifest(tmp_path / "manifest.json")


@pytest.fixture
def settings(home: Path, manifest_file: Path) -> Settings:
    return Settings(home=home, manifest=manifest_file)


@pytest.fixture
def port() -> Iterator[int]:
    yield free_port()
