"""The two ways a generation endpoint answers, as plain ASGI: a JSON body, or an event stream.

Both bypass Litestar's generic response machinery (header containers, background tasks,
cookies), which cost more than everything fakeai itself does per request, and send through
the server's raw ``send`` while writing the status and timing into the ``Exchange``
themselves (no watching wrapper per message). Errors are still raised as exceptions before
anything is sent, so Litestar's exception handlers format them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from litestar.exceptions import MethodNotAllowedException

from fakeai.api.paced_body import BodySteps, PacedDriver, async_chunks
from fakeai.api.pacing import TimerfdPacer
from fakeai.api.recording import EXCHANGE_KEY, ClientDisconnected

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from fakeai.api.engine import Engine
    from fakeai.api.recording import Exchange

__all__ = (
    "PART_BYTES", "comma_parts", "document_method", "read_method", "send_document", "send_event_stream", "send_json", "send_json_parts",
    "wait_while_connected",
)

PART_BYTES = 128 * 1024
"""Size from which a JSON answer is sent in parts (``send_json_parts``)."""

_log = logging.getLogger("fakeai")
_JSON_HEADERS = (b"content-type", b"application/json")
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def read_method(scope: Scope) -> str:
    """The request's method, GET or HEAD (405 otherwise): for every endpoint that only sends."""
    method = scope["method"]  # type: ignore[typeddict-item]
    if method not in ("GET", "HEAD"):
        raise MethodNotAllowedException(headers={"Allow": "GET, HEAD"})
    return method


def document_method(scope: Scope) -> str:
    """For the monitoring endpoints and the dashboard: marks the request as not API traffic
    and returns its method, GET or HEAD (405 otherwise)."""
    exchange = scope.get(EXCHANGE_KEY)
    if exchange is not None:
        exchange.monitoring = True
    return read_method(scope)


async def send_document(
    send: Send, method: str, body: bytes, content_type: str, headers: tuple[tuple[bytes, bytes], ...] = (),
    status: int = 200,
) -> None:
    """A ``status`` (200) with ``body`` (none for HEAD, with the headers GET would get)."""
    start = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body)), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


async def send_json(exchange: Exchange, body: bytes, status: int = 200) -> None:
    send = exchange.raw_send
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON_HEADERS, (b"content-length", b"%d" % len(body))],
        }
    )
    exchange.status = status
    await send({"type": "http.response.body", "body": body, "more_body": False})
    exchange.first_body_at = exchange.finished_at = exchange.clock()


async def send_json_parts(exchange: Exchange, receive: Receive, parts: Iterable[bytes]) -> None:
    """A JSON body made in parts: every part but the last is at least ``PART_BYTES`` long.

    An answer whose first part is shorter is that one part and goes out whole, with a
    Content-Length. A longer one goes out part by part (chunked), each part made only after
    the previous one was handed to the server, whose ``send`` waits while the client's socket
    is full; the event loop serves the other requests between parts. A client that leaves,
    or reads nothing for ``exchange.send_timeout`` seconds, stops the making of the rest (the
    answer is then unfinished: recorded as 499).
    """
    parts = iter(parts)
    first = next(parts)
    if len(first) < PART_BYTES:
        await send_json(exchange, first)
        return
    await _send_chunked(exchange, receive, [_JSON_HEADERS], _giving_way(itertools.chain((first,), parts)))


async def _giving_way(parts: Iterator[bytes]) -> AsyncGenerator[bytes, None]:
    """``parts`` one by one, letting the event loop serve the other requests after each."""
    for part in parts:
        yield part
        await asyncio.sleep(0)


async def _send_chunked(
    exchange: Exchange, receive: Receive, headers: list[tuple[bytes, bytes]], chunks: AsyncGenerator[bytes, None]
) -> None:
    """A 200 whose body is ``chunks``, until they end or the response is cut: the client left,
    or read nothing for ``exchange.send_timeout`` seconds. A cut response is left unfinished
    (recorded as 499; a stream as failed) and ``chunks`` is closed here, deterministically, so
    nothing it holds outlives the request."""
    await _send_body(exchange, receive, headers, _ChunksSender(exchange, chunks))


async def _send_body(exchange: Exchange, receive: Receive, headers: list[tuple[bytes, bytes]],
                     sender: _ChunksSender | _PacedSender) -> None:
    """The start, the body ``sender`` sends, the end; or the start and a body cut as above."""
    send = exchange.raw_send
    clock = exchange.clock
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    exchange.status = 200
    cut = _Cut(receive)
    stall = _StallWatch(exchange.send_timeout, cut)
    try:
        await sender.send(stall)
        cut.stop_watching()
        stall.since = stall.loop.time()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        exchange.finished_at = clock()
    except asyncio.CancelledError:
        if not cut.made():
            raise
    finally:
        stall.close()
        cut.close()
        await sender.close()


class _ChunksSender:
    """A body of chunks made by an async generator, each sent through ``send`` by the request's task."""

    __slots__ = ("chunks", "exchange")

    def __init__(self, exchange: Exchange, chunks: AsyncGenerator[bytes, None]) -> None:
        self.exchange = exchange
        self.chunks = chunks

    async def send(self, stall: _StallWatch) -> None:
        exchange = self.exchange
        send = exchange.raw_send
        async for chunk in self.chunks:
            stall.since = stall.loop.time()
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            stall.since = 0.0
            if not exchange.first_body_at and chunk:
                exchange.first_body_at = exchange.clock()

    async def close(self) -> None:
        await self.chunks.aclose()


class _PacedSender:
    """A streamed body's steps carried out by a ``PacedDriver`` (woken by the pacer, writing
    straight to the connection); the request's task waits for the whole body at once."""

    __slots__ = ("body", "driver", "exchange", "pacer")

    def __init__(self, exchange: Exchange, body: BodySteps, pacer: TimerfdPacer) -> None:
        self.exchange = exchange
        self.body = body
        self.pacer = pacer
        self.driver: PacedDriver | None = None

    async def send(self, stall: _StallWatch) -> None:
        self.driver = PacedDriver(self.body, self.exchange, self.exchange.direct_writer, self.pacer, stall)
        await self.driver.done

    async def close(self) -> None:
        """Stop the driver (nothing more is sent or waited for), then close the body."""
        if self.driver is not None:
            self.driver.cancel()
        self.body.close()


class _Cut:
    """Cuts the response being sent: cancels the current task when the client disconnects
    (watched from the start) or when called (a write that stalled). ``made()`` tells such a
    cancellation from any other, and takes it back."""

    __slots__ = ("cancelled", "task", "watcher")

    def __init__(self, receive: Receive) -> None:
        self.task = asyncio.current_task()
        self.cancelled = False
        self.watcher = asyncio.ensure_future(_disconnected(receive))
        self.watcher.add_done_callback(self._on_disconnect)

    def _on_disconnect(self, _: asyncio.Future[None]) -> None:
        self()

    def __call__(self) -> None:
        self.cancelled = True
        self.task.cancel()  # type: ignore[union-attr]

    def stop_watching(self) -> None:
        """From here on a disconnect no longer cuts (the response is complete but for its end)."""
        self.watcher.remove_done_callback(self._on_disconnect)

    def made(self) -> bool:
        if not self.cancelled:
            return False
        self.task.uncancel()  # type: ignore[union-attr]
        return True

    def close(self) -> None:
        self.stop_watching()
        self.watcher.cancel()


class _StallWatch:
    """Calls ``on_stall`` when one write of a response has waited ``timeout`` seconds for a
    client that reads nothing (the server's ``send`` waits while the client's socket is full).

    One timer per response, not one per write: a write only sets ``since`` before and clears
    it after (``timeout`` None: no watch).
    """

    __slots__ = ("handle", "loop", "on_stall", "since", "timeout")

    def __init__(self, timeout: float | None, on_stall: Callable[[], None]) -> None:
        self.loop = asyncio.get_running_loop()
        self.timeout = timeout
        self.on_stall = on_stall
        self.since = 0.0
        """Loop time when the write in progress began (0.0: none)."""
        self.handle = None if timeout is None else self.loop.call_at(self.loop.time() + timeout, self._check)

    def _check(self) -> None:
        now = self.loop.time()
        began = self.since
        if began and now - began >= self.timeout:  # type: ignore[operator]
            _log.warning("cut a response whose client read nothing for %s s", self.timeout)
            self.handle = None
            self.on_stall()
            return
        self.handle = self.loop.call_at((began or now) + self.timeout, self._check)  # type: ignore[operator]

    def close(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def wait_while_connected(receive: Receive, wait: Awaitable[None]) -> None:
    """Await ``wait`` (the deadline of a plain answer); if the client leaves first, stop at
    once and raise ``ClientDisconnected`` (recorded as 499; its simulated worker is released)."""
    cut = _Cut(receive)
    try:
        await wait
    except asyncio.CancelledError:
        if not cut.made():
            raise
        raise ClientDisconnected from None
    finally:
        cut.close()


async def send_event_stream(exchange: Exchange, receive: Receive, body: BodySteps, engine: Engine) -> None:
    """Send ``body`` (``fakeai.api.paced_body``'s steps) as server-sent events until it ends or
    the client goes away.

    Under fakeai's own HTTP connection and the timerfd pacer, a ``PacedDriver`` carries the
    body out, woken by the pacer and writing straight to the connection; anywhere else the
    request's task does, awaiting each wait and sending each write through ``send``.

    A disconnect stops the wait for the next event at once (not at the next token), the body
    is then left unfinished (so the recorder sees a failed stream) and closed here,
    deterministically, so nothing it holds outlives the request. A client that reads nothing
    for ``exchange.send_timeout`` seconds is cut the same way.
    """
    pacer = engine.pacer
    if exchange.direct_writer is not None and isinstance(pacer, TimerfdPacer):
        await _send_body(exchange, receive, _SSE_HEADERS, _PacedSender(exchange, body, pacer))
    else:
        await _send_chunked(exchange, receive, _SSE_HEADERS, async_chunks(body, pacer.wait_until, exchange.clock))


def comma_parts(head: bytes, items: Iterable[bytes], tail: bytes) -> Iterator[bytes]:
    """``head``, the ``items`` comma-separated, ``tail``: in parts of at least ``PART_BYTES``
    but the last (each item made only when the part before it is out)."""
    pending = [head]
    size = len(head)
    separator = b""
    for item in items:
        pending.append(separator)
        pending.append(item)
        separator = b","
        size += len(item) + 1
        if size >= PART_BYTES:
            yield b"".join(pending)
            pending = []
            size = 0
    pending.append(tail)
    yield b"".join(pending)
