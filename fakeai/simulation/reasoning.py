"""A reasoning model's thinking: which models reason, how long for each effort, and its text.

A reasoning model (gpt-oss, by default every model id containing ``gpt-oss``) writes a
reasoning part before its answer, as vLLM serves gpt-oss's analysis channel. Its length is
drawn per request from a normal distribution around the mean of the request's effort
(``low``, ``medium``, ``high``: the values vLLM and gpt-oss accept), at least one token and
at most twice the mean.

The text is ``REASONING_PROSE``, written under the same rules as the answers' ``PROSE``
(``text.py``): words and ``.`` ``,`` ``:`` ``;`` that are each one token to o200k_base and
cl100k_base, so a reasoning part of ``n`` tokens is ``n`` real tokens (``tests/test_real_tokens.py``
checks it with the real tokenizers).
"""

from __future__ import annotations

import fnmatch
import random

import msgspec

from fakeai.simulation.text import TextSource

__all__ = ("REASONING_EFFORTS", "REASONING_PROSE", "ReasoningLength", "ReasoningModels", "reasoning_text")

REASONING_EFFORTS = ("low", "medium", "high")
"""The reasoning efforts a request may ask for (vLLM's ``reasoning_effort`` for gpt-oss)."""

REASONING_PROSE = (
    "The user asks a question and wants a clear answer. First, I should put the question in my own "
    "words, so that I know what is being asked. Then I can list what I already know, and what I still "
    "need to check. Let me think about the simplest case first. If the input is empty, the answer "
    "should say so. If the input is very large, the method must still finish in time. "
    "Next, consider the edge of the range: a value at the very start, a value at the very end, and one "
    "just past it. Each case needs a short check. I will compare two ways to solve it. The first way is "
    "direct but slow; the second way is faster but needs more care. "
    "Wait, the question may also mean something else. Let me read it again. It asks for the result, "
    "not the steps, so the answer should be short and give the steps only if they help. "
    "Now I can check the plan against the cases. The empty case works. The large case works, since each "
    "step does a fixed amount of work. The edge case needs one more check, and it holds. "
    "So the plan is sound. I will write the answer in plain words, begin with the result, and keep "
    "the explanation brief."
)

_TEXT = TextSource(REASONING_PROSE)


def reasoning_text() -> TextSource:
    """The reasoning parts' tokens (one shared, immutable source)."""
    return _TEXT


class ReasoningLength(msgspec.Struct, frozen=True, kw_only=True):
    """Mean reasoning tokens per effort; the spread is the standard deviation as a fraction of
    the mean."""

    low: float = 128.0
    medium: float = 512.0
    high: float = 2048.0
    spread: float = 0.25

    def mean(self, effort: str) -> float:
        """The mean of ``effort`` (one of ``REASONING_EFFORTS``)."""
        if effort == "low":
            return self.low
        if effort == "medium":
            return self.medium
        if effort == "high":
            return self.high
        raise ValueError(f"unknown reasoning effort {effort!r}; known: {', '.join(REASONING_EFFORTS)}")

    def draw(self, rng: random.Random, effort: str) -> int:
        """The length in tokens of one reasoning part of ``effort``: at least 1, at most twice
        the mean (so what a request may cost is bounded)."""
        mean = self.mean(effort)
        if not self.spread:
            return max(1, round(mean))
        return min(max(1, round(rng.gauss(mean, mean * self.spread))), max(1, round(2 * mean)))


class ReasoningModels:
    """Which model ids reason: those matching one of ``patterns`` (shell-style, ``fnmatch``,
    case-sensitive: ``*gpt-oss*``)."""

    __slots__ = ("patterns",)

    def __init__(self, patterns: tuple[str, ...] | list[str]) -> None:
        self.patterns = tuple(patterns)

    def reasons(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.patterns)
