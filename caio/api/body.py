"""Request bodies read only after the token check, and never beyond a size limit.

FastAPI reads and parses a declared body parameter before it runs any
dependency, so a stranger could make CAIO buffer and parse a gigabyte before
being told the token is wrong. Routes here declare no body parameter;
:func:`json_body` is a dependency that first requires the admin role, then
refuses a declared ``Content-Length`` over the limit without reading a byte,
and stops reading a chunked body as soon as it passes the limit.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from caio.api.deps import AdminDep
from caio.api.errors import ApiError

M = TypeVar("M", bound=BaseModel)


def too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"the request body exceeds {limit} bytes")


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, or :class:`ApiError` 413 as soon as it is known to exceed ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise too_large(limit)
        except ValueError as e:
            raise ApiError(400, "bad_request", "invalid Content-Length") from e
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise too_large(limit)
    return bytes(data)


def json_body(model: type[M]) -> Callable[..., Awaitable[M]]:
    """A dependency giving ``model`` parsed from the body, after the admin check.

    An empty body gives the model's defaults.
    """

    async def dependency(request: Request, _: AdminDep) -> M:
        limit: int = request.app.state.settings.max_body_bytes
        raw = await read_capped(request, limit)
        if not raw.strip():
            return model()
        try:
            data: Any = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(422, "validation_error", f"the request body is not JSON: {e}") from e
        try:
            return model.model_validate(data)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
                for err in e.errors()
            )
            raise ApiError(422, "validation_error", problems) from e

    return dependency


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for a route that reads ``model`` through :func:`json_body`."""
    return {
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
