"""What a Responses API answer holds: its output items, and the ``Response`` around them.

One planned answer (``engine.Plan``, one choice) becomes the response's ``output``, one item
per segment of the answer (``answer_layout``): a ``reasoning`` item (its text as
``reasoning_text`` content, as vLLM serves gpt-oss; ``summary`` empty), then a ``message``
item whose ``output_text`` is the answer's words or JSON, or one ``function_call`` item per
tool call.

With ``include: ["reasoning.encrypted_content"]`` (what a client that stores nothing asks, to
send the reasoning back) a reasoning item carries ``encrypted_content``: an opaque string
(the reasoning text in base64, not encrypted), accepted back in ``input`` like any reasoning item.
"""

from __future__ import annotations

import base64
import time

from fakeai.api.answer_layout import Segment, segments
from fakeai.api.engine import Engine, Plan
from fakeai.api.responses_schemas import (
    FunctionCallItem,
    IncompleteDetails,
    InputTokensDetails,
    MessageItem,
    OutputItem,
    OutputText,
    OutputTokensDetails,
    ReasoningConfig,
    ReasoningItem,
    ReasoningText,
    Response,
    ResponsesRequest,
    ResponseUsage,
    TextConfig,
)

__all__ = ("ENCRYPTED_REASONING", "OutputPart", "ResponseAnswer")

ENCRYPTED_REASONING = "reasoning.encrypted_content"
_PREFIXES = {"reasoning": "rs_", "text": "msg_", "tool_call": "fc_"}


class OutputPart:
    """One output item of an answer: one segment of its tokens, with the item's id."""

    __slots__ = ("encrypted", "item_id", "segment")

    def __init__(self, segment: Segment, item_id: str, encrypted: bool) -> None:
        self.segment = segment
        self.item_id = item_id
        self.encrypted = encrypted
        """A reasoning item carries ``encrypted_content``."""

    def item(self, status: str, tokens: int | None = None) -> OutputItem:
        """The item as the API sends it, made of its first ``tokens`` tokens (all of them by default)."""
        segment = self.segment
        text = segment.text(segment.tokens if tokens is None else tokens)
        if segment.kind == "reasoning":
            encrypted = base64.b64encode(text.encode()).decode() if self.encrypted else None
            return ReasoningItem(id=self.item_id, content=[ReasoningText(text=text)], encrypted_content=encrypted)
        if segment.kind == "tool_call":
            return self._call(text, status)
        return MessageItem(id=self.item_id, status=status, content=[OutputText(text=text)])

    def in_progress(self) -> OutputItem:
        """The item as ``response.output_item.added`` sends it: no content yet."""
        segment = self.segment
        if segment.kind == "reasoning":
            return ReasoningItem(id=self.item_id, content=[])
        if segment.kind == "tool_call":
            return self._call("", "in_progress")
        return MessageItem(id=self.item_id, status="in_progress")

    def _call(self, arguments: str, status: str) -> FunctionCallItem:
        call = self.segment.call
        assert call is not None  # a tool call's segment has its call
        return FunctionCallItem(id=self.item_id, call_id=call.id, name=call.name, arguments=arguments, status=status)


class ResponseAnswer:
    """The output items of one planned answer and the ``Response`` objects that carry them."""

    def __init__(self, engine: Engine, plan: Plan, request: ResponsesRequest) -> None:
        self.plan = plan
        self.request = request
        choice = plan.choices[0]
        suffix = plan.id.partition("-")[2]
        self.id = "resp_" + suffix
        self.incomplete = choice.finish_reason == "length"
        """The answer reached ``max_output_tokens``: the response is ``incomplete``."""
        encrypted = ENCRYPTED_REASONING in request.include
        self.parts = [
            OutputPart(segment, f"{_PREFIXES[segment.kind]}{suffix}{number}", encrypted)
            for number, segment in enumerate(segments(engine, choice))
        ]
        self.reasoning_tokens = sum(part.segment.tokens for part in self.parts if part.segment.kind == "reasoning")

    def status(self) -> str:
        return "incomplete" if self.incomplete else "completed"

    def item_status(self, part: OutputPart) -> str:
        """A finished item's status: the last one of an incomplete answer is incomplete."""
        return "incomplete" if self.incomplete and part is self.parts[-1] else "completed"

    def usage(self, output_tokens: int) -> ResponseUsage:
        plan = self.plan
        return ResponseUsage(
            input_tokens=plan.prompt_tokens,
            input_tokens_details=InputTokensDetails(cached_tokens=plan.cached_tokens),
            output_tokens=output_tokens,
            output_tokens_details=OutputTokensDetails(reasoning_tokens=min(self.reasoning_tokens, output_tokens)),
            total_tokens=plan.prompt_tokens + output_tokens,
        )

    def response(self, status: str, output: list[OutputItem], usage: ResponseUsage | None = None) -> Response:
        """The ``Response`` with ``status`` and ``output`` (and its ``usage`` once it has ended)."""
        request = self.request
        finished = status in ("completed", "incomplete")
        return Response(
            id=self.id,
            created_at=self.plan.created,
            status=status,
            completed_at=int(time.time()) if status == "completed" else None,
            incomplete_details=IncompleteDetails(reason="max_output_tokens") if status == "incomplete" else None,
            instructions=request.instructions,
            max_output_tokens=request.max_output_tokens,
            model=self.plan.model,
            output=output,
            parallel_tool_calls=request.parallel_tool_calls,
            reasoning=request.reasoning or ReasoningConfig(),
            temperature=1.0 if request.temperature is None else request.temperature,
            text=request.text or TextConfig(),
            tool_choice=request.tool_choice,
            tools=request.tools,
            top_p=1.0 if request.top_p is None else request.top_p,
            truncation=request.truncation,
            usage=usage if finished else None,
            metadata=request.metadata or {},
        )

    def finished_items(self) -> list[OutputItem]:
        return [part.item(self.item_status(part)) for part in self.parts]
