"""An Anthropic Messages answer, whole (``Message``) or as the Messages API's stream.

The answer's segments (``answer_layout``) are its content blocks: ``thinking`` (a reasoning
model's reasoning, with an opaque ``signature``), ``text`` (words or JSON), or one ``tool_use``
block per tool call (its ``input`` the arguments; a call cut short by ``max_tokens`` has the
input ``{}`` in a whole answer, its pieces having been streamed).

The stream's events, in the order the anthropic SDK's ``MessageStream`` accumulates them:
``message_start`` at once (the message without content, its input tokens known); with a block's
first token ``content_block_start`` (followed by ``ping`` for the first block), then one
``content_block_delta`` per token (``thinking_delta``, ``text_delta``, or ``input_json_delta``
per piece of a call's arguments: a call's first token, its name, is in its start event); a
thinking block's ``signature_delta`` and every block's ``content_block_stop`` when it ends; after
the last token ``message_delta`` (``stop_reason``, ``stop_sequence`` and the usage, cumulative)
and ``message_stop``. An injected mid-stream error ends the stream with an ``error`` event,
which the SDK raises.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import msgspec

from fakeai.api.answer_layout import Segment, segments
from fakeai.api.anthropic_errors import anthropic_error_body
from fakeai.api.anthropic_schemas import (
    Content,
    Message,
    MessageUsage,
    OutputTokensDetails,
    TextContent,
    ThinkingContent,
    ToolUseContent,
)
from fakeai.api.engine import Engine, Plan
from fakeai.api.errors import APIError
from fakeai.api.event_streams import sse_event

__all__ = ("MessageAnswer", "MessageEvents")

_encode = msgspec.json.Encoder().encode
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_DELTAS = {"text": (b"text_delta", b"text"), "reasoning": (b"thinking_delta", b"thinking"),
           "tool_call": (b"input_json_delta", b"partial_json")}


def _tool_use(block: Segment, arguments: Any) -> ToolUseContent:
    """A tool call's block with ``arguments`` as its ``input``; its id is the planned call's in
    Anthropic's spelling (``call_...``: ``toolu_...``)."""
    call = block.call
    assert call is not None  # a tool call's segment has its call
    return ToolUseContent(id="toolu_" + call.id.partition("_")[2], name=call.name, input=arguments)


class MessageAnswer:
    """The content blocks of one planned answer, and the ``Message`` that carries them."""

    def __init__(self, engine: Engine, plan: Plan) -> None:
        self.plan = plan
        choice = plan.choices[0]
        self.id = "msg_" + plan.id.partition("-")[2]
        self.signature = base64.b64encode(self.id.encode()).decode()
        """The thinking blocks' signature: opaque, as Anthropic's is."""
        self.blocks: list[Segment] = segments(engine, choice)
        self.thinking_tokens = sum(block.tokens for block in self.blocks if block.kind == "reasoning")
        self.stop_sequence = choice.stop_sequence
        self.stop_reason = "stop_sequence" if choice.stop_sequence is not None else _STOP_REASONS[choice.finish_reason]

    def usage(self, output_tokens: int) -> MessageUsage:
        plan = self.plan
        details = None
        if self.thinking_tokens:
            details = OutputTokensDetails(thinking_tokens=min(self.thinking_tokens, output_tokens))
        return MessageUsage(
            input_tokens=plan.prompt_tokens - plan.cached_tokens,
            cache_creation_input_tokens=0,
            cache_read_input_tokens=plan.cached_tokens,
            output_tokens=output_tokens,
            output_tokens_details=details,
        )

    def message(self, content: list[Content], done: bool, output_tokens: int) -> Message:
        return Message(
            id=self.id,
            model=self.plan.model,
            content=content,
            stop_reason=self.stop_reason if done else None,
            stop_sequence=self.stop_sequence if done else None,
            usage=self.usage(output_tokens),
        )

    def started(self, block: Segment) -> Content:
        """``block`` as its ``content_block_start`` event carries it: empty (a call: its name)."""
        if block.kind == "reasoning":
            return ThinkingContent(thinking="", signature="")
        if block.kind == "tool_call":
            return _tool_use(block, {})
        return TextContent(text="")

    def block(self, block: Segment) -> Content:
        """``block`` whole, as a whole answer carries it."""
        text = block.text(block.tokens)
        if block.kind == "reasoning":
            return ThinkingContent(thinking=text, signature=self.signature)
        if block.kind == "tool_call":
            whole = block.tokens == block.call.tokens  # type: ignore[union-attr]
            return _tool_use(block, msgspec.json.decode(text) if whole else {})
        return TextContent(text=text)

    def content(self) -> list[Content]:
        return [self.block(block) for block in self.blocks]


class MessageEvents:
    """``event_streams.EventFormat`` of one Messages answer."""

    def __init__(self, answer: MessageAnswer) -> None:
        self.answer = answer
        self.current = -1
        """The content block being streamed."""
        self._starts = {block.first: number for number, block in enumerate(answer.blocks)}
        self._head = self._tail = b""
        """The current block's delta event around its token."""

    @staticmethod
    def _event(kind: str, **fields: Any) -> bytes:
        return sse_event(kind.encode(), _encode({"type": kind, **fields}))

    def opening(self) -> bytes:
        return self._event("message_start", message=self.answer.message([], False, 0))

    def token(self, index: int) -> bytes:
        number = self._starts.get(index)
        if number is not None:
            opened = self._close_current() + self._open(number)
            if self.answer.blocks[number].kind == "tool_call":
                return opened  # a call's first token, its name, is in its start event
        else:
            opened = b""
        block = self.answer.blocks[self.current]
        return opened + self._head + block.token_json(index - block.first) + self._tail

    def _open(self, number: int) -> bytes:
        self.current = number
        block = self.answer.blocks[number]
        kind, field = _DELTAS[block.kind]
        self._head = (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
            b'"delta":{"type":"%s","%s":' % (number, kind, field)
        )
        self._tail = b"}}\n\n"
        started = self._event("content_block_start", index=number, content_block=self.answer.started(block))
        return started + self._event("ping") if number == 0 else started

    def _close_current(self) -> bytes:
        if self.current < 0:
            return b""
        number = self.current
        stop = self._event("content_block_stop", index=number)
        if self.answer.blocks[number].kind == "reasoning":
            signature = {"type": "signature_delta", "signature": self.answer.signature}
            return self._event("content_block_delta", index=number, delta=signature) + stop
        return stop

    def closing(self, tokens: int) -> Iterator[bytes]:
        answer = self.answer
        delta = {"stop_reason": answer.stop_reason, "stop_sequence": answer.stop_sequence}
        yield (
            self._close_current()
            + self._event("message_delta", delta=delta, usage=answer.usage(tokens))
            + self._event("message_stop")
        )

    def failure(self, error: APIError, tokens: int) -> bytes:
        return sse_event(b"error", anthropic_error_body(error.status, error.detail.message))
