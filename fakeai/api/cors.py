"""Cross-origin requests (CORS): web pages on other origins may call fakeai, with Litestar's own
CORS support.

The settings (``--cors-origins``, ``--cors-methods``, ``--cors-headers``,
``--cors-allow-credentials``) make Litestar's ``CORSConfig``; Litestar's CORS layer answers
preflights (``OPTIONS`` with an ``Origin``) itself, before any route is looked up: every route
has one, API, monitoring and dashboard alike, fakeai's ``@asgi`` routes included (they have no
``OPTIONS`` handler), and a preflight never meets the API key guard (a browser sends no key
with it). Every other request with an ``Origin`` gets the headers the configuration says
(``Access-Control-Allow-Origin``, ``Retry-After`` exposed to the page since injected 429 and
503 errors set it, ``Vary: Origin`` when origins are listed) from ``CrossOrigin``, which adds
them as Litestar's layer would, but into a header list of its own (Litestar's changes the
list the sender passed, and fakeai's senders pass shared ones) and adding ``Origin`` to a
``Vary`` header the response has (Litestar's replaces it: ``/metrics`` varies by ``Accept``).

``CrossOrigin`` sits outside fakeai's recorder (``with_cors``), because fakeai's senders
write through the send the recorder was given (``Exchange.raw_send``): inside the recorder,
it could not add headers to their answers. Hence:

- **Preflights are not recorded**: they are the browser asking leave, not calls of the API;
  a browser sends one per URL at most every ``Access-Control-Max-Age`` (600 s) and a script
  none, so counting them would make the same calls count differently by client. They appear
  under no endpoint, as neither requests nor errors (no 405 either). A refused preflight (an
  origin, method or header not allowed) gets a 400 in OpenAI's error shape, code
  ``cors_refused``; the browser then never sends the request it was asking for.
- A request without an ``Origin`` (every client but a browser) goes straight to the recorder:
  CORS costs it one look through the header list.
- A request the connection answers itself (``ImposedAnswer``: a 503 at the connection limit)
  is answered by the recorder, with the CORS headers, even when it is an ``OPTIONS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.config.cors import CORSConfig

from fakeai.api.errors import APIError
from fakeai.api.recording import IMPOSED_ANSWER_KEY
from fakeai.api.schemas import ErrorBody

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

    from fakeai.config import Settings

__all__ = ("EXPOSED_HEADERS", "CrossOrigin", "cors_config", "with_cors")

EXPOSED_HEADERS = ["Retry-After"]
"""Response headers a cross-origin page may read besides the CORS-safelisted ones."""

_encode = msgspec.json.Encoder().encode


def cors_config(settings: Settings) -> CORSConfig | None:
    """Litestar's CORS configuration from the settings; ``None`` (no CORS) without origins."""
    if not settings.cors_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.cors_origins),
        allow_methods=list(settings.cors_methods),
        allow_headers=list(settings.cors_headers),
        allow_credentials=settings.cors_allow_credentials,
        expose_headers=EXPOSED_HEADERS,
    )


def with_cors(app: Litestar, inner: Callable[[ASGIApp], ASGIApp]) -> ASGIApp:
    """``app``'s ASGI handler with ``inner`` (the recorder) wrapped around the router and, when
    the app has a CORS configuration, Litestar's CORS layer around ``inner``."""
    handler = app.asgi_handler
    if app.cors_config is None:
        return inner(handler)
    if getattr(handler, "config", None) is not app.cors_config:
        raise RuntimeError("Litestar's CORS layer is not the outermost of its ASGI handler any more")
    recorder = inner(handler.app)  # type: ignore[attr-defined]
    handler.app = recorder  # type: ignore[attr-defined]
    return CrossOrigin(recorder, handler)


def _origin(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"origin":
            return value
    return None


class CrossOrigin:
    """Routes each request: a preflight to Litestar's CORS layer (``cors``), which answers it;
    any other request to ``app``, with the CORS headers added to its response when it carries
    an ``Origin``. See the module docstring."""

    __slots__ = ("app", "config", "cors", "simple_headers")

    def __init__(self, app: ASGIApp, cors: Any) -> None:
        self.app = app
        self.cors = cors
        self.config: CORSConfig = cors.config
        self.simple_headers = [(name.lower().encode(), value.encode()) for name, value in self.config.simple_headers.items()]
        """What every cross-origin response gets (``Access-Control-Allow-Origin: *`` when every
        origin is allowed, the exposed headers, the credentials flag)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = _origin(scope) if scope["type"] == "http" else None
        if origin is None:
            await self.app(scope, receive, send)
        elif scope["method"] == "OPTIONS" and IMPOSED_ANSWER_KEY not in scope:  # (the connection's answer is none)
            await self.cors(scope, receive, _openai_refusal(send))
        else:
            await self.app(scope, receive, self._adding_headers(send, origin))

    def _adding_headers(self, send: Send, origin: bytes) -> Send:
        """``send`` that adds the CORS headers to the response's (as Litestar's own layer does,
        but into a list of its own, so no caller's header list changes, and adding ``Origin``
        to a ``Vary`` header the response has rather than replacing it)."""
        config = self.config
        added = list(self.simple_headers)
        if not config.is_allow_all_origins:  # the answer differs by origin
            added.append(_VARY_ORIGIN)
            if config.is_origin_allowed(origin.decode("latin-1")):
                added.append((b"access-control-allow-origin", origin))

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), *added]
                varies = [index for index, (name, _) in enumerate(headers) if name.lower() == b"vary"]
                if len(varies) > 1:  # one Vary header naming both
                    first, *others = varies
                    headers[first] = (b"vary", b", ".join(headers[index][1] for index in varies))
                    headers = [header for index, header in enumerate(headers) if index not in others]
                message = {**message, "headers": headers}  # type: ignore[typeddict-item]
            await send(message)

        return sending


_VARY_ORIGIN = (b"vary", b"Origin")


def _openai_refusal(send: Send) -> Send:
    """``send`` for a preflight: Litestar's refusal (a 400 whose body is a line of text saying
    what was not allowed) goes out in OpenAI's error shape; an accepted one as it is."""
    refused = False

    async def sending(message: Message) -> None:
        nonlocal refused
        if message["type"] == "http.response.start" and message["status"] >= 400:
            refused = True  # sent with the body, whose reason it needs
            return
        if refused and message["type"] == "http.response.body":
            reason = bytes(message.get("body", b"")).decode("utf-8", "replace").strip() or "Disallowed"
            error = APIError(
                400,
                f"Cross-origin request refused ({reason}): --cors-origins, --cors-methods and --cors-headers "
                "say what the server allows.",
                code="cors_refused",
            )
            body = _encode(ErrorBody(error=error.detail))
            headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await send(message)

    return sending
