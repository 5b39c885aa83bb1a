"""One error body for every answer of the API: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from caio.core.errors import AuthError, CaioError, ConflictError, ErrorCode, UpdateError
from caio.core.redact import redact
from caio.schemas import ErrorBody, ErrorDetail

log = logging.getLogger("caio.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}


class ApiError(CaioError):
    """An error raised by the HTTP layer itself (body limits, check timeout), with its status."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.status_code = status_code


def error_response(
    status_code: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=redact(message), details=details))
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status_code, headers=headers
    )


def _unread_body_headers(request: Request) -> dict[str, str]:
    """``Connection: close`` when the answer leaves a request body unread.

    The server then drops the connection instead of draining what a client
    (perhaps a gigabyte) is still sending.
    """
    has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
    return {"Connection": "close"} if has_body else {}


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure to the one error body with a stable code."""

    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError) -> JSONResponse:
        headers = _unread_body_headers(request)
        if exc.status_code == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return error_response(exc.status_code, exc.code, exc.message, headers)

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        headers = _unread_body_headers(request) if exc.status_code == 413 else None
        return error_response(exc.status_code, exc.code, exc.message, headers)

    @app.exception_handler(ConflictError)
    async def _conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return error_response(409, exc.code, exc.message)

    @app.exception_handler(UpdateError)
    async def _upstream(_: Request, exc: UpdateError) -> JSONResponse:
        # Raised synchronously by check (repository or trust failed) and restart (cannot now).
        status = 503 if exc.error_code is ErrorCode.TRUST_NOT_CONFIGURED else 502
        return error_response(status, exc.code, exc.message, details=exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return error_response(422, "validation_error", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error; see the service log")


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or unknown token"},
    403: {"model": ErrorBody, "description": "token lacks the role"},
}
"""What every route behind a token may answer (public routes do not list them)."""
