"""``POST /v1/messages``: Anthropic's Messages API, for the anthropic SDK and the agents built on it.

The request is read as ``anthropic_input`` says (its prompt counted as chat counts the same
conversation; thinking, tools and JSON formats shaping the answer as on chat). The answer is
planned, paced and recorded as a chat answer is (``generation``) and sent whole when due or as
the Messages stream (``anthropic_stream``). ``max_tokens`` is required, as Anthropic requires
it; ``stop_sequences`` end the answer before the first one (``stop_reason: stop_sequence``).

Errors have Anthropic's shape (``anthropic_errors``); ``anthropic-version`` is accepted, whatever
its value, and not required.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import msgspec
from litestar.handlers import ASGIRouteHandler

from fakeai.api.anthropic_errors import ANTHROPIC_EXCEPTION_HANDLERS, anthropic_key_guard
from fakeai.api.anthropic_input import read_shaping, render_messages
from fakeai.api.anthropic_schemas import MessagesRequest
from fakeai.api.anthropic_stream import MessageAnswer, MessageEvents
from fakeai.api.event_streams import typed_body
from fakeai.api.generation import admit, answer_parts, open_stream, plan_answer, read_request, send_when_due
from fakeai.api.responses import send_event_stream
from fakeai.api.routes import asgi
from fakeai.api.shaping import Features

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from fakeai.api.engine import Engine
    from fakeai.metrics import MetricsRegistry

__all__ = ("ENDPOINT", "messages_handler")

ENDPOINT = "/v1/messages"


def messages_handler(
    engine: Engine, registry: MetricsRegistry, max_body_bytes: int, api_keys: tuple[str, ...]
) -> ASGIRouteHandler:
    decode = msgspec.json.Decoder(MessagesRequest).decode
    encode = msgspec.json.Encoder().encode
    features = Features(engine.settings)

    def render(answer: MessageAnswer) -> Iterator[bytes]:
        envelope = encode(answer.message([], True, answer.plan.completion_tokens))
        return answer_parts(envelope, b'"content"', map(encode, answer.content()))

    @asgi(
        ENDPOINT,
        copy_scope=False,
        exception_handlers=ANTHROPIC_EXCEPTION_HANDLERS,
        guards=[anthropic_key_guard(api_keys)] if api_keys else None,
    )
    async def create_message(scope: Scope, receive: Receive, send: Send) -> None:
        body, exchange = await read_request(scope, receive, decode, max_body_bytes)
        engine.check_model(body.model)
        shaping = read_shaping(features, body)
        counted, prompt = engine.tokenizer.tokens(render_messages(body), engine.limits.prompt_tokens)
        prompt_tokens = engine.limits.counted_prompt_tokens(counted, "messages")
        engine.check_context(prompt_tokens, body.max_tokens)
        engine.limits.check_prompt_tokens(prompt_tokens, "messages")
        engine.limits.check_generation(n=1, prompts=1, max_tokens=body.max_tokens)
        admit(engine, registry, exchange, body.model, ENDPOINT)
        plan = await plan_answer(
            engine,
            registry,
            exchange,
            id_prefix="msg",
            model=body.model,
            prompts=[prompt],
            tokens_per_prompt=[prompt_tokens],
            max_tokens=body.max_tokens,
            min_tokens=body.min_tokens,
            ignore_eos=body.ignore_eos,
            stop=body.stop_sequences,
            seed=body.seed,
            stream=body.stream,
            shaping=shaping,
        )
        answer = MessageAnswer(engine, plan)
        if body.stream:
            open_stream(registry, exchange)
            gaps = registry.writer.gaps if exchange.recording else None
            body = typed_body(engine, plan, exchange, MessageEvents(answer), registry.clock, gaps)
            await send_event_stream(exchange, receive, body, engine)
            return
        await send_when_due(engine, exchange, receive, plan, lambda: render(answer))

    return create_message
