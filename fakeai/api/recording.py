"""Recording at the ASGI level: one ``registry.record`` call per finished request.

``Recorder`` wraps the whole Litestar ASGI handler, so every request is seen, including
404s, 405s, 413s and validation errors. It watches the messages sent: the status, the first
body bytes (a stream's first token) and the last one (the end of the request). Handlers
tell it what only they know (tokens, whether it is a stream) through the ``Exchange`` in the
ASGI scope. A response that never sent its last byte (the client went away) is recorded as
status 499 and, if it was a stream, as a failed stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

    from fakeai.metrics import MetricsRegistry

__all__ = ("CLIENT_CLOSED_REQUEST", "EXCHANGE_KEY", "UNMATCHED_ENDPOINT", "Exchange", "Recorder")

EXCHANGE_KEY = "fakeai.exchange"
CLIENT_CLOSED_REQUEST = 499
"""The status recorded for a request whose client disconnected before the end (nginx's)."""
UNMATCHED_ENDPOINT = "unmatched"
"""The endpoint label of requests no route matched (raw paths would be unbounded labels)."""


class Exchange:
    """What a handler reports about the request it serves."""

    __slots__ = (
        "completion_tokens",
        "failure_status",
        "finish_reason",
        "model",
        "prompt_tokens",
        "recording",
        "started",
        "stream",
    )

    def __init__(self, started: float, recording: bool = True) -> None:
        self.started = started
        self.recording = recording
        """False when metrics recording is switched off: handlers then tell the registry nothing."""
        """Arrival time on the registry's clock: token deadlines count from here."""
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.stream = False
        """Set by a handler that answers with a stream (and has called ``stream_started``)."""
        self.failure_status: int | None = None
        """Status to record for a stream that failed after its 200 was sent."""
        self.model: str | None = None
        """Set once ``registry.request_started(model)`` was called for this request."""
        self.finish_reason: str | None = None
        """Why the (first) answer ended, once it is sent."""


class Recorder:
    """ASGI middleware around the Litestar handler; see the module docstring."""

    def __init__(
        self, app: ASGIApp, registry: MetricsRegistry, *, record_monitoring: bool = False, enabled: bool = True
    ) -> None:
        self.app = app
        self.registry = registry
        self.record_monitoring = record_monitoring
        self.enabled = enabled
        """Off only to measure what recording costs: requests are then served, not recorded."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        clock = self.registry.clock
        started = clock()
        if not self.enabled:
            scope[EXCHANGE_KEY] = Exchange(started, recording=False)  # type: ignore[literal-required]
            await self.app(scope, receive, send)
            return
        exchange = Exchange(started)
        scope[EXCHANGE_KEY] = exchange  # type: ignore[literal-required]
        status = 500
        first_body_at = finished_at = 0.0

        async def watching_send(message: Message) -> None:
            nonlocal status, first_body_at, finished_at
            await send(message)
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                if not first_body_at and message.get("body"):
                    first_body_at = clock()
                if not message.get("more_body", False):
                    finished_at = clock()

        try:
            await self.app(scope, receive, watching_send)
        finally:
            self._record(scope, exchange, started, status, first_body_at, finished_at)

    def _record(
        self, scope: Scope, exchange: Exchange, started: float, status: int, first_body_at: float, finished_at: float
    ) -> None:
        handler = scope.get("route_handler")
        if handler is not None and handler.opt.get("monitoring") and not self.record_monitoring:
            return
        completed = bool(finished_at)
        if not completed:
            status = CLIENT_CLOSED_REQUEST
            finished_at = self.registry.clock()
        elif exchange.failure_status is not None:
            status = exchange.failure_status
        stream = exchange.stream
        finish_reason = exchange.finish_reason if status < 400 else None
        if not completed and exchange.model is not None:
            finish_reason = "abort"
        self.registry.record(
            scope.get("path_template", UNMATCHED_ENDPOINT),  # type: ignore[arg-type]
            finished_at - started,
            status,
            exchange.prompt_tokens,
            exchange.completion_tokens,
            ttft=(first_body_at - started) if stream and first_body_at else None,
            stream_completed=(completed and exchange.failure_status is None) if stream else None,
            model=exchange.model,
            finish_reason=finish_reason,
        )
