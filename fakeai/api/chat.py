"""``POST /v1/chat/completions``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import msgspec
from litestar import asgi
from litestar.handlers import ASGIRouteHandler

from fakeai.api.generation import admit, answer_parts, generate, read_request
from fakeai.api.schemas import AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionRequest, Usage
from fakeai.api.streaming import CHAT_CHUNKS
from fakeai.simulation.tokens import render_chat

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from fakeai.api.engine import Engine, Plan
    from fakeai.metrics import MetricsRegistry

__all__ = ("chat_completions_handler",)


def chat_completions_handler(engine: Engine, registry: MetricsRegistry, max_body_bytes: int) -> ASGIRouteHandler:
    decode = msgspec.json.Decoder(ChatCompletionRequest).decode
    encode = msgspec.json.Encoder().encode

    def render(plan: Plan, usage: Usage) -> Iterator[bytes]:
        envelope = encode(ChatCompletion(id=plan.id, created=plan.created, model=plan.model, choices=[], usage=usage))
        choices = (
            encode(
                ChatChoice(
                    index=index,
                    message=AssistantMessage(role="assistant", content=engine.choice_text(choice)),
                    finish_reason=choice.finish_reason,
                )
            )
            for index, choice in enumerate(plan.choices)
        )
        return answer_parts(envelope, b'"choices"', choices)

    @asgi("/v1/chat/completions", copy_scope=False)
    async def create_chat_completion(scope: Scope, receive: Receive, send: Send) -> None:
        body, exchange = await read_request(scope, receive, decode, max_body_bytes)
        engine.check_model(body.model)
        counted, prompt = engine.tokenizer.tokens(render_chat(body.messages), engine.limits.prompt_tokens)
        prompt_tokens = engine.limits.counted_prompt_tokens(counted, "messages")
        max_tokens = body.max_completion_tokens or body.max_tokens
        engine.check_context(prompt_tokens, max_tokens)
        engine.limits.check_prompt_tokens(prompt_tokens, "messages")
        engine.limits.check_generation(
            n=body.n,
            prompts=1,
            max_tokens=max_tokens,
            max_tokens_param="max_completion_tokens" if body.max_completion_tokens else "max_tokens",
        )
        admit(engine, registry, exchange, body.model, "/v1/chat/completions")
        await generate(
            receive,
            engine=engine,
            registry=registry,
            exchange=exchange,
            body=body,
            id_prefix="chatcmpl",
            prompts=[prompt],
            tokens_per_prompt=[prompt_tokens],
            max_tokens=max_tokens,
            chunks=CHAT_CHUNKS,
            render=render,
        )

    return create_chat_completion
