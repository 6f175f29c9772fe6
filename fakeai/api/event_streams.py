"""Typed event streams (the Responses API, Anthropic's Messages), paced by the latency model.

Chat and completions stream chunks of one shape (``streaming.sse_body``); the Responses API
and Anthropic's Messages stream named events of many shapes around their tokens: some at the
start (``response.created``, ``message_start``), some when a part of the answer begins or ends
(an output item, a content block), one per token, and some after the last token (the usage, the
whole response). An ``EventFormat`` says what those events are; ``typed_body`` sends them when
the plan says, as ``sse_body`` does: the opening events at once, each token's events when the
token is due (those due together in one write of at most about ``BATCH_BYTES``, giving the
event loop to the other requests after a full one), the closing events after the last token.

Both APIs answer one request with one answer (no ``n``), so a plan here has one choice. The
stream's token times and inter-token gaps are noted as ``sse_body`` notes them, so TTFT,
ITL and vLLM's families mean the same for every endpoint.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Protocol

from fakeai.api.engine import Engine, Plan
from fakeai.api.errors import APIError
from fakeai.api.paced_body import GIVE_WAY, BodySteps
from fakeai.api.recording import Exchange
from fakeai.api.streaming import BATCH_BYTES, Gaps, _produced

__all__ = ("EventFormat", "sse_event", "typed_body")


def sse_event(name: bytes, data: bytes) -> bytes:
    """One server-sent event with its ``event:`` name (both APIs name every event)."""
    return b"event: %s\ndata: %s\n\n" % (name, data)


class EventFormat(Protocol):
    """The events of one streamed answer of ``tokens`` tokens."""

    def opening(self) -> bytes:
        """The events sent as soon as the stream starts, before any token."""

    def token(self, index: int) -> bytes:
        """The events that carry token ``index``, preceded by those that open its part of the
        answer (and close the part before) when it is the part's first token."""

    def closing(self, tokens: int) -> Iterable[bytes]:
        """The events after the last of ``tokens`` tokens, each item one write (the whole
        answer may be repeated in them, so they are made one at a time)."""

    def failure(self, error: APIError, tokens: int) -> bytes:
        """The events that end a stream broken after ``tokens`` tokens by an injected error."""


def typed_body(
    engine: Engine,
    plan: Plan,
    exchange: Exchange,
    fmt: EventFormat,
    clock: Callable[[], float],
    gaps: Gaps | None = None,
) -> BodySteps:
    """The body of a streamed answer of one choice, in the events ``fmt`` makes, as the steps
    ``fakeai.api.paced_body`` carries out; keeps
    ``exchange.completion_tokens`` at the tokens sent and the stream's token times, and hands
    each write's inter-token gaps to ``gaps`` (``None``: not recorded)."""
    offsets = plan.offsets
    total = plan.choices[0].tokens
    job = plan.job
    """With the engine model, ``offsets`` grows as its engine samples the tokens."""
    started = exchange.started
    stream_break = plan.stream_break
    cells = exchange.engine_series
    last_write = math.nan
    """When the previous write that carried tokens was made."""
    index = 0
    yield fmt.opening()
    while index < total:
        if index >= len(offsets):  # not sampled yet: the engine model wakes it when it is
            yield engine.batching.wait(job, index + 1)
            continue
        deadline = started + offsets[index]
        if clock() < deadline:
            yield deadline
            continue
        now = clock()
        first = index
        batch = []
        size = 0
        broken = False
        known = len(offsets)  # total, unless the engine model has yet to sample the rest
        while size < BATCH_BYTES and index < known and index < total and started + offsets[index] <= now:
            if index == stream_break:
                broken = True
                break
            event = fmt.token(index)
            batch.append(event)
            size += len(event)
            index += 1
        exchange.completion_tokens = index
        if index > first:
            last_write = _produced(exchange, gaps, cells, now, last_write, index - first, 1, 1 if first == 0 else 0,
                                   index, 0, total)
        if broken:
            error = engine.as_api_error(engine.errors.stream_error)
            exchange.failure_status = error.status
            batch.append(fmt.failure(error, index))
            yield b"".join(batch)
            return
        yield b"".join(batch)
        if size >= BATCH_BYTES:  # more is due at once: let the other requests run first
            yield GIVE_WAY
    for events in fmt.closing(total):
        yield events
