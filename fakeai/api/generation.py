"""What chat and completions share: reading the body, admitting the request, answering.

A plain answer is sent whole when its last token is due (TTFT + (n - 1) inter-token
latencies after arrival); a streamed one is handed to ``streaming.sse_events``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import MediaType, Response
from litestar.exceptions import InternalServerException
from litestar.response import Stream

from fakeai.api.errors import APIError, invalid_body
from fakeai.api.recording import EXCHANGE_KEY, Exchange
from fakeai.api.schemas import Usage
from fakeai.api.streaming import SSE_HEADERS, ChunkFormat, sse_events

if TYPE_CHECKING:
    from litestar import Request

    from fakeai.api.engine import Engine, Plan
    from fakeai.metrics import MetricsRegistry

__all__ = ("answer", "read_request")


async def read_request(request: Request, decode: Callable[[bytes], Any]) -> tuple[Any, Exchange]:
    """The decoded body (400 with the field named if it is wrong) and the request's exchange."""
    try:
        body = await request.body()
    except InternalServerException:  # the client went away while sending the body
        raise APIError(400, "The request body was not received in full.", code="incomplete_body") from None
    if not body:
        raise APIError(400, "The request needs a JSON body.", code="missing_body")
    try:
        return decode(body), request.scope[EXCHANGE_KEY]  # type: ignore[literal-required]
    except msgspec.DecodeError as exc:
        raise invalid_body(exc) from None


def _usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


async def answer(
    *,
    engine: Engine,
    registry: MetricsRegistry,
    exchange: Exchange,
    plan: Plan,
    stream: bool,
    include_usage: bool,
    chunks: ChunkFormat,
    render: Callable[[Plan, Usage], bytes],
) -> Response[Any]:
    """The response to a planned generation request: whole when due, or as a stream."""
    exchange.release = engine.release
    exchange.prompt_tokens = plan.prompt_tokens
    clock = registry.clock
    if stream:
        exchange.stream = True
        registry.stream_started()
        events = sse_events(
            engine,
            plan,
            exchange,
            chunks,
            clock,
            include_usage,
            lambda sent: _usage(plan.prompt_tokens, sent),
        )
        return Stream(events, media_type="text/event-stream", headers=SSE_HEADERS)
    exchange.completion_tokens = plan.completion_tokens
    if plan.offsets:
        wait = exchange.started + plan.offsets[-1] - clock()
        if wait > 0.0:
            await asyncio.sleep(wait)
    body = render(plan, _usage(plan.prompt_tokens, plan.completion_tokens))
    return Response(body, media_type=MediaType.JSON)
