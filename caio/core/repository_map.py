"""The repository map (TAP 4's ``map.json``): which repositories must agree on which targets.

::

    {
      "repositories": {"vendor": ["https://updates.vendor.example/"],
                       "approval": ["https://approval.corp.example/"]},
      "mapping": [{"paths": ["*"], "repositories": ["vendor", "approval"],
                   "threshold": 2, "terminating": true}]
    }

Each repository is a TUF repository of its own (its own root, keys and cache);
its mirrors are base URLs serving ``metadata/`` and ``targets/``. A target
counts when ``threshold`` of the repositories of the first mapping whose
``paths`` match it sign the same length and hashes for it; when they do not
and the mapping is not ``terminating``, the next matching mapping is tried
(TAP 4). The file decides who can put code on the host, so it is read
strictly: anything unexpected is an error naming the field, and a file others
may write is refused.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from caio.core.errors import ConfigError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_MAP_BYTES = 256 * 1024
MAX_REPOSITORIES = 16
MAX_MIRRORS = 16
MAX_MAPPINGS = 64


@dataclass(frozen=True)
class Mapping:
    """An entry of ``mapping``: a target matching ``paths`` needs ``threshold`` repositories."""

    paths: tuple[str, ...]
    repositories: tuple[str, ...]
    threshold: int
    terminating: bool

    def matches(self, target: str) -> bool:
        """Whether ``target`` matches one of ``paths`` (shell-style, case-sensitive).

        As in TAP 4's examples, ``*`` matches any characters, ``/`` included: ``["*"]``
        covers every target (``caio/1.2.0/caio-1.2.0.tar.gz``), ``caio/1.2.*`` a series.
        """
        return any(fnmatch.fnmatchcase(target, pattern) for pattern in self.paths)


@dataclass(frozen=True)
class RepositoryMap:
    repositories: dict[str, tuple[str, ...]]  # name -> mirror base URLs, in order of preference
    mapping: tuple[Mapping, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.repositories)

    def mappings_for(self, target: str) -> list[Mapping]:
        """The mappings that may decide ``target``, in order: up to the first terminating one."""
        found = []
        for entry in self.mapping:
            if entry.matches(target):
                found.append(entry)
                if entry.terminating:
                    break
        return found

    @classmethod
    def load(cls, path: Path) -> RepositoryMap:
        """Read and check the map file.

        Raises:
            ConfigError: the file is missing, writable by others, not JSON, or a
                field is wrong (the message names it).
        """
        where = f"the repository map {path} (CAIO_REPOSITORY_MAP)"
        try:
            with path.open("rb") as f:
                info = os.fstat(f.fileno())
                data = f.read(MAX_MAP_BYTES + 1)
        except OSError as e:
            raise ConfigError(f"{where} cannot be read: {e.strerror}") from e
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ConfigError(
                f"{where} is writable by others (mode {stat.S_IMODE(info.st_mode):o}): "
                "whoever can write it decides which repositories may put code on this "
                "host; make it 0644 or stricter"
            )
        if len(data) > MAX_MAP_BYTES:
            raise ConfigError(f"{where} is larger than {MAX_MAP_BYTES} bytes")
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as e:
            raise ConfigError(f"{where} is not valid JSON: {e}") from e
        try:
            return cls.parse(doc)
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from e

    @classmethod
    def parse(cls, doc: Any) -> RepositoryMap:
        """Raises: ValueError naming the field that is wrong."""
        _exact_keys(doc, "the map", {"repositories", "mapping"})
        repositories = _repositories(doc["repositories"])
        entries = doc["mapping"]
        if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_MAPPINGS:
            raise ValueError(f"mapping must be a list of 1 to {MAX_MAPPINGS} entries")
        mapping = tuple(_mapping(entry, n, repositories) for n, entry in enumerate(entries))
        return cls(repositories, mapping)


def _exact_keys(doc: Any, what: str, keys: set[str]) -> None:
    if not isinstance(doc, dict):
        raise ValueError(f"{what} must be an object with {', '.join(sorted(keys))}")
    missing, extra = keys - set(doc), set(doc) - keys
    if missing:
        raise ValueError(f"{what} lacks {', '.join(sorted(missing))}")
    if extra:
        raise ValueError(f"{what} has unknown field(s) {', '.join(sorted(extra))}")


def _repositories(doc: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(doc, dict) or not 1 <= len(doc) <= MAX_REPOSITORIES:
        raise ValueError(f"repositories must be an object of 1 to {MAX_REPOSITORIES} entries")
    found: dict[str, tuple[str, ...]] = {}
    for name, mirrors in doc.items():
        if not NAME.fullmatch(name):
            raise ValueError(
                f"repositories: {name!r} is not a valid name (letters, digits, '._-', up to 64)"
            )
        field = f"repositories.{name}"
        if not isinstance(mirrors, list) or not 1 <= len(mirrors) <= MAX_MIRRORS:
            raise ValueError(f"{field} must be a list of 1 to {MAX_MIRRORS} mirror URLs")
        for url in mirrors:
            if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https", "file"):
                raise ValueError(f"{field}: {url!r} is not an http(s):// or file:// URL")
            if urlsplit(url).scheme != "file" and not urlsplit(url).hostname:
                raise ValueError(f"{field}: {url!r} has no host")
        if len(set(mirrors)) != len(mirrors):
            raise ValueError(f"{field} lists a mirror twice")
        found[name] = tuple(mirrors)
    return found


def _mapping(doc: Any, n: int, repositories: dict[str, tuple[str, ...]]) -> Mapping:
    what = f"mapping[{n}]"
    _exact_keys(doc, what, {"paths", "repositories", "threshold", "terminating"})
    paths, names = doc["paths"], doc["repositories"]
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise ValueError(f"{what}.paths must be a non-empty list of path patterns")
    if not isinstance(names, list) or not names or not all(isinstance(r, str) for r in names):
        raise ValueError(f"{what}.repositories must be a non-empty list of repository names")
    if unknown := [r for r in names if r not in repositories]:
        raise ValueError(f"{what}.repositories names unknown repositories: {', '.join(unknown)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what}.repositories names a repository twice")
    threshold = doc["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        raise ValueError(f"{what}.threshold must be a whole number")
    if not 1 <= threshold <= len(names):
        raise ValueError(
            f"{what}.threshold must be between 1 and the {len(names)} repositories it names"
        )
    if not isinstance(doc["terminating"], bool):
        raise ValueError(f"{what}.terminating must be true or false")
    return Mapping(tuple(paths), tuple(names), threshold, doc["terminating"])
