"""The Responses API's stream: its typed events, in the order the openai SDK's stream helper
(``client.responses.stream``) accumulates them, each with its ``sequence_number``.

At once: ``response.created`` and ``response.in_progress``. With an output item's first token,
``response.output_item.added``, then per item kind:

* a message: ``response.content_part.added``, one ``response.output_text.delta`` per token, and
  when it ends ``response.output_text.done``, ``response.content_part.done``;
* a reasoning item: the same with ``reasoning_text`` parts and ``response.reasoning_text.delta``
  / ``.done`` (vLLM's events for gpt-oss);
* a function call: its first token is its name (carried by the added item), then one
  ``response.function_call_arguments.delta`` per piece of its arguments, and when it ends
  ``response.function_call_arguments.done``;

then ``response.output_item.done`` with the whole item. After the last token:
``response.completed`` (``response.incomplete`` when ``max_output_tokens`` ended the answer)
with the whole response and its usage. An injected mid-stream error ends the stream with an
``error`` event and ``response.failed``.

A token's event is assembled from bytes made once per item (the event's constant head and
tail around the sequence number and the token's JSON literal).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from fakeai.api.errors import APIError
from fakeai.api.event_streams import sse_event
from fakeai.api.responses_output import ResponseAnswer
from fakeai.api.responses_schemas import FunctionCallItem, OutputItem, OutputText, ReasoningText, ResponseError

__all__ = ("ResponseEvents",)

_encode = msgspec.json.Encoder().encode
_DELTAS = {
    "text": "response.output_text.delta",
    "reasoning": "response.reasoning_text.delta",
    "tool_call": "response.function_call_arguments.delta",
}


class ResponseEvents:
    """``event_streams.EventFormat`` of one Responses API answer."""

    def __init__(self, answer: ResponseAnswer) -> None:
        self.answer = answer
        self.sequence = 0
        self.current = -1
        """The output item being streamed (its index in ``output``)."""
        self.done: list[OutputItem] = []
        """The items finished so far, as ``response.output_item.done`` sent them."""
        self._starts = {part.segment.first: number for number, part in enumerate(answer.parts)}
        self._head = self._middle = self._tail = b""
        """The current item's delta event around its sequence number and its token."""

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = _encode({"type": kind, "sequence_number": self.sequence, **fields})
        self.sequence += 1
        return sse_event(kind.encode(), payload)

    def opening(self) -> bytes:
        response = self.answer.response("in_progress", [])
        return self._event("response.created", response=response) + self._event(
            "response.in_progress", response=response
        )

    def token(self, index: int) -> bytes:
        number = self._starts.get(index)
        if number is not None:
            opened = b"".join(self._close_current(index)) + self._open(number)
            if self.answer.parts[number].segment.kind == "tool_call":
                return opened  # a call's first token, its name, is in the added item
        else:
            opened = b""
        segment = self.answer.parts[self.current].segment
        event = b"%s%d%s%s%s" % (self._head, self.sequence, self._middle, segment.token_json(index - segment.first),
                                 self._tail)
        self.sequence += 1
        return opened + event

    def _open(self, number: int) -> bytes:
        self.current = number
        part = self.answer.parts[number]
        kind = part.segment.kind
        delta = _DELTAS[kind].encode()
        self._head = b'event: %s\ndata: {"type":"%s","sequence_number":' % (delta, delta)
        content_index = b"" if kind == "tool_call" else b',"content_index":0'
        self._middle = b',"item_id":%s,"output_index":%d%s,"delta":' % (_encode(part.item_id), number, content_index)
        self._tail = b',"logprobs":[]}\n\n' if kind == "text" else b"}\n\n"
        added = self._event("response.output_item.added", output_index=number, item=part.in_progress())
        if kind == "tool_call":
            return added
        empty = OutputText(text="") if kind == "text" else ReasoningText(text="")
        return added + self._event(
            "response.content_part.added", item_id=part.item_id, output_index=number, content_index=0, part=empty
        )

    def _close_current(self, sent: int) -> list[bytes]:
        """The events that end the item being streamed, once the answer's first ``sent`` tokens
        were sent (each may hold the item's whole text)."""
        if self.current < 0:
            return []
        number = self.current
        part = self.answer.parts[number]
        segment = part.segment
        own = sent - segment.first
        status = self.answer.item_status(part) if own == segment.tokens else "incomplete"
        item = part.item(status, own)
        self.done.append(item)
        common: dict[str, Any] = {"item_id": part.item_id, "output_index": number}
        if isinstance(item, FunctionCallItem):
            events = [self._event("response.function_call_arguments.done", **common, arguments=item.arguments)]
        else:
            text = item.content[0].text  # type: ignore[union-attr]
            if segment.kind == "reasoning":
                events = [self._event("response.reasoning_text.done", **common, content_index=0, text=text)]
                content: OutputText | ReasoningText = ReasoningText(text=text)
            else:
                events = [self._event("response.output_text.done", **common, content_index=0, text=text,
                                      logprobs=[])]
                content = OutputText(text=text)
            events.append(self._event("response.content_part.done", **common, content_index=0, part=content))
        events.append(self._event("response.output_item.done", output_index=number, item=item))
        return events

    def closing(self, tokens: int) -> Iterator[bytes]:
        answer = self.answer
        yield from self._close_current(tokens)
        status = answer.status()
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        yield self._event(kind, response=answer.response(status, self.done, answer.usage(tokens)))

    def failure(self, error: APIError, tokens: int) -> bytes:
        detail = error.detail
        answer = self.answer
        closed = b"".join(self._close_current(tokens))
        response = answer.response("failed", self.done)
        response.error = ResponseError(code="server_error", message=detail.message)
        return (
            closed
            + self._event("error", code=detail.code, message=detail.message, param=detail.param)
            + self._event("response.failed", response=response)
        )
