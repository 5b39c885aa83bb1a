"""Request dependencies: services from ``app.state`` and role checks.

Every dependency is ``async`` and does no blocking work, so that FastAPI runs
it on the event loop rather than in the worker-thread pool: endpoints that
read local state (``/health``, version, job status, events) keep answering
when every worker thread is busy with a slow repository.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from caio.core.errors import AuthError
from caio.core.running import Running
from caio.core.tokens import Principal, Role, TokenStore
from caio.restart import RestartStrategy
from caio.update import UpdateService

bearer_scheme = HTTPBearer(auto_error=False, description="token from `caio token create`")


async def get_running(request: Request) -> Running:
    running: Running = request.app.state.running
    return running


async def get_token_store(request: Request) -> TokenStore:
    store: TokenStore = request.app.state.tokens
    return store


async def get_update_service(request: Request) -> UpdateService:
    service: UpdateService = request.app.state.update_service
    return service


async def get_restart_strategy(request: Request) -> RestartStrategy:
    strategy: RestartStrategy = request.app.state.restart_strategy
    return strategy


def require_role(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits a bearer token whose role grants ``role``.

    Raises:
        AuthError: 401 without or with an unknown token, 403 without the role.
    """

    async def dependency(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
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
RunningDep = Annotated[Running, Depends(get_running)]
ServiceDep = Annotated[UpdateService, Depends(get_update_service)]
StrategyDep = Annotated[RestartStrategy, Depends(get_restart_strategy)]
