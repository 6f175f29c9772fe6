"""``POST /v1/messages``: Anthropic's Messages API, for the anthropic SDK and the agents built on it.

The ``system`` prompt and the ``messages`` (text, images, tool uses and results, thinking) are
rendered with the chat template (``tokens.render_chat``) and counted as a chat prompt is, so a
conversation costs the same prompt tokens here as on ``/v1/chat/completions``. The answer is
planned, paced and recorded as a chat answer is (``generation``) and sent whole when due or as
the Messages stream (``anthropic_stream``). ``max_tokens`` is required, as Anthropic requires
it; ``stop_sequences`` end the answer before the first one (``stop_reason: stop_sequence``).

Errors have Anthropic's shape (``anthropic_errors``); ``anthropic-version`` is accepted, whatever
its value, and not required.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import msgspec
from litestar import asgi
from litestar.handlers import ASGIRouteHandler

from fakeai.api.anthropic_errors import ANTHROPIC_EXCEPTION_HANDLERS, anthropic_key_guard
from fakeai.api.anthropic_schemas import (
    ContentBlock,
    ImageBlock,
    MessagesRequest,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from fakeai.api.anthropic_stream import MessageAnswer, MessageEvents
from fakeai.api.errors import APIError
from fakeai.api.event_streams import typed_events
from fakeai.api.generation import admit, answer_parts, open_stream, plan_answer, read_request, send_when_due
from fakeai.api.responses import send_event_stream
from fakeai.simulation.tokens import render_chat

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from fakeai.api.engine import Engine
    from fakeai.metrics import MetricsRegistry

__all__ = ("ENDPOINT", "messages_handler", "render_messages")

ENDPOINT = "/v1/messages"


class _Part(NamedTuple):
    """A part of a rendered message: text, or an image (``text`` None)."""

    text: str | None


class _Turn(NamedTuple):
    role: str
    content: str | list[_Part]


def _block_part(block: ContentBlock) -> _Part | None:
    """What a content block adds to its message's text (``None``: nothing)."""
    if isinstance(block, TextBlock):
        return _Part(block.text)
    if isinstance(block, ImageBlock):
        return _Part(None)
    if isinstance(block, ToolUseBlock):
        return _Part(f"{block.name}({msgspec.json.encode(block.input).decode()})")
    if isinstance(block, ThinkingBlock):
        return _Part(block.thinking)
    return None  # redacted thinking: opaque to the model's template


def _tool_result(block: ToolResultBlock) -> _Turn:
    content = block.content
    if isinstance(content, str):
        return _Turn("tool", content)
    return _Turn("tool", [_Part(part.text if isinstance(part, TextBlock) else None) for part in content])


def render_messages(body: MessagesRequest) -> str:
    """The prompt of a Messages request: its system prompt and messages, rendered with the chat
    template (a tool result is a ``tool`` message of its own, as vLLM renders it)."""
    turns: list[_Turn] = []
    system = body.system
    if system:
        turns.append(_Turn("system", system if isinstance(system, str) else "".join(b.text for b in system)))
    for message in body.messages:
        content = message.content
        if isinstance(content, str):
            turns.append(_Turn(message.role, content))
            continue
        parts: list[_Part] = []
        for block in content:
            if isinstance(block, ToolResultBlock):
                if parts:
                    turns.append(_Turn(message.role, parts))
                    parts = []
                turns.append(_tool_result(block))
                continue
            part = _block_part(block)
            if part is not None:
                parts.append(part)
        if parts or not content:
            turns.append(_Turn(message.role, parts))
    return render_chat(turns)


def _refuse_unimplemented(body: MessagesRequest) -> None:
    if body.tools:
        raise APIError(400, "tools: fakeai does not call tools on /v1/messages yet.", param="tools")
    if body.tool_choice is not None:
        raise APIError(400, "tool_choice: only allowed when 'tools' are given.", param="tool_choice")
    if body.thinking is not None and body.thinking.type != "disabled":
        raise APIError(400, "thinking: fakeai does not think on /v1/messages yet.", param="thinking")


def messages_handler(
    engine: Engine, registry: MetricsRegistry, max_body_bytes: int, api_keys: tuple[str, ...]
) -> ASGIRouteHandler:
    decode = msgspec.json.Decoder(MessagesRequest).decode
    encode = msgspec.json.Encoder().encode

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
        _refuse_unimplemented(body)
        engine.check_model(body.model)
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
        )
        answer = MessageAnswer(engine, plan)
        if body.stream:
            open_stream(registry, exchange)
            gaps = registry.writer.gaps if exchange.recording else None
            events = typed_events(engine, plan, exchange, MessageEvents(answer), registry.clock, gaps)
            await send_event_stream(exchange, receive, events)
            return
        await send_when_due(engine, exchange, receive, plan, lambda: render(answer))

    return create_message
