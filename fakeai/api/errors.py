"""Every error fakeai sends has OpenAI's body: ``{"error": {"message", "type", "param", "code"}}``.

Errors raised by fakeai are ``APIError``; Litestar's own (404, 405, 413, validation) and any
unexpected exception are converted by the handlers registered in ``EXCEPTION_HANDLERS``, so
no response carries a traceback or another body shape.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import msgspec
from litestar import MediaType, Response
from litestar.exceptions import HTTPException

from fakeai.api.schemas import REFUSED_FIELDS, ErrorBody, ErrorDetail

if TYPE_CHECKING:
    from litestar import Request
    from litestar.types import Scope

__all__ = ("EXCEPTION_HANDLERS", "APIError", "error_response", "invalid_body", "requested_path")

logger = logging.getLogger("fakeai")

_TYPES = {401: "invalid_request_error", 403: "invalid_request_error", 429: "rate_limit_error"}
_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}
_encode = msgspec.json.Encoder().encode


def _type_for(status: int) -> str:
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


class APIError(Exception):
    """An error to send to the client, in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = ErrorDetail(message=message, type=type or _type_for(status), param=param, code=code)
        self.headers = headers


def error_response(error: APIError) -> Response[bytes]:
    return Response(
        content=_encode(ErrorBody(error=error.detail)),
        status_code=error.status,
        media_type=MediaType.JSON,
        headers=error.headers,
    )


_MSGSPEC_PATH = re.compile(r" - at `\$\.?(.*)`$")
_MISSING_FIELD = re.compile(r"^Object missing required field `(.*)`")


def invalid_body(exc: msgspec.DecodeError) -> APIError:
    """A 400 for a body msgspec refused, naming the offending field as ``param``."""
    message = str(exc)
    if not isinstance(exc, msgspec.ValidationError):
        return APIError(400, f"We could not parse the JSON body of your request: {message}.", code="invalid_json")
    at = _MSGSPEC_PATH.search(message)
    if at:
        message = message[: at.start()]
    path = at.group(1) if at else ""
    if path in REFUSED_FIELDS:  # declared to accept only null: see schemas.REFUSED_FIELDS
        hint = REFUSED_FIELDS[path]
        return APIError(
            400,
            f"Unsupported parameter: '{path}' is not supported by fakeai" + (f"; {hint}." if hint else "."),
            param=path,
            code="unsupported_parameter",
        )
    missing = _MISSING_FIELD.match(message)
    if missing:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    location = f" ('{path}')" if path else ""
    return APIError(400, f"Invalid request{location}: {message}.", param=path or None, code="invalid_value")


def requested_path(scope: Scope) -> str:
    """The path the client asked for (a mounted route's ``scope["path"]`` is the rest of it)."""
    raw = scope.get("raw_path")
    if raw is None:
        return scope["path"]
    return raw.split(b"?", 1)[0].decode("latin-1")


def _handle_api_error(_: Request, exc: APIError) -> Response[bytes]:
    return error_response(exc)


def _handle_http_exception(request: Request, exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status == 404:
        message = f"Invalid URL ({request.method} {requested_path(request.scope)})"
    elif status == 405:
        message = f"Method {request.method} is not allowed for {requested_path(request.scope)}"
    else:
        message = str(exc.detail)
    headers = dict(exc.headers) if exc.headers else None
    return error_response(APIError(status, message, code=_CODES.get(status), headers=headers))


def _handle_unexpected(request: Request, exc: Exception) -> Response[bytes]:
    logger.exception("unexpected error serving %s %s", request.method, request.url.path)
    return error_response(APIError(500, "The server had an error while processing your request.", code="internal_error"))


EXCEPTION_HANDLERS = {
    APIError: _handle_api_error,
    HTTPException: _handle_http_exception,
    Exception: _handle_unexpected,
}
