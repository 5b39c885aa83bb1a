"""The README's run command, end to end, as CI runs it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real processes

ROOT = Path(__file__).resolve().parent.parent


def test_demo_updates_and_restarts_into_the_newer_release(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CAIO_")},
        "CAIO_DEMO_DIR": str(tmp_path / "demo"),
        "CAIO_DEMO_KEYS": str(tmp_path / "keys"),
    }
    done = subprocess.run(
        [str(ROOT / "scripts" / "demo"), "--once", "--port", "0", "--repo-port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "ok  releases: 1.0.0, 1.1.0" in output
    assert "1.1.0 is installed and active; restart to run it" in output
    assert "now running 1.1.0" in output
    assert '"version": "1.1.0"' in output
    first_version_line = output.split("starting `caio run`")[1].splitlines()[1]
    assert '"commit": "unknown"' not in first_version_line  # the seeded release knows its commit
    home = tmp_path / "demo" / "home"
    assert os.readlink(home / "current") == "releases/1.1.0"
    assert os.readlink(home / "previous") == "releases/1.0.0"
    assert len(list((tmp_path / "keys").rglob("root-*.json"))) == 3
