"""``POST /v1/chat/completions``."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgspec
from litestar.handlers import ASGIRouteHandler

from fakeai.api.errors import APIError
from fakeai.api.generation import WHOLE_ANSWER_TOKENS, admit, answer_parts, generate, read_request
from fakeai.api.rich import ChatRender
from fakeai.api.routes import asgi
from fakeai.api.schemas import AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionRequest, Usage
from fakeai.api.shaping import Features, needs_shaping
from fakeai.api.streaming import CHAT_CHUNKS
from fakeai.simulation.tokens import render_chat, render_tools

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from fakeai.api.engine import Choice, Engine, Plan
    from fakeai.api.schemas import CompletionRequest
    from fakeai.metrics import MetricsRegistry

__all__ = ("chat_completions_handler",)


def check_stream_options(body: ChatCompletionRequest | CompletionRequest) -> None:
    """400 for ``stream_options`` without ``stream`` (OpenAI's and vLLM's rule)."""
    if body.stream_options is not None and not body.stream:
        raise APIError(
            400,
            "Invalid value for 'stream_options': 'stream_options' is only allowed when 'stream' is true.",
            param="stream_options",
            code="invalid_value",
        )


def chat_completions_handler(engine: Engine, registry: MetricsRegistry, max_body_bytes: int) -> ASGIRouteHandler:
    decode = msgspec.json.Decoder(ChatCompletionRequest).decode
    encode = msgspec.json.Encoder().encode
    features = Features(engine.settings)
    default_effort = features.default_effort is not None

    def choice_object(index: int, choice: Choice) -> ChatChoice:
        return ChatChoice(index=index, message=AssistantMessage(role="assistant", content=engine.choice_text(choice)),
                          finish_reason=choice.finish_reason)

    def render(plan: Plan, usage: Usage) -> Iterable[bytes]:
        choices = map(choice_object, itertools.count(), plan.choices)
        if plan.completion_tokens <= WHOLE_ANSWER_TOKENS:
            whole = ChatCompletion(
                id=plan.id, created=plan.created, model=plan.model, choices=list(choices), usage=usage
            )
            return (encode(whole),)
        envelope = encode(ChatCompletion(id=plan.id, created=plan.created, model=plan.model, choices=[], usage=usage))
        return answer_parts(envelope, b'"choices"', map(encode, choices))

    @asgi("/v1/chat/completions", copy_scope=False)
    async def create_chat_completion(scope: Scope, receive: Receive, send: Send) -> None:
        body, exchange = await read_request(scope, receive, decode, max_body_bytes)
        engine.check_model(body.model)
        shaping = rich = None
        prompt_text = render_chat(body.messages)
        if default_effort or needs_shaping(body):
            shaping = features.chat(body)
            if body.tools:
                prompt_text = render_tools(body.tools) + prompt_text
        if body.stream_options is not None or body.logprobs is not None or body.top_logprobs is not None:
            check_stream_options(body)
            rich = _logprobs_render(engine, features, body, shaping is not None)
        elif shaping is not None:
            rich = ChatRender(engine, features.reasoning_field, False, 0, False)
        counted, prompt = engine.tokenizer.tokens(prompt_text, engine.limits.prompt_tokens)
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
            render=render if rich is None else rich.parts,
            shaping=shaping,
            rich=rich,
        )

    return create_chat_completion


def _logprobs_render(engine: Engine, features: Features, body: ChatCompletionRequest, shaped: bool) -> ChatRender | None:
    """The render of a request with ``logprobs`` or ``stream_options`` (``None``: a plain one will do)."""
    if body.top_logprobs is not None and not body.logprobs:
        raise APIError(400, "Invalid value for 'top_logprobs': 'top_logprobs' requires 'logprobs' to be true.",
                       param="top_logprobs", code="invalid_value")
    continuous = bool(body.stream_options and body.stream_options.continuous_usage_stats)
    if not (body.logprobs or continuous or shaped):
        return None
    return ChatRender(engine, features.reasoning_field, bool(body.logprobs), body.top_logprobs or 0, continuous)
