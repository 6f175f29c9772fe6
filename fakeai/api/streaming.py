"""Server-sent events for chat and completions, sent when the latency model says.

Chunks are assembled from pre-encoded bytes (the chunk's constant head, the token as a JSON
literal, the constant tail), so a token costs a few byte concatenations. The body is a
generator of steps, writes and waits, that ``fakeai.api.paced_body`` carries out. The tokens
due by the time it is resumed go out together, in body writes of at most about
``BATCH_BYTES``; after a full batch it gives the event loop to the other requests before
making the next, and each write waits while the client's socket is full (the ASGI server's
``send`` awaits the transport's drain), so a long answer with zero latency is produced at the
pace the client reads it, never as one giant buffer. The event
order follows OpenAI: the first chunk of each choice carries the role
and its first token, each choice ends with a chunk carrying its ``finish_reason``, then the
usage chunk (when ``stream_options.include_usage`` asks for it, with empty ``choices``),
then ``data: [DONE]``.

A token is produced when the write carrying it is made (the clock read when its batch is
assembled, just before it is handed to the server): that is the stream's first and last
token time, and each write tells the metrics its inter-token gaps in one call (``gaps``):
the first token of a choice in a write follows the choice's previous one by the time since
the previous write that carried tokens; the others in the same write follow by 0.

With the engine model (``plan.job``, ``fakeai.api.batching``) a token's time is known only once
its engine has sampled it: the stream then waits for its engine instead of a deadline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from fakeai.api.engine import Engine, Plan
from fakeai.api.paced_body import GIVE_WAY, BodySteps
from fakeai.api.recording import Exchange
from fakeai.api.schemas import ErrorBody, Usage
from fakeai.region import EngineCells

if TYPE_CHECKING:
    from fakeai.api.rich import ChatRender, CompletionRender

    RichRender = ChatRender | CompletionRender

Gaps = Callable[[EngineCells | None, float, int, int], None]
"""``MetricsWriter.gaps``: one write's inter-token gaps."""

__all__ = ("BATCH_BYTES", "CHAT_CHUNKS", "COMPLETION_CHUNKS", "ChunkFormat", "sse_body")

BATCH_BYTES = 128 * 1024
"""A body write ends after the first event that brings it to this size (about a
millisecond of work; the write then holds at most one event more than this)."""

_encode = msgspec.json.encode
DONE = b"data: [DONE]\n\n"


class ChunkFormat:
    """How one endpoint's chunks look: object name and the choice's token field."""

    def __init__(self, object_name: str, first_token: bytes, token: bytes, finish: bytes) -> None:
        self.object_name = object_name
        self._first_token = first_token
        self._token = token
        self._finish = finish

    def templates(self, plan: Plan) -> _Templates:
        head = b'data: {"id":%s,"object":"%s","created":%d,"model":%s,"choices":[' % (
            _encode(plan.id),
            self.object_name.encode(),
            plan.created,
            _encode(plan.model),
        )
        return _Templates(self, head, len(plan.choices))


class _Templates:
    __slots__ = ("finish", "first", "head", "token")

    def __init__(self, fmt: ChunkFormat, head: bytes, choices: int) -> None:
        self.head = head
        self.first = [head + fmt._first_token % index for index in range(choices)]
        self.token = [head + fmt._token % index for index in range(choices)]
        self.finish = [head + fmt._finish % index for index in range(choices)]


CHAT_CHUNKS = ChunkFormat(
    "chat.completion.chunk",
    first_token=b'{"index":%d,"delta":{"role":"assistant","content":',
    token=b'{"index":%d,"delta":{"content":',
    finish=b'{"index":%d,"delta":{},"finish_reason":',
)
COMPLETION_CHUNKS = ChunkFormat(
    "text_completion",
    first_token=b'{"index":%d,"text":',
    token=b'{"index":%d,"text":',
    finish=b'{"index":%d,"text":"","finish_reason":',
)
_TOKEN_TAIL = b"}}]}\n\n"
_COMPLETION_TOKEN_TAIL = b"}]}\n\n"
_FINISH_TAIL = b"}]}\n\n"


def sse_body(
    engine: Engine,
    plan: Plan,
    exchange: Exchange,
    fmt: ChunkFormat,
    clock: Callable[[], float],
    include_usage: bool,
    usage: Callable[[int], Usage],
    gaps: Gaps | None = None,
    rich: RichRender | None = None,
) -> BodySteps:
    """The body of a streamed answer, as the steps ``fakeai.api.paced_body`` carries out (its
    writes, and what to wait for between them); keeps ``exchange.completion_tokens`` at the tokens sent,
    ``exchange.first_token_at``, ``last_token_at`` and ``longest`` at what was produced, and
    hands each write's inter-token gaps to ``gaps`` (``None``: not recorded).

    ``rich`` (``fakeai.api.rich``) makes each chunk's choice object of an answer that carries
    more than prose (reasoning, tool calls, log probabilities, usage on every chunk): the chunks
    come out at the same times, counted the same way."""
    templates = fmt.templates(plan)
    token_tail = _TOKEN_TAIL if fmt is CHAT_CHUNKS else _COMPLETION_TOKEN_TAIL
    choices = plan.choices
    count = len(choices)
    offsets = plan.offsets
    started = exchange.started
    stream_break = plan.stream_break
    job = plan.job
    total = len(offsets) if job is None else job.tokens
    """With the engine model, ``offsets`` grows as its engine samples the tokens."""
    sent = 0
    index = 0
    number = 0
    """The next event: token ``index`` of choice ``number`` (a full batch can end mid-index)."""
    batch: list[bytes] = []
    size = 0
    cells = exchange.engine_series
    last_write = math.nan
    """When the previous write that carried tokens was made."""
    head = templates.head
    for position, choice in enumerate(choices):
        if choice.tokens == 0:  # a stop sequence at the very start
            if rich is None:
                batch.append(templates.finish[position] + b'"%s"' % choice.finish_reason.encode() + _FINISH_TAIL)
            else:
                batch.append(head + rich.finish(choice, position, 0))
    while True:
        written = sent
        first_index, first_number = index, number
        """Where this write starts: a choice's first token in it is at ``first_index``, or at the
        next index for a choice before ``first_number``."""
        firsts = starts = 0
        """Tokens that are the first of their choice in this write; those that are a choice's first."""
        now = math.nan
        if index < total:
            if index >= len(offsets):  # not sampled yet: the engine model wakes it when it is
                yield engine.batching.wait(job, index + 1)
                continue
            deadline = started + offsets[index]
            if clock() < deadline:
                yield deadline
                continue
            # Due means the same comparison as the wait above (absolute deadlines), so a
            # deadline that has been reached is always sent: never a wait of zero forever.
            now = clock()
            known = len(offsets)  # total, unless the engine model has yet to sample the rest
            while size < BATCH_BYTES and index < known and started + offsets[index] <= now:
                if index == stream_break and number == 0:
                    exchange.completion_tokens = sent
                    error = engine.as_api_error(engine.errors.stream_error)
                    exchange.failure_status = error.status
                    batch.append(b"data: " + _encode(ErrorBody(error=error.detail)) + b"\n\n")
                    if sent > written:
                        last_write = _produced(exchange, gaps, cells, now, last_write, sent - written, firsts, starts,
                                               index, number, total)
                    yield b"".join(batch)
                    return
                before = sent
                while number < count and size < BATCH_BYTES:
                    choice = choices[number]
                    if index < choice.tokens:
                        sent += 1
                        if rich is None:
                            prefix = templates.first[number] if index == 0 else templates.token[number]
                            event = prefix + engine.token_json(choice, index) + token_tail
                        else:
                            event = head + rich.event(choice, number, index, sent)
                        batch.append(event)
                        size += len(event)
                        if index == first_index or (number < first_number and index == first_index + 1):
                            firsts += 1
                        if index == choice.tokens - 1:
                            if rich is None:
                                reason = b'"%s"' % choice.finish_reason.encode()
                                batch.append(templates.finish[number] + reason + _FINISH_TAIL)
                            else:
                                batch.append(head + rich.finish(choice, number, sent))
                    number += 1
                if index == 0:
                    starts += sent - before
                if number == count:
                    number = 0
                    index += 1
        exchange.completion_tokens = sent
        if sent > written:
            last_write = _produced(exchange, gaps, cells, now, last_write, sent - written, firsts, starts, index,
                                   number, total)
        if index >= total:
            if include_usage:
                batch.append(b'data: {"id":%s,"object":"%s","created":%d,"model":%s,"choices":[],"usage":%s}\n\n' % (
                    _encode(plan.id), fmt.object_name.encode(), plan.created, _encode(plan.model), _encode(usage(sent))
                ))
            batch.append(DONE)
            yield b"".join(batch)
            return
        yield b"".join(batch)
        batch = []
        if size >= BATCH_BYTES:  # more is due at once: let the other requests run first
            yield GIVE_WAY
        size = 0


def _produced(exchange: Exchange, gaps: Gaps | None, cells: EngineCells | None, now: float, last_write: float,
              tokens: int, firsts: int, starts: int, index: int, number: int, total: int) -> float:
    """Note a write of ``tokens`` tokens made at ``now``: the stream's token times, its longest
    choice so far, and the write's inter-token gaps (``firsts - starts`` tokens follow their
    choice's previous one by ``now - last_write``, ``tokens - firsts`` by 0). Returns ``now``."""
    if exchange.first_token_at != exchange.first_token_at:  # NaN: the first
        exchange.first_token_at = now
    exchange.last_token_at = now
    exchange.longest = min(index + (1 if number else 0), total)
    if gaps is not None:
        gapped = firsts - starts
        gap = now - last_write
        gaps(cells, gap if gapped and gap == gap else 0.0, gapped, tokens - firsts)
    return now
