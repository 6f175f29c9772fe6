"""The Responses API's request and response shapes (``POST /v1/responses``), as msgspec Structs.

Shapes follow the openai SDK's ``types/responses``. Requests accept fields they do not know
(clients send vendor extras); the fields of the API that fakeai does not implement are declared
so that the handler can refuse them by name. A response sends its ``null`` fields, as OpenAI
does (``error``, ``incomplete_details``, ``previous_response_id``...), so clients that read them
without a default find them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

__all__ = (
    "FunctionCallItem",
    "InputItem",
    "InputPart",
    "MessageItem",
    "OutputText",
    "ReasoningItem",
    "ReasoningText",
    "Response",
    "ResponseUsage",
    "ResponsesRequest",
)

PositiveInt = Annotated[int, Meta(ge=1)]


# -- requests ------------------------------------------------------------------------------


class InputPart(msgspec.Struct, kw_only=True):
    """A part of an input message's ``content`` (``input_text``, ``output_text``, ``input_image``,
    ...), of a function call's output, or of a reasoning item's ``summary`` or ``content``."""

    type: str
    text: str | None = None
    refusal: str | None = None


class InputItem(msgspec.Struct, kw_only=True):
    """One item of ``input``: a message (``type`` may be left out), a function call, its
    output, or a reasoning item, as a client sends back the output of an earlier response."""

    type: str = "message"
    role: str | None = None
    content: str | list[InputPart] | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | list[InputPart] | None = None
    summary: list[InputPart] | None = None
    encrypted_content: str | None = None


class ReasoningConfig(msgspec.Struct, kw_only=True, omit_defaults=True):
    effort: Literal["low", "medium", "high"] | None = None
    """The efforts gpt-oss (and vLLM serving it) accepts."""
    summary: Literal["auto", "concise", "detailed"] | None = None


class TextFormat(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: Literal["text", "json_object", "json_schema"]
    name: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    schema: msgspec.Raw = msgspec.Raw()
    """The JSON Schema of ``json_schema``, kept as the request's bytes (empty: none given;
    compiled once per distinct schema)."""
    strict: bool | None = None
    description: str | None = None


class TextConfig(msgspec.Struct, kw_only=True, omit_defaults=True):
    format: TextFormat = msgspec.field(default_factory=lambda: TextFormat(type="text"))
    verbosity: Literal["low", "medium", "high"] | None = None


FunctionName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_.-]+$")]


class Tool(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A tool offered to the model: ``function`` ones are called; the built-in ones are refused."""

    type: str
    name: FunctionName | None = None
    description: str | None = None
    parameters: msgspec.Raw = msgspec.Raw()
    """Its JSON Schema, kept as the request's bytes (empty: none given; compiled once per
    distinct schema)."""
    strict: bool | None = None


class ResponsesRequest(msgspec.Struct, kw_only=True):
    model: str
    input: str | Annotated[list[InputItem], Meta(min_length=1)]
    instructions: str | None = None
    max_output_tokens: PositiveInt | None = None
    stream: bool = False
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    reasoning: ReasoningConfig | None = None
    text: TextConfig | None = None
    tools: Annotated[list[Tool], Meta(max_length=128)] = []
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool = True
    max_tool_calls: PositiveInt | None = None
    metadata: dict[str, str] | None = None
    truncation: Literal["auto", "disabled"] = "disabled"
    store: bool = True
    """Accepted either way (the API's default is true); nothing is stored."""
    include: list[str] = []
    # -- what a stateless server cannot do: refused when set ----------------------------------
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    background: bool = False
    prompt: dict[str, Any] | None = None
    top_logprobs: int | None = None
    # -- vLLM's extras, as the chat endpoint takes them -------------------------------------
    ignore_eos: bool = False
    min_tokens: Annotated[int, Meta(ge=0)] = 0
    seed: int | None = None


# -- responses -----------------------------------------------------------------------------


class _Sent(msgspec.Struct, kw_only=True):
    pass


class OutputText(_Sent, kw_only=True, tag_field="type", tag="output_text"):
    text: str
    annotations: list[Any] = []
    logprobs: list[Any] = []


class ReasoningText(_Sent, kw_only=True, tag_field="type", tag="reasoning_text"):
    text: str


class MessageItem(_Sent, kw_only=True, tag_field="type", tag="message"):
    id: str
    status: str
    role: str = "assistant"
    content: list[OutputText] = []


class ReasoningItem(_Sent, kw_only=True, tag_field="type", tag="reasoning"):
    id: str
    summary: list[Any] = []
    content: list[ReasoningText] | None = None
    encrypted_content: str | None = None


class FunctionCallItem(_Sent, kw_only=True, tag_field="type", tag="function_call"):
    id: str
    call_id: str
    name: str
    arguments: str
    status: str


OutputItem = MessageItem | ReasoningItem | FunctionCallItem


class InputTokensDetails(_Sent, kw_only=True):
    cached_tokens: int
    cache_write_tokens: int = 0
    """Tokens written to an explicit prompt cache: fakeai has none."""


class OutputTokensDetails(_Sent, kw_only=True):
    reasoning_tokens: int


class ResponseUsage(_Sent, kw_only=True):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class IncompleteDetails(_Sent, kw_only=True):
    reason: str


class ResponseError(_Sent, kw_only=True):
    code: str
    message: str


class Response(_Sent, kw_only=True, tag_field="object", tag="response"):
    id: str
    created_at: int
    status: str
    completed_at: int | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    model: str
    output: list[OutputItem] = []
    parallel_tool_calls: bool
    previous_response_id: None = None
    reasoning: ReasoningConfig
    store: bool = False
    """Always false: a stateless server stores nothing, whatever the request asked."""
    temperature: float
    text: TextConfig
    tool_choice: str | dict[str, Any]
    tools: list[Tool]
    top_p: float
    truncation: str
    usage: ResponseUsage | None = None
    metadata: dict[str, str] = {}
