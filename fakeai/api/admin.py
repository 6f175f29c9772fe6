"""The admin API, on only with ``--admin-key``: every request needs ``Authorization: Bearer <key>``.

* ``GET /admin/config``: the runtime settings now, the generation and the newest changes.
* ``PATCH /admin/config`` with a JSON object of runtime settings (``fakeai.api.control.
  RUNTIME_SETTINGS``: the latency model, error injection, the engine model's limits): applied
  in every worker process; answers like ``GET``.
* ``POST /admin/reset-prefix-cache``: every simulated worker's prefix cache drops the blocks no
  running request uses (vLLM's ``POST /reset_prefix_cache``), in every process.

A missing or wrong key is a 401 in OpenAI's shape; the key is compared in constant time and
never echoed or logged. Like the monitoring endpoints these are not API traffic (recorded only
with ``--record-monitoring``).
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

import msgspec
from litestar.exceptions import MethodNotAllowedException
from litestar.handlers import ASGIRouteHandler

from fakeai.api.errors import APIError
from fakeai.api.recording import EXCHANGE_KEY, ClientDisconnected
from fakeai.api.responses import send_document
from fakeai.api.routes import asgi

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from fakeai.api.control import RuntimeControl

__all__ = ("admin_handlers",)

_JSON = "application/json"
MAX_ADMIN_BODY_BYTES = 64 * 1024
_NO_STORE = ((b"cache-control", b"no-store"),)
_encode = msgspec.json.Encoder().encode


def _authorized(scope: Scope, key: bytes) -> None:
    exchange = scope.get(EXCHANGE_KEY)
    if exchange is not None:
        exchange.monitoring = True
    header = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
    scheme, _, token = header.partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not token:
        raise APIError(
            401,
            "The admin API needs the admin key in an Authorization header (Authorization: Bearer ADMIN_KEY).",
            type="invalid_request_error",
            code="missing_admin_key",
        )
    if not hmac.compare_digest(token, key):
        raise APIError(401, "Incorrect admin key provided.", type="invalid_request_error", code="invalid_admin_key")


async def _body(receive: Receive) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        body = message.get("body", b"")
        size += len(body)
        if size > MAX_ADMIN_BODY_BYTES:
            raise APIError(413, f"The request body is larger than {MAX_ADMIN_BODY_BYTES} bytes.",
                           code="request_too_large")
        chunks.append(body)
        if not message.get("more_body", False):
            return b"".join(chunks)


def admin_handlers(control: RuntimeControl, admin_key: str) -> list[ASGIRouteHandler]:
    key = admin_key.encode()

    @asgi("/admin/config", copy_scope=False)
    async def config(scope: Scope, receive: Receive, send: Send) -> None:
        _authorized(scope, key)
        method = scope["method"]  # type: ignore[typeddict-item]
        if method == "PATCH":
            try:
                changes = msgspec.json.decode(await _body(receive))
            except msgspec.DecodeError as exc:
                raise APIError(400, f"We could not parse the JSON body of your request: {exc}.",
                               code="invalid_json") from None
            except RecursionError:
                raise APIError(400, "The JSON body is nested too deeply.", code="invalid_json") from None
            view = control.change(changes)
        elif method in ("GET", "HEAD"):
            view = control.view()
        else:
            raise MethodNotAllowedException(headers={"Allow": "GET, HEAD, PATCH"})
        await send_document(send, method, _encode(view), _JSON, _NO_STORE)

    @asgi("/admin/reset-prefix-cache", copy_scope=False)
    async def reset_prefix_cache(scope: Scope, receive: Receive, send: Send) -> None:
        _authorized(scope, key)
        if scope["method"] != "POST":  # type: ignore[typeddict-item]
            raise MethodNotAllowedException(headers={"Allow": "POST"})
        await _body(receive)
        await send_document(send, "POST", _encode(control.reset_prefix_cache()), _JSON, _NO_STORE)

    return [config, reset_prefix_cache]
