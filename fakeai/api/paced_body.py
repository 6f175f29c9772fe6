"""Carrying out a streamed body: its writes, at their times.

A streamed body (``streaming.sse_body``, ``event_streams.typed_body``) is a generator of
steps, each one of:

- ``bytes``: a write (the events due now), to send at once;
- a ``float``: a deadline on the pacer's clock to wait for before the next step (the next
  token's; the body yields one only while it has not passed);
- ``None`` (``GIVE_WAY``): let the event loop serve the other requests before the next step
  (after a write of ``BATCH_BYTES``, more being due at once);
- a future: wait until it is done (the engine model's sampling of the next token).

Two drivers carry the steps out; the body decides what is written when, so both write the same
bytes at the same times, and record the same:

- ``PacedDriver``, under fakeai's own HTTP connection (``connections.DirectWriter``) and the
  timerfd pacer: the pacer calls the driver itself when a deadline passes (``call_at``), and
  the driver writes through the connection. A paced token then costs a heap entry, a step of
  the body and one write, where awaiting it cost a future, a wake-up of the request's task
  through its whole chain of coroutines (uvicorn's, Litestar's, fakeai's), an ASGI message and
  a coroutine of the server's ``send``: about a third of the server's time per token (see
  docs/benchmarks.md). A write the connection cannot take at once (the client's socket is
  full) goes through ``send`` as before, which waits for it to drain.
- ``async_chunks``, anywhere else (another ASGI server, the in-process test client, a pacer
  of ``asyncio.sleep``): an async generator of the writes that awaits each wait, sent by the
  request's task through ``send``.

The body runs in the driver's steps: its first in the request's task and the rest from the
timer (``PacedDriver``), or all in the task (``async_chunks``); it needs neither.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Generator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fakeai.api.connections import DirectWriter
    from fakeai.api.pacing import TimerfdPacer
    from fakeai.api.recording import Exchange

__all__ = ("GIVE_WAY", "BodySteps", "PacedDriver", "async_chunks")

BodySteps = Generator["bytes | float | asyncio.Future[Any] | None", None, None]
"""A streamed body, as the steps above."""

GIVE_WAY = None
"""The step that lets the other requests run first."""

_monotonic = time.monotonic


async def async_chunks(body: BodySteps, wait_until: Callable[[float], Any], clock: Callable[[], float],
                       ) -> AsyncIterator[bytes]:
    """The writes of ``body``, each wait awaited (a deadline with ``wait_until`` while ``clock``
    has not reached it). Closing this closes ``body``."""
    try:
        for step in body:
            if type(step) is bytes:
                yield step
            elif type(step) is float:
                if clock() < step:
                    await wait_until(step)
            elif step is None:
                await asyncio.sleep(0)
            else:
                await step
    finally:
        body.close()


class PacedDriver:
    """Carries out ``body``, woken by ``pacer`` at its deadlines, writing through ``writer``
    (through ``exchange.raw_send`` a write the connection cannot take at once). ``done``
    resolves when the body ends, or with what it or ``send`` raised. ``stall.since`` holds the
    loop time a write began while it waits for the client (the stall watch's reading), and the
    first non-empty write sets ``exchange.first_body_at``."""

    __slots__ = ("_body", "_exchange", "_handle", "_loop", "_pacer", "_pending", "_pending_write", "_stall",
                 "_waiting", "_writer", "done")

    def __init__(self, body: BodySteps, exchange: Exchange, writer: DirectWriter, pacer: TimerfdPacer,
                 stall: Any) -> None:
        self._loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self._loop.create_future()
        self._body = body
        self._exchange = exchange
        self._writer = writer
        self._pacer = pacer
        self._stall = stall
        self._waiting: asyncio.Future[Any] | None = None
        """The future a step waits for (the engine model's, or the socket's drain in ``send``)."""
        self._pending: Any = None
        """The server's ``send`` of a write the connection could not take at once, in progress."""
        self._pending_write = b""
        self._handle: asyncio.Handle | None = None
        self._step()  # the first writes at once (a zero-latency answer is all written here)

    def _step(self, awaited: asyncio.Future[Any] | None = None) -> None:
        """One go of the body: from what it waited for (``awaited``: the future it waited for,
        ``None`` for a deadline or a give-way) to its next wait."""
        if self.done.done():  # cancelled (a deadline or a future it no longer waits for)
            return
        self._handle = self._waiting = None
        try:
            if self._pending is not None:
                if not self._advance_send():
                    return
            elif awaited is not None:  # as ``await`` would: a failed wait fails the stream
                if awaited.cancelled():
                    raise asyncio.CancelledError
                failure = awaited.exception()
                if failure is not None:
                    raise failure
            body = self._body
            writer = self._writer
            while True:
                step = next(body)
                if type(step) is bytes:
                    if writer.write(step):
                        if step and not self._exchange.first_body_at:
                            self._exchange.first_body_at = self._exchange.clock()
                        continue
                    self._pending_write = step
                    self._stall.since = self._loop.time()
                    self._pending = self._exchange.raw_send({"type": "http.response.body", "body": step,
                                                             "more_body": True})
                    if not self._advance_send():
                        return
                elif type(step) is float:
                    if step > _monotonic():
                        self._pacer.call_at(step, PacedDriver._step, self)  # (close() finds the driver)
                        return
                elif step is None:
                    self._handle = self._loop.call_soon(self._step)
                    return
                else:
                    self._waiting = step
                    step.add_done_callback(self._step)
                    return
        except StopIteration:
            self.done.set_result(None)
        except asyncio.CancelledError:
            self.done.cancel()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as error:  # noqa: BLE001 -- handed to the request's task, as a task would
            self.done.set_exception(error)

    def _advance_send(self) -> bool:
        """Step the pending ``send``: True once the write is with the server, False while it
        waits (for the client's socket to drain; this step is then called again)."""
        try:
            waiting = self._pending.send(None)
        except StopIteration:
            self._pending = None
            self._stall.since = 0.0
            if self._pending_write and not self._exchange.first_body_at:
                self._exchange.first_body_at = self._exchange.clock()
            return True
        if waiting is None:  # a bare yield inside send: go on at the loop's next pass
            self._handle = self._loop.call_soon(self._step)
            return False
        waiting._asyncio_future_blocking = False
        self._waiting = waiting
        waiting.add_done_callback(self._step)
        return False

    def cancel(self) -> None:
        """Stop: no further step runs; a ``send`` in progress is closed, what a step waited for
        is cancelled. Does nothing more once ``done``; closing the body is its owner's."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._waiting is not None:
            self._waiting.remove_done_callback(self._step)
            self._waiting.cancel()
            self._waiting = None
        if self._pending is not None:
            self._pending.close()
            self._pending = None
        if not self.done.done():
            self.done.cancel()
        # A deadline it waited for stays in the pacer's heap until it passes: hold nothing then.
        self._body = self._exchange = self._writer = self._stall = None  # type: ignore[assignment]
