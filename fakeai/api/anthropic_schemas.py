"""Anthropic's Messages API shapes (``POST /v1/messages``), as msgspec Structs.

Shapes follow the anthropic SDK's ``types`` (``MessageCreateParams``, ``Message``, the raw
stream events). A content block's ``type`` picks its Struct (a tagged union), so a block of a
type fakeai does not read is a 400 naming it. Responses send their ``null`` fields
(``stop_reason``, ``stop_sequence``), as Anthropic does.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

__all__ = (
    "AnthropicError",
    "AnthropicErrorBody",
    "Message",
    "MessageUsage",
    "MessagesRequest",
    "TextBlock",
)

MAX_STOP_SEQUENCES = 64
"""Stop sequences one request may send (Anthropic documents no limit; each is searched for in
the answer, so the work is bounded here)."""


# -- requests ------------------------------------------------------------------------------


class _Block(msgspec.Struct, kw_only=True, tag_field="type"):
    pass


class TextBlock(_Block, tag="text"):
    text: str


class ImageBlock(_Block, tag="image"):
    source: dict[str, Any]


class ToolUseBlock(_Block, tag="tool_use"):
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(_Block, tag="tool_result"):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] = ""
    is_error: bool = False


class ThinkingBlock(_Block, tag="thinking"):
    thinking: str
    signature: str


class RedactedThinkingBlock(_Block, tag="redacted_thinking"):
    data: str


ContentBlock = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock


class MessageParam(msgspec.Struct, kw_only=True):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class Metadata(msgspec.Struct, kw_only=True):
    user_id: str | None = None


class ThinkingConfig(msgspec.Struct, kw_only=True):
    type: Literal["enabled", "disabled", "adaptive", "between_tools"]
    budget_tokens: int | None = None


ToolName = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_-]+$")]


class ToolParam(msgspec.Struct, kw_only=True):
    """A tool offered to the model: a custom one (``input_schema``) is called; a server tool
    (``type`` ``bash_20250124``, ``web_search_20250305``, ...) is refused."""

    name: ToolName
    description: str | None = None
    input_schema: msgspec.Raw = msgspec.Raw()
    """Its JSON Schema, kept as the request's bytes (empty: none given; compiled once per
    distinct schema)."""
    type: str | None = None


class ToolChoice(msgspec.Struct, kw_only=True):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool = False


class OutputFormat(msgspec.Struct, kw_only=True):
    type: Literal["json_schema"]
    schema: msgspec.Raw


class OutputConfig(msgspec.Struct, kw_only=True):
    effort: Literal["low", "medium", "high"] | None = None
    """The reasoning efforts fakeai's reasoning models take."""
    format: OutputFormat | None = None


StopSequence = Annotated[str, Meta(min_length=1)]


class MessagesRequest(msgspec.Struct, kw_only=True):
    model: str
    max_tokens: Annotated[int, Meta(ge=1)]
    messages: Annotated[list[MessageParam], Meta(min_length=1)]
    system: str | list[TextBlock] | None = None
    stop_sequences: Annotated[list[StopSequence], Meta(max_length=MAX_STOP_SEQUENCES)] | None = None
    temperature: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None
    stream: bool = False
    metadata: Metadata | None = None
    thinking: ThinkingConfig | None = None
    tools: Annotated[list[ToolParam], Meta(max_length=128)] | None = None
    tool_choice: ToolChoice | None = None
    output_config: OutputConfig | None = None
    # -- vLLM's extras, as the chat endpoint takes them -------------------------------------
    ignore_eos: bool = False
    min_tokens: Annotated[int, Meta(ge=0)] = 0
    seed: int | None = None


# -- responses -----------------------------------------------------------------------------


class OutputTokensDetails(msgspec.Struct, kw_only=True):
    thinking_tokens: int


class MessageUsage(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Anthropic's usage: ``input_tokens`` are the prompt tokens not read from the (simulated)
    prefix cache, ``cache_read_input_tokens`` those that were; the prompt is their sum.
    ``output_tokens_details`` is sent for an answer that thinks."""

    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    output_tokens: int
    output_tokens_details: OutputTokensDetails | None = None


class TextContent(msgspec.Struct, kw_only=True, tag_field="type", tag="text"):
    text: str


class ThinkingContent(msgspec.Struct, kw_only=True, tag_field="type", tag="thinking"):
    thinking: str
    signature: str


class ToolUseContent(msgspec.Struct, kw_only=True, tag_field="type", tag="tool_use"):
    id: str
    name: str
    input: Any


Content = TextContent | ThinkingContent | ToolUseContent


class Message(msgspec.Struct, kw_only=True, tag_field="type", tag="message"):
    id: str
    role: str = "assistant"
    model: str
    content: list[Content]
    stop_reason: str | None
    stop_sequence: str | None
    usage: MessageUsage


class AnthropicError(msgspec.Struct, kw_only=True):
    type: str
    message: str


class AnthropicErrorBody(msgspec.Struct, kw_only=True, tag_field="type", tag="error"):
    error: AnthropicError
