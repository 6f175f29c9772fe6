"""vLLM's ``POST /tokenize`` and ``POST /detokenize``, with the tokenizer that counts prompts.

``/tokenize`` takes a ``prompt`` (as ``/v1/completions`` does) or ``messages`` (as
``/v1/chat/completions`` does, with its ``tools``), renders and counts them exactly as those
endpoints do, and answers vLLM's ``{"count", "max_model_len", "tokens", "token_strs"}``: ``count``
is the ``usage.prompt_tokens`` the same prompt gets, whatever ``--tokenizer`` says. The ids are
the real encoding's (``o200k_base``, ``cl100k_base``) or ``approx``'s (``approx_ids``: one per
four characters); ``return_token_strs`` adds each token's text (a token that is part of a
character is U+FFFD). ``add_generation_prompt`` (default true) and ``continue_final_message``
shape the rendered chat as vLLM's do; ``add_special_tokens`` is accepted and changes nothing
(fakeai's template adds no special tokens, on any endpoint).

``/detokenize`` takes ``tokens`` and answers ``{"prompt"}``; an id the tokenizer cannot decode is
a 400 naming it. Both refuse a prompt beyond the request limit or the context (``max_model_len``)
with a 400, as vLLM does; both are recorded under their own endpoint (requests, latency,
errors), and neither counts prompt tokens in the metrics: no model read them. Like vLLM's, they
are outside ``/v1`` and need no API key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar.handlers import ASGIRouteHandler
from msgspec import Meta

from fakeai.api.errors import APIError
from fakeai.api.generation import read_request
from fakeai.api.responses import send_json
from fakeai.api.routes import asgi
from fakeai.api.schemas import ChatMessage, TokenId, Tool
from fakeai.simulation.tokens import render_chat, render_tools

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from fakeai.api.engine import Engine

__all__ = ("tokenize_handlers",)

_GENERATION_PROMPT = "<|assistant|>\n"
"""What ``render_chat`` ends a chat with: the generation prompt."""


class TokenizeRequest(msgspec.Struct, kw_only=True):
    """vLLM's ``TokenizeCompletionRequest`` or ``TokenizeChatRequest``: ``prompt`` or ``messages``."""

    model: str | None = None
    prompt: str | None = None
    messages: Annotated[list[ChatMessage], Meta(min_length=1)] | None = None
    tools: Annotated[list[Tool], Meta(max_length=128)] | None = None
    add_special_tokens: bool | None = None
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    return_token_strs: bool = False
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None


class TokenizeResponse(msgspec.Struct, kw_only=True):
    """vLLM's shape, ``token_strs`` null unless asked for."""

    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeRequest(msgspec.Struct, kw_only=True):
    model: str | None = None
    tokens: list[TokenId]


class DetokenizeResponse(msgspec.Struct, kw_only=True):
    prompt: str


def _invalid(message: str, param: str) -> APIError:
    return APIError(400, message, param=param, code="invalid_value")


def _prompt_text(body: TokenizeRequest) -> tuple[str, str]:
    """The text a tokenize request counts, as the completions or chat endpoint renders it, and
    its field."""
    if (body.prompt is None) == (body.messages is None):
        raise _invalid("Send either 'prompt' or 'messages'.", "prompt" if body.prompt is None else "messages")
    if body.prompt is not None:
        return body.prompt, "prompt"
    if body.chat_template is not None or body.chat_template_kwargs is not None:
        field = "chat_template" if body.chat_template is not None else "chat_template_kwargs"
        raise _invalid(f"fakeai renders every chat with its own template: '{field}' is not supported.", field)
    if body.continue_final_message and body.add_generation_prompt:
        raise _invalid(
            "Cannot set both `continue_final_message` and `add_generation_prompt` to True.", "continue_final_message"
        )
    text = render_chat(body.messages)  # type: ignore[arg-type]
    if not body.add_generation_prompt:
        text = text[: -len(_GENERATION_PROMPT)]
        if body.continue_final_message:  # the last message stays open: no end of line after it
            text = text[:-1]
    if body.tools:
        text = render_tools(body.tools) + text
    return text, "messages"


def tokenize_handlers(engine: Engine, max_body_bytes: int) -> list[ASGIRouteHandler]:
    decode_tokenize = msgspec.json.Decoder(TokenizeRequest).decode
    decode_detokenize = msgspec.json.Decoder(DetokenizeRequest).decode
    encode = msgspec.json.Encoder().encode
    tokenizer = engine.tokenizer
    limits = engine.limits

    @asgi("/tokenize", copy_scope=False)
    async def tokenize(scope: Scope, receive: Receive, send: Send) -> None:
        body, exchange = await read_request(scope, receive, decode_tokenize, max_body_bytes)
        if body.model is not None:
            engine.check_model(body.model)
        text, field = _prompt_text(body)
        counted, prompt = tokenizer.tokens(text, limits.prompt_tokens)
        count = limits.counted_prompt_tokens(counted, field)
        limits.check_prompt_tokens(count, field)
        engine.check_context(count, 0, field)
        ids = tokenizer.ids(text, prompt)
        strings = tokenizer.token_texts(ids if tokenizer.exact else text) if body.return_token_strs else None
        answer = TokenizeResponse(count=count, max_model_len=engine.max_context_tokens, tokens=ids, token_strs=strings)
        await send_json(exchange, encode(answer))

    @asgi("/detokenize", copy_scope=False)
    async def detokenize(scope: Scope, receive: Receive, send: Send) -> None:
        body, exchange = await read_request(scope, receive, decode_detokenize, max_body_bytes)
        if body.model is not None:
            engine.check_model(body.model)
        ids = body.tokens
        limits.check_prompt_tokens(len(ids), "tokens")
        engine.check_context(len(ids), 0, "tokens")
        unknown = tokenizer.unknown(ids)
        if unknown is not None:
            raise _invalid(
                f"Token id {ids[unknown]} (at 'tokens[{unknown}]') is not a token --tokenizer {tokenizer.name} can "
                "decode" + (" (an approx id of a piece that is not ASCII)." if not tokenizer.exact else "."),
                f"tokens[{unknown}]",
            )
        await send_json(exchange, encode(DetokenizeResponse(prompt=tokenizer.decode(ids))))

    return [tokenize, detokenize]
