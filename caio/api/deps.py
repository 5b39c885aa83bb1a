"""Request dependencies: services from ``app.state`` and role checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from caio.core.errors import AuthError
from caio.core.tokens import Principal, Role, TokenStore
from caio.core.version import VersionInfo

_bearer = HTTPBearer(auto_error=False, description="token from `caio token create`")


def get_version_info(request: Request) -> VersionInfo:
    info: VersionInfo = request.app.state.version_info
    return info


def get_token_store(request: Request) -> TokenStore:
    store: TokenStore = request.app.state.tokens
    return store


def require_role(role: Role) -> Callable[..., Principal]:
    """A dependency that admits a bearer token whose role grants ``role``.

    Raises:
        AuthError: 401 without or with an unknown token, 403 without the role.
    """

    def dependency(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        tokens: Annotated[TokenStore, Depends(get_token_store)],
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise AuthError("a bearer token is required", status_code=401, code="unauthorized")
        principal = tokens.authenticate(credentials.credentials)
        if principal is None:
            raise AuthError("the token is not valid", status_code=401, code="unauthorized")
        if not principal.has(role):
            raise AuthError(
                f"the token '{principal.name}' lacks the role '{role}'",
                status_code=403,
                code="forbidden",
            )
        return principal

    return dependency


AdminDep = Annotated[Principal, Depends(require_role(Role.ADMIN))]
ViewerDep = Annotated[Principal, Depends(require_role(Role.VIEWER))]
VersionInfoDep = Annotated[VersionInfo, Depends(get_version_info)]
