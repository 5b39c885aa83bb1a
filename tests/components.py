"""Real components the tests start as ordinary processes (Debian packages).

``scripts/test`` installs them when they are missing and it runs as root
(``scripts/system-packages``). Elsewhere a test that needs a missing one
skips, saying how to install it; with ``CI=true`` it fails instead, so a CI
run never passes by skipping what it was meant to prove.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require(program: str, package: str) -> str:
    """The path of ``program``; skip (fail on CI) when it is not installed."""
    found = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")
    if found is not None:
        return found
    message = f"{program} is missing: apt-get install {package} (scripts/test does, as root)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
