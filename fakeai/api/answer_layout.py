"""The parts of one planned answer, in order, as the typed APIs present them.

The Responses API and Anthropic's Messages send an answer as a list of parts (output items,
content blocks): a part of text, and so on. A ``Segment`` is one such part: which of the
plan's tokens are its own (``first``, ``tokens``), each token as a JSON string literal (what a
stream sends, one event a token) and its text made of its first tokens (what a plain answer,
and a stream's closing events, send). Both endpoints build their parts from the same segments,
so a plain answer and a stream of the same plan always agree.
"""

from __future__ import annotations

from collections.abc import Callable

from fakeai.api.engine import Choice, Engine

__all__ = ("Segment", "segments")


class Segment:
    """Tokens ``first`` .. ``first + tokens - 1`` of an answer, all of one kind."""

    __slots__ = ("first", "kind", "text", "token_json", "tokens")

    def __init__(
        self, kind: str, first: int, tokens: int, token_json: Callable[[int], bytes], text: Callable[[int], str]
    ) -> None:
        self.kind = kind
        """``text``: the answer's words."""
        self.first = first
        self.tokens = tokens
        self.token_json = token_json
        """Token ``j`` of the segment (0-based within it) as a JSON string literal."""
        self.text = text
        """The segment's text made of its first ``count`` tokens."""

    @property
    def end(self) -> int:
        """The answer's token after the segment's last."""
        return self.first + self.tokens


def segments(engine: Engine, choice: Choice) -> list[Segment]:
    """The segments of ``choice`` (none for an answer of no tokens)."""
    if not choice.tokens:
        return []
    start = choice.start
    return [
        Segment(
            "text",
            0,
            choice.tokens,
            lambda index: engine.token_json(choice, index),
            lambda count: engine.text.text(start, count),
        )
    ]
