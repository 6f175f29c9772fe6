"""Reading an Anthropic Messages request: its prompt, and what it asks of the answer.

The ``system`` prompt, the ``messages`` and the custom ``tools`` are rendered as a chat
request's messages and tools are (``tokens.render_chat``, ``render_tools``), the way vLLM turns
a Messages request into a chat one: ``system`` is a system message, a message's text and images
its content, its ``tool_use`` blocks the tool calls of the assistant message, each
``tool_result`` a ``tool`` message of its own, and ``thinking`` blocks are left out (as chat
leaves out the reasoning of earlier turns). So a conversation costs the same prompt tokens here
as on ``/v1/chat/completions``.

The answer is shaped as chat's (``typed_shaping``): a reasoning model thinks when ``thinking``
is ``enabled`` (at most ``budget_tokens``), ``adaptive`` or ``between_tools``, at
``output_config.effort`` (else the server's default effort, else medium), or, with
``thinking`` left out, at the server's default effort; ``disabled`` never thinks. Custom
``tools`` are called as ``tool_choice`` says (``auto``, ``any``, ``tool``, ``none``;
``disable_parallel_tool_use``); ``output_config.format`` asks for JSON content. Server tools
are refused with a 400.
"""

from __future__ import annotations

import copy
import random
from typing import NamedTuple

import msgspec

from fakeai.api.anthropic_schemas import (
    ContentBlock,
    ImageBlock,
    MessagesRequest,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from fakeai.api.errors import APIError
from fakeai.api.shaping import ChatShaping, Features
from fakeai.api.typed_shaping import FunctionSpec, ToolSpec, effort_for, shaping
from fakeai.simulation.tokens import render_chat, render_tools

__all__ = ("MIN_THINKING_BUDGET", "read_shaping", "render_messages")

MIN_THINKING_BUDGET = 1024
"""Anthropic's smallest ``thinking.budget_tokens``."""


class _Part(NamedTuple):
    """A part of a rendered message: text, or an image (``text`` None)."""

    text: str | None


class _Function(NamedTuple):
    name: str
    arguments: str


class _Call(NamedTuple):
    function: _Function


class _Turn(NamedTuple):
    role: str
    content: str | list[_Part]
    tool_calls: list[_Call] | None = None


def _tool_result(block: ToolResultBlock) -> _Turn:
    content = block.content
    if isinstance(content, str):
        return _Turn("tool", content)
    return _Turn("tool", [_Part(part.text if isinstance(part, TextBlock) else None) for part in content])


def _message_turns(role: str, content: list[ContentBlock]) -> list[_Turn]:
    turns: list[_Turn] = []
    parts: list[_Part] = []
    calls: list[_Call] = []
    for block in content:
        if isinstance(block, ToolResultBlock):
            if parts or calls:
                turns.append(_Turn(role, parts, calls or None))
                parts, calls = [], []
            turns.append(_tool_result(block))
        elif isinstance(block, TextBlock):
            parts.append(_Part(block.text))
        elif isinstance(block, ImageBlock):
            parts.append(_Part(None))
        elif isinstance(block, ToolUseBlock):
            calls.append(_Call(_Function(block.name, msgspec.json.encode(block.input).decode())))
        # thinking and redacted thinking: left out of the prompt
    if parts or calls or not content:
        turns.append(_Turn(role, parts, calls or None))
    return turns


def _tools(body: MessagesRequest) -> list[ToolSpec]:
    return [
        ToolSpec(FunctionSpec(tool.name, tool.description, tool.input_schema, f"tools[{number}].input_schema"))
        for number, tool in enumerate(body.tools or ())
    ]


def render_messages(body: MessagesRequest) -> str:
    """The prompt of a Messages request: its tools, system prompt and messages, rendered as chat
    renders them."""
    turns: list[_Turn] = []
    system = body.system
    if system:
        turns.append(_Turn("system", system if isinstance(system, str) else "".join(b.text for b in system)))
    for message in body.messages:
        content = message.content
        if isinstance(content, str):
            turns.append(_Turn(message.role, content))
        else:
            turns.extend(_message_turns(message.role, content))
    prompt = render_chat(turns)
    return render_tools(_tools(body)) + prompt if body.tools else prompt


class _Budget:
    """Reasoning lengths at most ``budget`` tokens (``thinking.budget_tokens``)."""

    __slots__ = ("budget", "lengths")

    def __init__(self, lengths: object, budget: int) -> None:
        self.lengths = lengths
        self.budget = budget

    def draw(self, rng: random.Random, effort: str) -> int:
        return min(self.lengths.draw(rng, effort), self.budget)  # type: ignore[attr-defined]


def _invalid(param: str, message: str) -> APIError:
    return APIError(400, f"{param}: {message}", param=param, code="invalid_value")


def _effort(features: Features, body: MessagesRequest) -> tuple[str | None, Features]:
    """The reasoning effort of the answer, and the features to draw it with (its budget)."""
    thinking = body.thinking
    asked = body.output_config.effort if body.output_config is not None else None
    if thinking is None:
        return effort_for(features, body.model, asked, "output_config.effort"), features
    if thinking.type == "disabled":
        return None, features
    effort = effort_for(features, body.model, asked or features.default_effort or "medium", "thinking")
    if thinking.type != "enabled":
        return effort, features
    budget = thinking.budget_tokens
    if budget is None:
        raise _invalid("thinking.budget_tokens", "Field required when thinking is enabled.")
    if budget < MIN_THINKING_BUDGET:
        raise _invalid("thinking.budget_tokens", f"Input should be greater than or equal to {MIN_THINKING_BUDGET}.")
    if budget >= body.max_tokens:
        raise _invalid("max_tokens", "`max_tokens` must be greater than `thinking.budget_tokens`.")
    budgeted = copy.copy(features)
    budgeted.reasoning_lengths = _Budget(features.reasoning_lengths, budget)  # type: ignore[assignment]
    return effort, budgeted


def _mode(body: MessagesRequest) -> tuple[str, bool]:
    """``tool_choice`` as ``shaping`` reads it, and whether calls may come several at once."""
    choice = body.tool_choice
    if choice is None:
        return "auto", True
    parallel = not choice.disable_parallel_tool_use
    if choice.type == "tool":
        if choice.name is None:
            raise _invalid("tool_choice.name", "Field required when tool_choice.type is tool.")
        return "=" + choice.name, parallel
    return {"auto": "auto", "any": "required", "none": "none"}[choice.type], parallel


def read_shaping(features: Features, body: MessagesRequest) -> ChatShaping | None:
    """What the request asks of its answer beyond prose (``None``: prose), or a 400."""
    for number, tool in enumerate(body.tools or ()):
        if tool.type not in (None, "custom"):
            raise _invalid(f"tools[{number}].type", f"fakeai calls custom tools only, not the server tool "
                           f"'{tool.type}'.")
        if not tool.input_schema:
            raise _invalid(f"tools[{number}].input_schema", "Field required.")
    effort, features = _effort(features, body)
    mode, parallel = _mode(body)
    output = body.output_config
    content = None
    if output is not None and output.format is not None:
        content = features.schema(output.format.schema, {}, "output_config.format.schema")
    return shaping(
        features,
        effort=effort,
        tools=_tools(body),
        mode=mode,
        parallel=parallel,
        content=content,
        ignore_eos=body.ignore_eos,
        min_tokens=body.min_tokens,
    )
