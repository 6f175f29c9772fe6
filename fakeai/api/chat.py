"""``POST /v1/chat/completions``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler

from fakeai.api.generation import answer, read_request
from fakeai.api.schemas import AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionRequest, Usage
from fakeai.api.streaming import CHAT_CHUNKS
from fakeai.simulation.tokens import count_tokens, render_chat

if TYPE_CHECKING:
    from fakeai.api.engine import Engine, Plan
    from fakeai.metrics import MetricsRegistry

__all__ = ("chat_completions_handler",)


def chat_completions_handler(engine: Engine, registry: MetricsRegistry) -> HTTPRouteHandler:
    decode = msgspec.json.Decoder(ChatCompletionRequest).decode
    encode = msgspec.json.Encoder().encode

    def render(plan: Plan, usage: Usage) -> bytes:
        choices = [
            ChatChoice(
                index=index,
                message=AssistantMessage(role="assistant", content=engine.choice_text(choice)),
                finish_reason=choice.finish_reason,
            )
            for index, choice in enumerate(plan.choices)
        ]
        return encode(ChatCompletion(id=plan.id, created=plan.created, model=plan.model, choices=choices, usage=usage))

    @post("/v1/chat/completions", status_code=200)
    async def create_chat_completion(request: Request[Any, Any, Any]) -> Response[Any]:
        body, exchange = await read_request(request, decode)
        engine.check_model(body.model)
        injected = engine.injected_error()
        if injected is not None:
            raise injected
        prompt_tokens = count_tokens(render_chat(body.messages))
        plan = engine.plan(
            id_prefix="chatcmpl",
            model=body.model,
            prompt_tokens=prompt_tokens,
            uncached_prompt_tokens=prompt_tokens,
            n=body.n,
            max_tokens=body.max_completion_tokens or body.max_tokens,
            min_tokens=body.min_tokens,
            ignore_eos=body.ignore_eos,
            stop=body.stop,
            seed=body.seed,
            stream=body.stream,
        )
        return await answer(
            engine=engine,
            registry=registry,
            exchange=exchange,
            plan=plan,
            stream=body.stream,
            include_usage=bool(body.stream_options and body.stream_options.include_usage),
            chunks=CHAT_CHUNKS,
            render=render,
        )

    return create_chat_completion
