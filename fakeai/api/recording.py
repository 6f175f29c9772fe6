"""Recording at the ASGI level: one ``registry.record`` call per finished request.

``Recorder`` wraps the whole Litestar router, so every request is seen, including 404s,
405s, 413s and validation errors; only CORS preflights are answered before it, by the CORS
layer around it (``fakeai.api.cors``), and not recorded. What it records comes from the ``Exchange`` it puts
in the ASGI scope: the status, when the first body bytes (a stream's first token) and the
last byte were sent, and what only the handler knows (tokens, model, whether it streams,
the simulated engine it was routed to and when its first and last tokens were produced).
fakeai's own senders (``responses.py``) fill the timing in themselves and use the raw
``send``; any other response (Litestar's errors, the model list) goes through a watching
``send`` that fills it in. A response that never sent its last byte (the client went away)
is recorded as status 499 and, if it was a stream, as a failed stream.

A request can also carry an ``ImposedAnswer`` (under ``IMPOSED_ANSWER_KEY``): set by the HTTP
connection (``fakeai.api.connections``) for what the application could not see for itself (bad
HTTP, a late or oversized head or body, too many connections). The recorder sends it in OpenAI's
error shape instead of calling the application (or, when it is set on a request already being
served, instead of the cancelled rest of it) and records it like any other response, under the
answer's endpoint (``malformed``, ``overloaded``): the same label whenever the fault is found.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import asyncio
import math
from collections.abc import Callable

from fakeai._layout import STREAM_COMPLETED, STREAM_FAILED, STREAM_PLAIN

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

    from fakeai.api.batching import Job
    from fakeai.metrics import MetricsRegistry
    from fakeai.simulation.kvcache import KVCacheSimulator, Routing
    from fakeai.region import EndpointCells, EngineCells, ModelCells

__all__ = (
    "CLIENT_CLOSED_REQUEST",
    "EXCHANGE_KEY",
    "IMPOSED_ANSWER_KEY",
    "MALFORMED_ENDPOINT",
    "OVERLOADED_ENDPOINT",
    "UNMATCHED_ENDPOINT",
    "ClientDisconnected",
    "Exchange",
    "ImposedAnswer",
    "Recorder",
)

EXCHANGE_KEY = "fakeai.exchange"
CLIENT_CLOSED_REQUEST = 499
"""The status recorded for a request whose client disconnected before the end (nginx's)."""
UNMATCHED_ENDPOINT = "unmatched"
"""The endpoint label of requests no route matched (raw paths would be unbounded labels)."""
MALFORMED_ENDPOINT = "malformed"
"""The endpoint label of requests whose HTTP could not be read: invalid (400), a head too large
(431), a head or body too slow (408)."""
OVERLOADED_ENDPOINT = "overloaded"
"""The endpoint label of requests refused because the worker had ``max_connections`` already."""
IMPOSED_ANSWER_KEY = "fakeai.imposed_answer"
_NAN = math.nan
_JSON = (b"content-type", b"application/json")
_UNSCHEDULED = (_NAN, _NAN)
"""A request the engine model did not run: no queue or prefill time of its own."""
_CLOSE = (b"connection", b"close")


class ImposedAnswer(NamedTuple):
    """The error a request gets from its connection rather than from the application."""

    status: int
    body: bytes
    """OpenAI's error body, encoded."""
    endpoint: str
    """The endpoint label it is recorded under."""


class ClientDisconnected(BaseException):
    """Raised by a handler that learns its client has gone before any answer was started
    (while reading the request body): nothing is sent, and the recorder records 499.

    A ``BaseException``, like ``asyncio.CancelledError``, so that no exception handler turns
    it into an error response on its way out to the recorder.
    """


class Exchange:
    """What the recorder learns about one request, from the handler and from the senders."""

    __slots__ = (
        "choice_tokens",
        "clock",
        "send_timeout",
        "completion_tokens",
        "engine_series",
        "failure_status",
        "finish_reason",
        "finished_at",
        "first_body_at",
        "first_token_at",
        "last_token_at",
        "longest",
        "max_tokens",
        "model",
        "model_series",
        "monitoring",
        "n",
        "job",
        "offsets",
        "prompt_tokens",
        "raw_send",
        "recording",
        "routing",
        "scheduled",
        "series",
        "started",
        "status",
        "stream",
    )

    def __init__(
        self,
        clock: Callable[[], float],
        raw_send: Send,
        recording: bool = True,
        send_timeout: float | None = None,
    ) -> None:
        self.clock = clock
        self.started = clock()
        """Arrival time on the registry's clock: token deadlines count from here."""
        self.recording = recording
        """False when metrics recording is switched off: handlers then tell the registry nothing."""
        self.raw_send = raw_send
        """The server's own send: fakeai's senders use it and fill in the timing below."""
        self.status = 500
        self.first_body_at = 0.0
        """When the first non-empty body chunk was sent (0.0: not yet)."""
        self.finished_at = 0.0
        """When the last body chunk was sent (0.0: never, the client went away)."""
        self.monitoring = False
        """Set by the monitoring endpoints: not API traffic, unless asked to record them."""
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.stream = False
        """Set by a handler that answers with a stream (and has called ``stream_started``)."""
        self.failure_status: int | None = None
        """Status to record for a stream that failed after its 200 was sent."""
        self.model: str | None = None
        """Set once ``registry.request_started(model)`` was called for this request."""
        self.model_series: ModelCells | None = None
        self.series: EndpointCells | None = None
        """The registry's handles for this request's model and endpoint (set with ``model``)."""
        self.finish_reason: str | None = None
        """Why the (first) answer ended, once it is sent."""
        self.routing: Routing | None = None
        """Where the KV-cache router sent the request; released when the request ends."""
        self.send_timeout = send_timeout
        """Seconds a stream's write may wait for a client that does not read (None: no limit)."""
        self.engine_series: EngineCells | None = None
        """The registry's handle for this request's model on the simulated engine it was routed to."""
        self.first_token_at = _NAN
        """When its first token was produced (a stream: when the write carrying it was made;
        a plain answer: when the plan says; NaN: none was)."""
        self.last_token_at = _NAN
        """When its last token was produced (as ``first_token_at``)."""
        self.longest = 0
        """Tokens produced for its longest choice."""
        self.n = 0
        """Its ``n`` parameter (0: not a generation request)."""
        self.max_tokens = 0
        """Its ``max_tokens`` parameter (0: not given)."""
        self.offsets: list[float] | None = None
        """A plain answer's planned token times after arrival, once it was due (its gaps are
        vLLM's inter-token latencies); ``choice_tokens``: each choice's tokens."""
        self.choice_tokens: list[int] | None = None
        self.scheduled = False
        """Whether the engine model runs it (its engine gauges are the scheduler's to keep)."""
        self.job: Job | None = None
        """Its job on its engine (the engine model): it leaves the engine when the request ends,
        and brings its queue and prefill times."""

    async def watching_send(self, message: Message) -> None:
        """``send`` for responses fakeai's own senders do not make: notes status and timing."""
        await self.raw_send(message)
        if message["type"] == "http.response.body":
            if not self.first_body_at and message.get("body"):
                self.first_body_at = self.clock()
            if not message.get("more_body", False):
                self.finished_at = self.clock()
        elif message["type"] == "http.response.start":
            self.status = message["status"]


class Recorder:
    """ASGI middleware around the Litestar handler; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        registry: MetricsRegistry,
        kv_cache: KVCacheSimulator,
        *,
        record_monitoring: bool = False,
        enabled: bool = True,
        send_timeout: float | None = None,
    ) -> None:
        self.app = app
        self.registry = registry
        self.kv_cache = kv_cache
        """The simulated workers: a request's worker is released when the request ends."""
        self._write = registry.writer.record
        self._clock = registry.clock
        self.record_monitoring = record_monitoring
        self.enabled = enabled
        """Off only to measure what recording costs: requests are then served, not recorded."""
        self.send_timeout = send_timeout
        """Given to every exchange: how long a stream waits for a client that does not read."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = Exchange(self._clock, send, self.enabled, self.send_timeout)
        scope[EXCHANGE_KEY] = exchange  # type: ignore[literal-required]
        try:
            imposed = scope.get(IMPOSED_ANSWER_KEY)
            if imposed is not None:
                await self._impose(scope, exchange, imposed)
                return
            try:
                await self.app(scope, receive, exchange.watching_send if self.enabled else send)
            except ClientDisconnected:
                pass  # nothing was sent, so finished_at is 0.0: recorded as 499 below
            except asyncio.CancelledError:
                imposed = scope.get(IMPOSED_ANSWER_KEY)
                if imposed is None:
                    raise
                # The connection cancelled this request to answer it itself (a bad or late body).
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
                await self._impose(scope, exchange, imposed)
        finally:
            # The exchange holds the server's send, which holds this scope, which holds the
            # exchange: break that cycle now, or every request leaves garbage for the
            # collector (pauses of tens of milliseconds under load).
            del scope[EXCHANGE_KEY]  # type: ignore[misc]
            exchange.raw_send = None  # type: ignore[assignment]
            routing = exchange.routing
            kv_state = None
            if routing is not None:  # every way out: success, error, disconnect
                if exchange.job is not None:
                    exchange.job.leave()
                kv_state = self.kv_cache.release(routing)
            if self.enabled and (not exchange.monitoring or self.record_monitoring):
                self._record(scope, exchange, kv_state)

    @staticmethod
    async def _impose(scope: Scope, exchange: Exchange, answer: ImposedAnswer) -> None:
        """Send ``answer`` (then the connection closes) and note it in ``exchange``."""
        scope["path_template"] = answer.endpoint  # type: ignore[typeddict-unknown-key]
        send = exchange.raw_send
        headers = [_JSON, (b"content-length", b"%d" % len(answer.body)), _CLOSE]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        exchange.status = answer.status
        await send({"type": "http.response.body", "body": answer.body, "more_body": False})
        exchange.first_body_at = exchange.finished_at = exchange.clock()

    def _record(self, scope: Scope, exchange: Exchange, kv_state: tuple[int, int, int, int] | None) -> None:
        """Record the request, in one call of the writer; ``kv_state`` is its KV worker's state
        after it left (plain numbers from the simulation, see ``MetricsRegistry.kv_publish``),
        or ``None``."""
        started = exchange.started
        finished_at = exchange.finished_at
        if finished_at == 0.0:  # the last byte never went out: the client went away
            completed = False
            status = CLIENT_CLOSED_REQUEST
            finished_at = self.registry.clock()
            finish_reason = None if exchange.model is None else "abort"
        else:
            completed = True
            status = exchange.status if exchange.failure_status is None else exchange.failure_status
            finish_reason = exchange.finish_reason if status < 400 else None
        series = exchange.series
        if series is None:
            series = self.registry.endpoint_series(scope.get("path_template", UNMATCHED_ENDPOINT))  # type: ignore[arg-type]
        duration = finished_at - started
        first_token_at = exchange.first_token_at
        ttft = first_token_at - started
        itl = _NAN
        stream = STREAM_PLAIN
        if exchange.stream:
            stream = STREAM_COMPLETED if completed and exchange.failure_status is None else STREAM_FAILED
            if exchange.completion_tokens > 1:
                itl = (duration - ttft) / (exchange.completion_tokens - 1)
        routing = exchange.routing
        # Positional on purpose: this is the per-request hot path.
        if routing is None:
            self._write(finished_at, duration, status, exchange.prompt_tokens, exchange.completion_tokens, series,
                        exchange.model_series, ttft, itl, finish_reason, stream)
        else:
            job = exchange.job
            queue, prefill = _UNSCHEDULED if job is None else job.times()
            self._write(finished_at, duration, status, exchange.prompt_tokens, exchange.completion_tokens, series,
                        exchange.model_series, ttft, itl, finish_reason, stream, routing.worker,
                        routing.prompt_tokens, routing.cached_total, routing.oracle_tokens, kv_state,
                        exchange.engine_series, exchange.last_token_at - first_token_at, exchange.n,
                        exchange.max_tokens, exchange.longest, exchange.offsets, exchange.choice_tokens,
                        queue, prefill, exchange.scheduled)
