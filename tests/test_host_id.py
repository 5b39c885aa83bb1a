"""A host id copied to another machine is renewed (issue 20, medium 11).

Copying CAIO's state directory (a VM image, a backup restored on new
hardware) gave every copy the same host id, so a whole group of clones
landed in the same rollout wave.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from caio.core.host_id import host_identity, machine_binding, reset_host_id


def machine(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"machine-id-{name}"
    path.write_text(f"{name * 32}"[:32] + "\n")
    return path


def test_the_id_is_kept_on_its_machine_and_renewed_on_another(tmp_path: Path) -> None:
    state, a, b = tmp_path / "state", machine(tmp_path, "a"), machine(tmp_path, "b")
    first = host_identity(state, [a])
    assert first.replaced is None
    assert host_identity(state, [a]) == first  # kept
    assert str(machine_binding([a])) in (state / "host_id").read_text()
    assert "a" * 32 not in (state / "host_id").read_text()  # the machine id itself is not kept
    renewed = host_identity(state, [b])  # the state was copied to machine b
    assert renewed.id != first.id and renewed.replaced == first.id
    assert host_identity(state, [b]) == type(renewed)(renewed.id)  # and then kept there


def test_an_id_from_an_older_caio_is_kept_and_bound(tmp_path: Path) -> None:
    state, a = tmp_path / "state", machine(tmp_path, "a")
    state.mkdir()
    (state / "host_id").write_text("h-old-1\n")
    assert host_identity(state, [a]).id == "h-old-1"
    assert str(machine_binding([a])) in (state / "host_id").read_text()


def test_without_a_machine_id_the_id_is_simply_kept(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = host_identity(state, [tmp_path / "none"])
    assert host_identity(state, [tmp_path / "none"]) == first
    assert reset_host_id(state) == first.id
    assert host_identity(state, [tmp_path / "none"]).id != first.id
    assert reset_host_id(tmp_path / "empty") is None


def caio(home: Path, machine_id: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAIO_HOME": str(home), "CAIO_MACHINE_ID_FILE": str(machine_id)}
    return subprocess.run(
        [sys.executable, "-m", "caio", *args], capture_output=True, text=True, env=env, timeout=60
    )


def audit(home: Path) -> list[dict[str, object]]:
    path = home / "state" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_a_cloned_home_gets_its_own_id_with_an_audit_record_and_reset_works(
    tmp_path: Path,
) -> None:
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    original = tmp_path / "home-a"
    shown = caio(original, a, "host-id", "show")
    assert shown.returncode == 0, shown.stderr
    first = shown.stdout.strip()
    assert caio(original, a, "host-id", "show").stdout.strip() == first

    clone = tmp_path / "home-b"
    shutil.copytree(original, clone)  # the VM image, started on another machine
    cloned = caio(clone, b, "host-id", "show")
    assert cloned.returncode == 0, cloned.stderr
    assert cloned.stdout.strip() != first
    assert "copied from another machine" in cloned.stderr
    records = audit(clone)
    assert records[-1]["event"] == "host_id" and records[-1]["outcome"] == "renewed"
    assert records[-1]["previous"] == first
    assert caio(clone, b, "audit", "verify").returncode == 0
    assert caio(original, a, "host-id", "show").stdout.strip() == first  # the original keeps it

    reset = caio(original, a, "host-id", "reset")  # what an image builder runs
    assert reset.returncode == 0, reset.stderr
    assert first in reset.stderr
    assert caio(original, a, "host-id", "show").stdout.strip() not in (first, "")
    assert audit(original)[-1]["outcome"] == "reset"
