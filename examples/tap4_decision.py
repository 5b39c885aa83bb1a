"""An independent check of CAIO's two-party decision: plain ngclient Updaters and a map.json.

Nothing of CAIO is imported: one python-tuf ``Updater`` per repository of the
map (each from its own trusted root), each repository's release index read as
plain JSON, and TAP 4's rule written out again: a release is offered when
``threshold`` repositories of the first mapping whose ``paths`` match its target
sign the same length and hashes for it (a mapping that is not ``terminating``
passes the decision on to the next one).

    python -m examples.tap4_decision MAP.json --anchor vendor=vendor-root.json \\
        --anchor approval=approval-root.json

prints ``{version: "offered" | "approval_missing" | "repositories_disagree"}``.
The tests run it beside CAIO on the same repositories and expect the same answer.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from tuf.ngclient import FetcherInterface, Updater

INDEX = "caio/index.json"


def releases_of(updater: Updater) -> dict[str, tuple[str, int, dict[str, str]]]:
    """version -> (target path, length, hashes) of every release the repository signs."""
    updater.refresh()
    index = updater.get_targetinfo(INDEX)
    if index is None:
        return {}
    doc = json.loads(Path(updater.download_target(index)).read_bytes())
    found = {}
    for entry in doc["releases"]:
        info = updater.get_targetinfo(entry["target"])
        if info is not None:
            found[entry["version"]] = (info.path, info.length, dict(info.hashes))
    return found


def decide(
    doc: dict[str, Any],
    anchors: dict[str, bytes],
    work: Path,
    fetchers: dict[str, FetcherInterface] | None = None,
) -> dict[str, str]:
    """The decision for every version any repository of the map lists."""
    signed: dict[str, dict[str, tuple[str, int, dict[str, str]]]] = {}
    for name, mirrors in doc["repositories"].items():
        base = mirrors[0].rstrip("/")
        (work / name).mkdir(parents=True)
        updater = Updater(
            str(work / name),
            f"{base}/metadata/",
            str(work / name),
            f"{base}/targets/",
            fetcher=(fetchers or {}).get(name),
            bootstrap=anchors[name],
        )
        signed[name] = releases_of(updater)
    versions = {v for listed in signed.values() for v in listed}
    return {version: _decision(doc["mapping"], signed, version) for version in sorted(versions)}


def _decision(
    mapping: list[dict[str, Any]],
    signed: dict[str, dict[str, tuple[str, int, dict[str, str]]]],
    version: str,
) -> str:
    targets = {listed[version][0] for listed in signed.values() if version in listed}
    if len(targets) != 1:
        return "repositories_disagree"
    target = targets.pop()
    decision = "approval_missing"
    for entry in mapping:
        if not any(fnmatch.fnmatchcase(target, p) for p in entry["paths"]):
            continue
        votes: dict[str, int] = {}
        for name in entry["repositories"]:
            if version in signed[name]:
                _, length, hashes = signed[name][version]
                key = json.dumps([length, hashes], sort_keys=True)
                votes[key] = votes.get(key, 0) + 1
        if votes and max(votes.values()) >= entry["threshold"]:
            return "offered"
        decision = "repositories_disagree" if len(votes) > 1 else "approval_missing"
        if entry["terminating"]:
            break
    return decision


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("map", type=Path)
    parser.add_argument("--anchor", action="append", default=[], help="NAME=ROOT.json")
    args = parser.parse_args()
    anchors = {}
    for given in args.anchor:
        name, _, path = given.partition("=")
        anchors[name] = Path(path).read_bytes()
    doc = json.loads(args.map.read_text())
    with tempfile.TemporaryDirectory(prefix="tap4-decision-") as tmp:
        print(json.dumps(decide(doc, anchors, Path(tmp)), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
