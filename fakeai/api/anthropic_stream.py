"""An Anthropic Messages answer, whole (``Message``) or as the Messages API's stream.

The stream's events, in the order the anthropic SDK's ``MessageStream`` accumulates them:
``message_start`` at once (the message without content, its input tokens known); with a content
block's first token, ``content_block_start`` (followed by ``ping`` for the first block), then one
``content_block_delta`` (``text_delta``) per token; ``content_block_stop`` when the block ends;
after the last token ``message_delta`` (``stop_reason``, ``stop_sequence`` and the usage so far,
cumulative) and ``message_stop``. An injected mid-stream error ends the stream with an ``error``
event, which the SDK raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from fakeai.api.answer_layout import Segment, segments
from fakeai.api.anthropic_errors import anthropic_error_body
from fakeai.api.engine import Engine, Plan
from fakeai.api.errors import APIError
from fakeai.api.event_streams import sse_event
from fakeai.api.anthropic_schemas import Message, MessageUsage, TextContent

__all__ = ("MessageAnswer", "MessageEvents")

_encode = msgspec.json.Encoder().encode
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


class MessageAnswer:
    """The content blocks of one planned answer, and the ``Message`` that carries them."""

    def __init__(self, engine: Engine, plan: Plan) -> None:
        self.plan = plan
        choice = plan.choices[0]
        self.id = "msg_" + plan.id.partition("-")[2]
        self.blocks: list[Segment] = segments(engine, choice)
        self.stop_sequence = choice.stop_sequence
        self.stop_reason = "stop_sequence" if choice.stop_sequence is not None else _STOP_REASONS[choice.finish_reason]

    def usage(self, output_tokens: int) -> MessageUsage:
        plan = self.plan
        return MessageUsage(
            input_tokens=plan.prompt_tokens - plan.cached_tokens,
            cache_read_input_tokens=plan.cached_tokens,
            output_tokens=output_tokens,
        )

    def message(self, content: list[TextContent], done: bool, output_tokens: int) -> Message:
        return Message(
            id=self.id,
            model=self.plan.model,
            content=content,
            stop_reason=self.stop_reason if done else None,
            stop_sequence=self.stop_sequence if done else None,
            usage=self.usage(output_tokens),
        )

    def content(self) -> list[TextContent]:
        return [TextContent(text=block.text(block.tokens)) for block in self.blocks]


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
        opened = b""
        number = self._starts.get(index)
        if number is not None:
            opened = self._close_current() + self._open(number)
        block = self.answer.blocks[self.current]
        return opened + self._head + block.token_json(index - block.first) + self._tail

    def _open(self, number: int) -> bytes:
        self.current = number
        self._head = (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
            b'"delta":{"type":"text_delta","text":' % number
        )
        self._tail = b"}}\n\n"
        opened = self._event("content_block_start", index=number, content_block=TextContent(text=""))
        return opened + self._event("ping") if number == 0 else opened

    def _close_current(self) -> bytes:
        if self.current < 0:
            return b""
        return self._event("content_block_stop", index=self.current)

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
