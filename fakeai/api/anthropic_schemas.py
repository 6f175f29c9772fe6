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
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: Annotated[int, Meta(ge=1)] | None = None


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
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    # -- vLLM's extras, as the chat endpoint takes them -------------------------------------
    ignore_eos: bool = False
    min_tokens: Annotated[int, Meta(ge=0)] = 0
    seed: int | None = None


# -- responses -----------------------------------------------------------------------------


class MessageUsage(msgspec.Struct, kw_only=True):
    """Anthropic's usage: ``input_tokens`` are the prompt tokens not read from the (simulated)
    prefix cache, ``cache_read_input_tokens`` those that were; the prompt is their sum."""

    input_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int
    output_tokens: int


class TextContent(msgspec.Struct, kw_only=True, tag_field="type", tag="text"):
    text: str


class Message(msgspec.Struct, kw_only=True, tag_field="type", tag="message"):
    id: str
    role: str = "assistant"
    model: str
    content: list[TextContent]
    stop_reason: str | None
    stop_sequence: str | None
    usage: MessageUsage


class AnthropicError(msgspec.Struct, kw_only=True):
    type: str
    message: str


class AnthropicErrorBody(msgspec.Struct, kw_only=True, tag_field="type", tag="error"):
    error: AnthropicError
