"""One router per file; collected into the v1 router here."""

from fastapi import APIRouter

from caio.api.routes import health, host, restart, update, version

public_router = health.router

api_v1 = APIRouter(prefix="/api/v1")
api_v1.include_router(version.router)
api_v1.include_router(host.router)
api_v1.include_router(update.router)
api_v1.include_router(restart.router)

__all__ = ["api_v1", "public_router"]
