"""fakeai's tokenizer approximation (``--tokenizer approx``): one token per four characters.

Real BPE tokenizers average about four characters of English text per token, so fakeai
counts ``ceil(len(text) / 4)`` tokens in a prompt and treats characters ``4i .. 4i+3`` as
token ``i``. It costs O(1) to count and needs no vocabulary. (Generated answers do not need
it: they are made of real tokens, ``text.py``; ``tokenizers.py`` counts prompts exactly when
asked.)

A chat request is rendered into one prompt text (a simple chat template) before counting,
so the count includes the role markers, as a real chat template's tokens are counted.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ("CHARS_PER_TOKEN", "IMAGE_TOKENS", "count_tokens", "render_chat", "render_tools")

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 85
"""Tokens an image part counts for (OpenAI's low-detail cost)."""

_IMAGE_PLACEHOLDER = " img" * IMAGE_TOKENS
"""An image part in the rendered prompt: ``IMAGE_TOKENS`` tokens by any count (4 characters each,
and one token each to o200k_base and cl100k_base)."""


def count_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def _content_text(content: object) -> str:
    """A message's content as text: a string, or the text of its parts (images as placeholders)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    pieces = []
    for part in content:  # type: ignore[attr-defined]
        text = getattr(part, "text", None)
        pieces.append(text if text is not None else _IMAGE_PLACEHOLDER)
    return "".join(pieces)


def _calls_text(calls: Iterable[object]) -> str:
    """An assistant message's tool calls, as a template renders them: name and arguments."""
    return "".join(f"<|call|>{call.function.name}({call.function.arguments})" for call in calls)  # type: ignore[attr-defined]


def render_chat(messages: Iterable[object]) -> str:
    """The prompt a chat template would produce: ``<|role|>\\ncontent\\n`` per message (an
    assistant message's tool calls after its content)."""
    rendered = []
    for message in messages:
        content = message.content  # type: ignore[attr-defined]
        text = content if type(content) is str else _content_text(content)
        calls = getattr(message, "tool_calls", None)
        role = message.role  # type: ignore[attr-defined]
        rendered.append(f"<|{role}|>\n{text}{_calls_text(calls) if calls else ''}\n")
    rendered.append("<|assistant|>\n")
    return "".join(rendered)


def render_tools(tools: Iterable[object]) -> str:
    """The tool definitions a chat template puts before the messages: each function's name,
    description and parameters' JSON Schema (the request's bytes), one a line."""
    lines = ["<|tools|>\n"]
    for tool in tools:
        function = tool.function  # type: ignore[attr-defined]
        parameters = bytes(function.parameters) if function.parameters is not None else b""
        lines.append(f"{function.name}: {function.description or ''} {parameters.decode(errors='replace')}\n")
    return "".join(lines)
