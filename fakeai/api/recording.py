"""Recording at the ASGI level: one ``MetricsWriter.finish`` call per finished request.

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
from collections.abc import Callable

from fakeai.region import RequestFacts

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

    from fakeai.api.batching import Job
    from fakeai.api.connections import DirectWriter
    from fakeai.metrics import MetricsRegistry
    from fakeai.simulation.kvcache import KVCacheSimulator, Routing

__all__ = (
    "DIRECT_WRITER_KEY",
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
UNMATCHED_ENDPOINT = "unmatched"
"""The endpoint label of requests no route matched (raw paths would be unbounded labels)."""
MALFORMED_ENDPOINT = "malformed"
"""The endpoint label of requests whose HTTP could not be read: invalid (400), a head too large
(431), a head or body too slow (408)."""
OVERLOADED_ENDPOINT = "overloaded"
"""The endpoint label of requests refused because the worker had ``max_connections`` already."""
IMPOSED_ANSWER_KEY = "fakeai.imposed_answer"
DIRECT_WRITER_KEY = "fakeai.direct_writer"
"""Set by fakeai's HTTP connection on every request it serves: its ``DirectWriter``, which the
paced streams write their events through (``fakeai.api.paced_body``). Absent under any other
ASGI server (the in-process test client): the streams then go through ``send``."""
_JSON = (b"content-type", b"application/json")
_CLOSE = (b"connection", b"close")
_facts_init = RequestFacts.__init__
"""``Exchange.__init__`` calls its base's this way, not through ``super()``: one is made per request."""


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


class Exchange(RequestFacts):
    """What the recorder learns about one request, from the handler and from the senders.

    Its recorded facts (status, timing, tokens, the cells of its model, endpoint and engine) are
    ``RequestFacts``' fields, which the metrics writer reads itself when the request ends
    (``MetricsWriter.finish``); the rest is what serving it needs.
    """

    __slots__ = ("clock", "direct_writer", "first_body_at", "job", "monitoring", "raw_send", "recording", "routing",
                 "send_timeout")

    def __init__(
        self,
        clock: Callable[[], float],
        raw_send: Send,
        recording: bool = True,
        send_timeout: float | None = None,
    ) -> None:
        _facts_init(self, clock())  # started: arrival on the registry's clock (token deadlines count from it)
        self.clock = clock
        self.recording = recording
        """False when metrics recording is switched off: handlers then tell the registry nothing."""
        self.raw_send = raw_send
        """The server's own send: fakeai's senders use it and fill in the timing."""
        self.direct_writer: DirectWriter | None = None
        """The connection's writer for a stream's events (under fakeai's own HTTP protocol)."""
        self.first_body_at = 0.0
        """When the first non-empty body chunk was sent (0.0: not yet)."""
        self.monitoring = False
        """Set by the monitoring endpoints: not API traffic, unless asked to record them."""
        self.routing: Routing | None = None
        """Where the KV-cache router sent the request; released when the request ends."""
        self.send_timeout = send_timeout
        """Seconds a stream's write may wait for a client that does not read (None: no limit)."""
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
        self._finish = registry.writer.finish
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
        exchange.direct_writer = scope.get(DIRECT_WRITER_KEY)
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
            exchange.raw_send = exchange.direct_writer = None  # type: ignore[assignment]
            routing = exchange.routing
            kv_state = None
            if routing is not None:  # every way out: success, error, disconnect
                if exchange.job is not None:
                    exchange.job.leave()
                kv_state = self.kv_cache.release(routing)
            if self.enabled and (not exchange.monitoring or self.record_monitoring):
                if exchange.series is None or exchange.job is not None:
                    self._complete(scope, exchange)
                self._finish(exchange, kv_state, self._clock)  # one call records it all

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

    def _complete(self, scope: Scope, exchange: Exchange) -> None:
        """What the handler did not note: the endpoint of a request never admitted (an error, a
        monitoring read), and the engine model's queue and prefill times of a request it ran."""
        if exchange.series is None:
            exchange.series = self.registry.endpoint_series(scope.get("path_template", UNMATCHED_ENDPOINT))  # type: ignore[arg-type]
        job = exchange.job
        if job is not None:
            exchange.queue, exchange.prefill = job.times()
