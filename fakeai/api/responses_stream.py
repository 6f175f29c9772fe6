"""The Responses API's stream: its typed events, in the order the openai SDK's stream helper
(``client.responses.stream``) accumulates them, each with its ``sequence_number``.

At once: ``response.created`` and ``response.in_progress``. With an output item's first token:
``response.output_item.added`` and ``response.content_part.added`` (for a message), then one
``response.output_text.delta`` per token. When the item ends (the next item starts, or the answer
ends): ``response.output_text.done``, ``response.content_part.done``, ``response.output_item.done``.
After the last token: ``response.completed`` (``response.incomplete`` when ``max_output_tokens``
ended the answer) with the whole response and its usage. An injected mid-stream error ends the
stream with an ``error`` event and ``response.failed``.

A token's event is assembled from bytes made once per item (the event's constant head and
tail around the sequence number and the token's JSON literal).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from fakeai.api.errors import APIError
from fakeai.api.event_streams import sse_event
from fakeai.api.responses_output import OutputPart, ResponseAnswer
from fakeai.api.responses_schemas import OutputItem, OutputText, ResponseError

__all__ = ("ResponseEvents",)

_encode = msgspec.json.Encoder().encode


class ResponseEvents:
    """``event_streams.EventFormat`` of one Responses API answer."""

    def __init__(self, answer: ResponseAnswer) -> None:
        self.answer = answer
        self.sequence = 0
        self.current: int = -1
        """The output item being streamed (its index in ``output``)."""
        self.done: list[OutputItem] = []
        """The items finished so far, as ``response.output_item.done`` sent them."""
        starts = {part.segment.first: number for number, part in enumerate(answer.parts)}
        self._starts = starts
        self._head = self._middle = self._tail = b""
        """The current item's token event around its sequence number and its token."""

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
        opened = b""
        number = self._starts.get(index)
        if number is not None:
            opened = self._close_current(self.answer.parts[number].segment.first) + self._open(number)
        segment = self.answer.parts[self.current].segment
        event = b"%s%d%s%s%s" % (self._head, self.sequence, self._middle, segment.token_json(index - segment.first),
                                 self._tail)
        self.sequence += 1
        return opened + event

    def _open(self, number: int) -> bytes:
        self.current = number
        part = self.answer.parts[number]
        item_id = part.item_id
        kind = "response.output_text.delta"
        self._head = b'event: %s\ndata: {"type":"%s","sequence_number":' % (kind.encode(), kind.encode())
        self._middle = b',"item_id":%s,"output_index":%d,"content_index":0,"delta":' % (_encode(item_id), number)
        self._tail = b',"logprobs":[]}\n\n'
        return self._event(
            "response.output_item.added", output_index=number, item=part.in_progress()
        ) + self._event(
            "response.content_part.added",
            item_id=item_id,
            output_index=number,
            content_index=0,
            part=OutputText(text=""),
        )

    def _close_current(self, sent_before: int) -> bytes:
        """The events that end the item being streamed, of which ``sent_before`` minus its
        first token's index tokens were sent."""
        if self.current < 0:
            return b""
        number = self.current
        part = self.answer.parts[number]
        sent = sent_before - part.segment.first
        status = self.answer.item_status(part) if sent == part.segment.tokens else "incomplete"
        item = part.item(status, sent)
        self.done.append(item)
        text = item.content[0].text  # type: ignore[union-attr]
        common = {"item_id": part.item_id, "output_index": number}
        return (
            self._event("response.output_text.done", **common, content_index=0, text=text, logprobs=[])
            + self._event("response.content_part.done", **common, content_index=0, part=OutputText(text=text))
            + self._event("response.output_item.done", output_index=number, item=item)
        )

    def closing(self, tokens: int) -> Iterator[bytes]:
        answer = self.answer
        yield self._close_current(tokens)
        status = answer.status()
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        yield self._event(kind, response=answer.response(status, self.done, answer.usage(tokens)))

    def failure(self, error: APIError, tokens: int) -> bytes:
        detail = error.detail
        answer = self.answer
        closed = self._close_current(tokens)
        response = answer.response("failed", self.done, answer.usage(tokens))
        response.error = ResponseError(code="server_error", message=detail.message)
        return (
            closed
            + self._event("error", code=detail.code, message=detail.message, param=detail.param)
            + self._event("response.failed", response=response)
        )
