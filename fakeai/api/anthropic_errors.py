"""Errors and keys on ``/v1/messages`` as Anthropic sends and reads them.

Every error on that route, whatever raised it (a refused field, an unknown model, a wrong method,
an injected fault, the key check), has Anthropic's body ``{"type": "error", "error": {"type",
"message"}}`` with Anthropic's type for its status (``invalid_request_error`` for 400 and the
other 4xx it does not name, ``authentication_error``, ``not_found_error``, ``request_too_large``,
``rate_limit_error``, ``api_error`` for 500 and the other 5xx, ``overloaded_error`` for 529 and
for fakeai's injected 503), keeping the status and headers (``Retry-After``) fakeai chose.

With ``--api-keys``, the key is read as the anthropic SDK sends it, ``x-api-key``, or as a bearer
token (the SDK's ``auth_token``), compared in constant time, never echoed.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgspec
from litestar import MediaType, Response
from litestar.exceptions import HTTPException

from fakeai.api.anthropic_schemas import AnthropicError, AnthropicErrorBody
from fakeai.api.errors import APIError, requested_path

if TYPE_CHECKING:
    from litestar import Request
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler
    from litestar.types import ExceptionHandlersMap, Guard

__all__ = ("ANTHROPIC_EXCEPTION_HANDLERS", "anthropic_error_body", "anthropic_error_type", "anthropic_key_guard")

_log = logging.getLogger("fakeai")
_encode = msgspec.json.Encoder().encode
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_type(status: int) -> str:
    return _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def anthropic_error_body(status: int, message: str) -> bytes:
    return _encode(AnthropicErrorBody(error=AnthropicError(type=anthropic_error_type(status), message=message)))


def _response(status: int, message: str, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        content=anthropic_error_body(status, message), status_code=status, media_type=MediaType.JSON, headers=headers
    )


def _handle_api_error(_: Request, exc: APIError) -> Response[bytes]:
    return _response(exc.status, exc.detail.message, exc.headers)


def _handle_http_exception(request: Request, exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status == 405:
        message = f"Method {request.method} is not allowed for {requested_path(request.scope)}"
    else:
        message = str(exc.detail)
    return _response(status, message, dict(exc.headers) if exc.headers else None)


def _handle_unexpected(request: Request, exc: Exception) -> Response[bytes]:
    _log.exception("unexpected error serving %s %s", request.method, request.url.path)
    return _response(500, "The server had an error while processing your request.")


ANTHROPIC_EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    APIError: _handle_api_error,  # type: ignore[dict-item]
    HTTPException: _handle_http_exception,  # type: ignore[dict-item]
    Exception: _handle_unexpected,
}


def anthropic_key_guard(keys: Iterable[str]) -> Guard:
    """With keys configured: the request's ``x-api-key`` (or bearer token) must be one of them."""
    accepted = [key.encode() for key in keys]

    def require_api_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        presented = connection.headers.get("x-api-key", "").strip()
        if not presented:
            scheme, _, token = connection.headers.get("authorization", "").partition(" ")
            presented = token.strip() if scheme.lower() == "bearer" else ""
        if not presented:
            raise APIError(401, "x-api-key header is required")
        matched = False
        for key in accepted:  # no early exit: the time does not depend on which key matched
            matched |= hmac.compare_digest(presented.encode(), key)
        if not matched:
            raise APIError(401, "invalid x-api-key")

    return require_api_key
