"""API keys: with keys configured, every ``/v1`` request needs ``Authorization: Bearer <key>``.

Keys are compared in constant time against every configured key, and never echoed in a
response or written to a log.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import TYPE_CHECKING

from fakeai.api.errors import APIError

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler
    from litestar.types import Guard

__all__ = ("api_key_guard",)


def api_key_guard(keys: Iterable[str]) -> Guard:
    accepted = [key.encode() for key in keys]

    def require_api_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                type="invalid_request_error",
            )
        presented = token.strip().encode()
        matched = False
        for key in accepted:  # no early exit: the time does not depend on which key matched
            matched |= hmac.compare_digest(presented, key)
        if not matched:
            raise APIError(401, "Incorrect API key provided.", type="invalid_request_error", code="invalid_api_key")

    return require_api_key
