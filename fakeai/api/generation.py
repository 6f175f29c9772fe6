"""What the generation endpoints share: reading the body, planning, and answering.

A request is admitted (``admit``), routed and planned (``plan_answer``). A plain answer is
sent when its last token is due (TTFT + (n - 1) inter-token latencies after arrival), made and
sent in parts when it is long (``send_when_due``, ``answer_parts``); a streamed one is handed
to ``streaming.sse_body`` (chat, completions: ``generate`` does all of it) or to
``event_streams.typed_body`` (the Responses API, Anthropic's Messages).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.exceptions import MethodNotAllowedException

from fakeai.api.batching import TooLarge
from fakeai.api.errors import APIError, invalid_body
from fakeai.api.recording import EXCHANGE_KEY, ClientDisconnected, Exchange
from fakeai.api.responses import comma_parts, send_event_stream, send_json_parts, wait_while_connected
from fakeai.api.rich import reasoning_tokens
from fakeai.api.schemas import CompletionTokensDetails, PromptTokensDetails, Usage
from fakeai.api.streaming import ChunkFormat, sse_body

if TYPE_CHECKING:
    from litestar.types import Receive, Scope

    from fakeai.api.engine import Engine, Plan
    from fakeai.api.rich import ChatRender, CompletionRender
    from fakeai.api.shaping import ChatShaping
    from fakeai.metrics import MetricsRegistry
    from fakeai.simulation.kvcache import Prompt

__all__ = (
    "WHOLE_ANSWER_TOKENS", "admit", "answer_parts", "generate", "open_stream", "plan_answer", "read_request",
    "send_when_due",
)

_TOKENS = operator.attrgetter("tokens")

WHOLE_ANSWER_TOKENS = 1024
"""An answer of at most this many tokens (every choice together, no echoed prompt) is encoded
in one piece: tens of kilobytes at most, well under ``PART_BYTES``; a longer one in parts."""


async def _rest_of_body(receive: Receive, first: bytes, limit: int) -> bytes:
    """A body sent in several messages, ``first`` being the first one's: read to its end (413
    as soon as it passes ``limit`` bytes)."""
    chunks = [first]
    size = len(first)
    while True:
        if size > limit:
            raise _too_large(limit)
        message = await receive()
        if message["type"] == "http.disconnect":  # the client left mid-body: no one to answer
            raise ClientDisconnected
        body = message.get("body", b"")
        chunks.append(body)
        size += len(body)
        if not message.get("more_body", False):
            if size > limit:
                raise _too_large(limit)
            return b"".join(chunks)


def _too_large(limit: int) -> APIError:
    return APIError(413, f"The request body is larger than {limit} bytes.", code="request_too_large")


async def read_request(
    scope: Scope, receive: Receive, decode: Callable[[bytes], Any], limit: int
) -> tuple[Any, Exchange]:
    """The decoded POST body (400 naming the field if it is wrong) and the request's exchange."""
    if scope["method"] != "POST":  # type: ignore[typeddict-item]
        raise MethodNotAllowedException(headers={"Allow": "POST"})
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise _too_large(limit)
    message = await receive()
    if message["type"] == "http.disconnect":  # the client left mid-body: no one to answer
        raise ClientDisconnected
    body = message.get("body", b"")
    if message.get("more_body", False):
        body = await _rest_of_body(receive, body, limit)
    elif len(body) > limit:
        raise _too_large(limit)
    if not body:
        raise APIError(400, "The request needs a JSON body.", code="missing_body")
    try:
        return decode(body), scope[EXCHANGE_KEY]  # type: ignore[literal-required]
    except msgspec.DecodeError as exc:
        raise invalid_body(exc) from None
    except RecursionError:
        # msgspec decodes (and skips unknown fields) recursively, counting every level of
        # nesting against the interpreter's recursion limit: some hundreds of levels, fewer
        # than 1,000 minus the server's own call depth. No OpenAI request nests like that.
        raise APIError(400, "The JSON body is nested too deeply.", code="invalid_json") from None


def admit(engine: Engine, registry: MetricsRegistry, exchange: Exchange, model: str, endpoint: str) -> None:
    """Let in a request that passed its checks (``engine.check_model``, then what it asks for:
    ``engine.check_context``, ``engine.limits``): 503 while the model is loading
    (``--startup-seconds``), the injected error if one is drawn, else count it as running for
    ``model`` until the recorder records its end. A runtime change another process made
    (``fakeai.api.control``) applies from here on."""
    readiness = engine.readiness
    if not readiness.ready:
        readiness.check()
    engine.poll_control()
    if engine.errors.active:
        injected = engine.injected_error()
        if injected is not None:
            raise injected
    if exchange.recording and not registry.writer.admit(exchange, model, endpoint):
        registry.admit(exchange, model, endpoint)  # a model name the writer has not mapped yet


def _usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int, reasoning: int | None = None) -> Usage:
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached_tokens),
        completion_tokens_details=None if reasoning is None else CompletionTokensDetails(reasoning_tokens=reasoning),
    )


def _stream_usage(prompt_tokens: int, cached_tokens: int, reasoning: int | None, sent: int) -> Usage:
    """A stream's usage once it has sent ``sent`` tokens."""
    return _usage(prompt_tokens, sent, cached_tokens, reasoning)


def _check_fits(engine: Engine, prompt_tokens: int, choices: int, max_tokens: int | None) -> None:
    """With the engine model: 400 for a request no engine could hold at its longest (vLLM refuses
    to start with a context its KV cache cannot hold; here a request says what it asks for)."""
    tokens = engine.limits.default_answer_tokens if max_tokens is None else max_tokens
    try:
        engine.batching.check(prompt_tokens, choices, tokens)
    except TooLarge as exc:
        limits = exc.limits
        raise APIError(
            400,
            f"This request needs {exc.needed} KV-cache blocks of {limits.block_tokens} tokens at its longest "
            f"({prompt_tokens} prompt tokens and {choices} answers of up to {tokens} tokens); an engine holds "
            f"{limits.capacity_blocks}. Lower 'max_tokens', 'n' or the prompt.",
            param="max_tokens",
            code="kv_capacity_exceeded",
        ) from None


def _submit(engine: Engine, exchange: Exchange, plan: Plan, cached_tokens: int) -> None:
    """Hand the planned request to its engine's scheduler (the engine model): its ``Job``'s
    token times become ``plan.offsets`` (the recorder takes it out of its engine, whatever the
    way out; no job for an answer of no token)."""
    longest = max(choice.tokens for choice in plan.choices)
    if not longest:
        return
    job = engine.batching.submit(
        exchange.routing.index,  # type: ignore[union-attr]
        exchange.engine_series,
        origin=exchange.started,
        ready_at=exchange.started + engine.queue_delay(),
        prompt_tokens=plan.prompt_tokens,
        cached_tokens=cached_tokens,
        choices=len(plan.choices),
        tokens=longest,
    )
    exchange.job = job
    plan.offsets = job.offsets
    plan.job = job


async def plan_answer(
    engine: Engine,
    registry: MetricsRegistry,
    exchange: Exchange,
    *,
    id_prefix: str,
    model: str,
    prompts: list[Prompt],
    tokens_per_prompt: list[int],
    max_tokens: int | None,
    n: int = 1,
    choices: int | None = None,
    min_tokens: int = 0,
    ignore_eos: bool = False,
    stop: str | list[str] | None = None,
    seed: int | None = None,
    stream: bool = False,
    shaping: ChatShaping | None = None,
) -> Plan:
    """Route an admitted request to a simulated worker and plan its answer (``choices`` answers,
    ``n`` when not given; ``n`` is the request's parameter), noting in ``exchange`` what the
    recorder records of it.

    ``prompts`` are the request's prompt texts (or token-id lists) and their token counts: one
    for chat, one or more for completions (answered together; prefill takes as long as the
    longest uncached part). ``shaping`` draws answers with reasoning, tool calls or JSON content.
    With the engine model its engine's scheduler times the tokens (``plan.job``).
    """
    choices = n if choices is None else choices
    scheduled = engine.batching.enabled
    if scheduled:
        _check_fits(engine, sum(tokens_per_prompt), choices, max_tokens)
    # Routed to a simulated worker (the recorder releases it at the end, whatever the outcome),
    # where it runs for vLLM's metrics (``scheduled``: as the engine model says).
    kv_cache = engine.kv_cache
    routing = exchange.routing = kv_cache.route(prompts, tokens_per_prompt)
    exchange.scheduled = scheduled
    if exchange.recording:  # admitted, so its model's cells are known (``admit``)
        registry.writer.route_request(exchange, routing.worker, kv_cache.state(routing.index), routing.prompt_tokens,
                                      routing.cached_total, routing.oracle_tokens, not scheduled)
    cached = routing.cached_tokens
    plan = await engine.plan(
        id_prefix=id_prefix,
        model=model,
        prompt_tokens=sum(tokens_per_prompt),
        cached_tokens=sum(cached),
        uncached_prompt_tokens=tokens_per_prompt[0] - cached[0] if len(cached) == 1 else max(
            tokens - hit for tokens, hit in zip(tokens_per_prompt, cached)),
        n=choices,
        max_tokens=max_tokens,
        min_tokens=min_tokens,
        ignore_eos=ignore_eos,
        stop=stop,
        seed=seed,
        stream=stream,
        shaping=shaping,
        timed=not scheduled,
    )
    if scheduled:
        _submit(engine, exchange, plan, sum(cached))
    exchange.prompt_tokens = plan.prompt_tokens
    exchange.finish_reason = plan.choices[0].finish_reason
    exchange.n = n
    exchange.max_tokens = max_tokens or 0
    return plan


def open_stream(registry: MetricsRegistry, exchange: Exchange) -> None:
    """Count the request's answer as a stream (the recorder closes it, completed or failed)."""
    exchange.stream = True
    if exchange.recording:
        registry.stream_started()


async def send_when_due(
    engine: Engine, exchange: Exchange, receive: Receive, plan: Plan, render: Callable[[], Iterable[bytes]]
) -> None:
    """Send a plain answer when its last token is due: the parts ``render`` makes (see
    ``answer_parts``), noting when its tokens were produced. A client that leaves first is
    recorded as 499."""
    exchange.completion_tokens = plan.completion_tokens
    offsets = plan.offsets
    job = plan.job
    started = exchange.started
    if job is not None and len(offsets) < job.tokens:  # the engine model samples them
        await wait_while_connected(receive, engine.batching.wait(job, job.tokens))
    elif offsets and exchange.clock() < started + offsets[-1]:
        await wait_while_connected(receive, engine.pacer.wait_until(started + offsets[-1]))
    if offsets:  # the answer is due: its tokens were produced when the plan says
        exchange.first_token_at = started + offsets[0]
        exchange.last_token_at = started + offsets[-1]
        exchange.longest = len(offsets)
        exchange.offsets = offsets
        exchange.choice_tokens = list(map(_TOKENS, plan.choices))
    await send_json_parts(exchange, receive, render())


async def generate(
    receive: Receive,
    *,
    engine: Engine,
    registry: MetricsRegistry,
    exchange: Exchange,
    body: Any,
    id_prefix: str,
    prompts: list[Prompt],
    tokens_per_prompt: list[int],
    max_tokens: int | None,
    chunks: ChunkFormat,
    render: Callable[[Plan, Usage], Iterable[bytes]],
    n: int | None = None,
    shaping: ChatShaping | None = None,
    rich: ChatRender | CompletionRender | None = None,
) -> None:
    """Plan the answer to a chat or completions ``body`` and send it: whole when due, or streamed.

    ``n`` counts every answer of a completions request with several prompts (``body.n`` for
    each). The request has been admitted. ``shaping`` draws a chat answer with reasoning, tool
    calls or JSON content, ``rich`` renders what is more than prose (``render`` then being its
    ``parts``); both ``None`` for plain answers.
    """
    plan = await plan_answer(
        engine,
        registry,
        exchange,
        id_prefix=id_prefix,
        model=body.model,
        prompts=prompts,
        tokens_per_prompt=tokens_per_prompt,
        max_tokens=max_tokens,
        n=body.n,
        choices=n,
        min_tokens=body.min_tokens,
        ignore_eos=body.ignore_eos,
        stop=body.stop,
        seed=body.seed,
        stream=body.stream,
        shaping=shaping,
    )
    reasoning = reasoning_tokens(plan) if shaping is not None and shaping.reasons else None
    if body.stream:
        open_stream(registry, exchange)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        if rich is not None:
            rich.prompt_tokens = plan.prompt_tokens
        body = sse_body(
            engine,
            plan,
            exchange,
            chunks,
            registry.clock,
            include_usage,
            functools.partial(_stream_usage, plan.prompt_tokens, plan.cached_tokens, reasoning),
            registry.writer.gaps if exchange.recording else None,
            rich,
        )
        await send_event_stream(exchange, receive, body, engine)
        return
    usage = _usage(plan.prompt_tokens, plan.completion_tokens, plan.cached_tokens, reasoning)
    # (partials, not lambdas: a lambda would make generate's locals closure cells, for every request)
    await send_when_due(engine, exchange, receive, plan, functools.partial(render, plan, usage))


def answer_parts(envelope: bytes, field: bytes, items: Iterable[bytes]) -> Iterator[bytes]:
    """A JSON answer in parts of about ``PART_BYTES`` (the last one shorter).

    ``envelope`` is the answer encoded with an empty list as its ``field`` (e.g.
    ``b'"choices"'``), ``items`` the encoded elements of that list, made one by one as the
    parts are asked for. The list's key cannot occur earlier in the envelope: inside a JSON
    string every quote is escaped.
    """
    split = envelope.index(field + b":[]") + len(field) + 2
    return comma_parts(envelope[:split], items, envelope[split:])
