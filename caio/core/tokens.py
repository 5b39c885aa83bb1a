"""API tokens: random bearer secrets with a role, stored only as SHA-256 hashes.

The file ``<home>/tokens.json`` is mode 0600. Tokens are 256-bit random values,
so a plain SHA-256 is a sound verifier (no dictionary to attack); lookups
compare against every stored hash in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from caio.core.errors import CaioError, ConfigError, ConflictError, NotFoundError
from caio.core.files import atomic_write_json

TOKEN_PREFIX = "caio_"  # noqa: S105 (a prefix, not a secret)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Role(StrEnum):
    ADMIN = "admin"
    VIEWER = "viewer"


ROLE_GRANTS: dict[Role, frozenset[Role]] = {
    Role.ADMIN: frozenset({Role.ADMIN, Role.VIEWER}),
    Role.VIEWER: frozenset({Role.VIEWER}),
}


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's name and role."""

    name: str
    role: Role

    def has(self, role: Role) -> bool:
        return role in ROLE_GRANTS[self.role]


@dataclass(frozen=True)
class TokenRecord:
    name: str
    role: Role
    sha256: str
    created: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Reads and changes ``tokens.json``; every write is atomic and mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: tuple[tuple[int, int, int], list[TokenRecord]] | None = None

    def records(self) -> list[TokenRecord]:
        """All stored tokens (hashes only); re-read only when the file changed.

        Raises:
            ConfigError: the file exists but cannot be read or parsed.
        """
        try:
            with self.path.open("rb") as f:
                st = os.fstat(f.fileno())
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
                if self._cache is not None and self._cache[0] == stamp:
                    return list(self._cache[1])
                raw = f.read()
        except FileNotFoundError:
            return []
        except OSError as e:
            raise ConfigError(f"tokens file {self.path} cannot be read: {e.strerror}") from e
        try:
            entries = json.loads(raw)["tokens"]
            records = [
                TokenRecord(e["name"], Role(e["role"]), e["sha256"], e["created"]) for e in entries
            ]
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"tokens file {self.path} is corrupt: {e!r}") from e
        self._cache = (stamp, records)
        return list(records)

    def create(self, name: str, role: Role) -> str:
        """Store a new token and return its secret (shown once, never stored).

        Raises:
            CaioError: ``invalid_token_name``.
            ConflictError: ``token_exists``: a token of that name exists.
            ConfigError: the tokens file cannot be read.
        """
        if not _NAME.match(name):
            raise CaioError(
                f"invalid token name {name!r}: use letters, digits, . _ -",
                code="invalid_token_name",
            )
        records = self.records()
        if any(r.name == name for r in records):
            raise ConflictError(
                f"a token named {name!r} exists; revoke it first", code="token_exists"
            )
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        records.append(TokenRecord(name, role, _digest(secret), created))
        self._write(records)
        return secret

    def revoke(self, name: str) -> None:
        """Remove the token called ``name``.

        Raises:
            NotFoundError: ``token_not_found``: no token has that name.
            ConfigError: the tokens file cannot be read.
        """
        records = self.records()
        kept = [r for r in records if r.name != name]
        if len(kept) == len(records):
            names = ", ".join(r.name for r in records) or "none"
            raise NotFoundError(
                f"no token named {name!r} (tokens: {names})", code="token_not_found"
            )
        self._write(kept)

    def authenticate(self, token: str) -> Principal | None:
        """The principal for ``token``, or None. Compares with every record in constant time."""
        digest = _digest(token)
        found: TokenRecord | None = None
        for record in self.records():
            if hmac.compare_digest(digest, record.sha256):
                found = record
        return Principal(found.name, found.role) if found else None

    def _write(self, records: list[TokenRecord]) -> None:
        atomic_write_json(
            self.path,
            {
                "tokens": [
                    {"name": r.name, "role": r.role.value, "sha256": r.sha256, "created": r.created}
                    for r in records
                ]
            },
            mode=0o600,
        )
