"""The parts of one planned answer, in order, as the typed APIs present them.

The Responses API and Anthropic's Messages send an answer as a list of parts (output items,
content blocks): a reasoning part, then text, or one part per tool call. A ``Segment`` is one
such part: which of the plan's tokens are its own (``first``, ``tokens``), each token as a JSON
string literal (what a stream sends, one event a token) and its text made of its first tokens
(what a plain answer, and a stream's closing events, send). Both endpoints build their parts
from the same segments, so a plain answer and a stream of the same plan always agree.

A shaped choice (``shaping.Output``) holds its reasoning tokens first, then its tool calls (a
call's first token is its name, each further token a piece of its arguments), its JSON content
or its prose; ``max_tokens`` may cut it anywhere, and a segment then holds only the tokens
within the answer (a tool call cut before its first token is not in the answer at all).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from fakeai.api.engine import Choice, Engine
from fakeai.api.shaping import PlannedCall
from fakeai.simulation.reasoning import reasoning_text

__all__ = ("Segment", "segments")

_encode = msgspec.json.encode


class Segment:
    """Tokens ``first`` .. ``first + tokens - 1`` of an answer, all of one kind."""

    __slots__ = ("call", "first", "kind", "text", "token_json", "tokens")

    def __init__(
        self,
        kind: str,
        first: int,
        tokens: int,
        token_json: Callable[[int], bytes],
        text: Callable[[int], str],
        call: PlannedCall | None = None,
    ) -> None:
        self.kind = kind
        """``reasoning``, ``text`` (prose or JSON content) or ``tool_call``."""
        self.first = first
        self.tokens = tokens
        self.token_json = token_json
        """Token ``j`` of the segment (0-based within it) as a JSON string literal (a tool call's
        token 0 is its name; its text is what the part's opening event carries)."""
        self.text = text
        """The segment's text made of its first ``count`` tokens (a tool call's: its arguments)."""
        self.call = call
        """A tool call's id, name and argument pieces."""


def _tool_call(call: PlannedCall, first: int, tokens: int) -> Segment:
    pieces = call.pieces
    return Segment(
        "tool_call",
        first,
        tokens,
        lambda index: _encode(call.name if index == 0 else pieces[index - 1]),
        lambda count: "".join(pieces[: max(0, count - 1)]),
        call,
    )


def segments(engine: Engine, choice: Choice) -> list[Segment]:
    """The segments of ``choice``, cut to its tokens (none for an answer of no tokens)."""
    total = choice.tokens
    output = choice.output
    parts: list[Segment] = []
    reasoning = 0
    if output is not None and output.reasoning:
        source = reasoning_text()
        begin = output.reasoning_start
        reasoning = min(output.reasoning, total)
        parts.append(
            Segment(
                "reasoning",
                0,
                reasoning,
                lambda index: source.token_json(begin, index),
                lambda count: source.text(begin, count),
            )
        )
    rest = total - reasoning
    if output is not None and output.calls:
        parts.extend(
            _tool_call(call, reasoning + call.first, min(call.tokens, rest - call.first))
            for call in output.calls
            if call.first < rest
        )
    elif output is not None and output.pieces is not None:
        pieces = output.pieces
        parts.append(
            Segment(
                "text",
                reasoning,
                rest,
                lambda index: _encode(pieces[index]),
                lambda count: "".join(pieces[:count]),
            )
        )
    else:
        start = choice.start
        text = engine.text
        parts.append(
            Segment(
                "text",
                reasoning,
                rest,
                lambda index: text.token_json(start, index),
                lambda count: text.text(start, count),
            )
        )
    return [part for part in parts if part.tokens > 0]
