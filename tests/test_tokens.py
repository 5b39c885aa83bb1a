from __future__ import annotations

import stat
from pathlib import Path

import pytest

from caio.core.errors import CaioError, ConfigError, ConflictError, NotFoundError
from caio.core.tokens import Principal, Role, TokenStore


def test_created_token_authenticates_with_its_role(home: Path) -> None:
    store = TokenStore(home / "tokens.json")
    admin = store.create("ops", Role.ADMIN)
    viewer = store.create("dash", Role.VIEWER)
    assert store.authenticate(admin) == Principal("ops", Role.ADMIN)
    assert store.authenticate(viewer) == Principal("dash", Role.VIEWER)
    assert store.authenticate(admin + "x") is None
    assert store.authenticate("") is None


def test_only_hashes_are_stored_with_mode_0600(home: Path) -> None:
    store = TokenStore(home / "tokens.json")
    secret = store.create("ops", Role.ADMIN)
    text = store.path.read_text()
    assert secret not in text
    assert secret.removeprefix("caio_") not in text
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_roles_grant_as_documented() -> None:
    assert Principal("a", Role.ADMIN).has(Role.VIEWER)
    assert not Principal("v", Role.VIEWER).has(Role.ADMIN)


def test_revoke_removes_only_that_token(home: Path) -> None:
    store = TokenStore(home / "tokens.json")
    a = store.create("a", Role.ADMIN)
    b = store.create("b", Role.ADMIN)
    store.revoke("a")
    assert store.authenticate(a) is None
    assert store.authenticate(b) is not None
    with pytest.raises(NotFoundError, match="no token named") as missing:
        store.revoke("a")
    assert missing.value.code == "token_not_found"


def test_duplicate_and_bad_names_are_refused(home: Path) -> None:
    store = TokenStore(home / "tokens.json")
    store.create("a", Role.ADMIN)
    with pytest.raises(ConflictError, match="exists") as exists:
        store.create("a", Role.VIEWER)
    assert exists.value.code == "token_exists"
    with pytest.raises(CaioError, match="invalid token name") as invalid:
        store.create("bad name/../", Role.VIEWER)
    assert invalid.value.code == "invalid_token_name"


def test_corrupt_tokens_file_is_a_clear_error(home: Path) -> None:
    path = home / "tokens.json"
    path.write_text('{"tokens": [{"name": 1}]}')
    with pytest.raises(ConfigError, match="corrupt"):
        TokenStore(path).records()
