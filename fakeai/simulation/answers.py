"""How long an answer is and why it ended.

Without limits the length is drawn from a normal distribution (``answer_tokens_mean``,
``answer_tokens_stddev``), at least 1 and at most ``answer_tokens_max``. ``max_tokens`` caps
it; ``min_tokens`` raises it; ``ignore_eos`` makes it exactly ``max_tokens`` (what
benchmarking tools ask for). ``finish_reason`` is ``length`` when the token limit ended the
answer, ``stop`` when the model "chose" to stop.
"""

from __future__ import annotations

import random

import msgspec

__all__ = ("AnswerLength",)


class AnswerLength(msgspec.Struct, frozen=True, kw_only=True):
    mean: float = 64.0
    stddev: float = 24.0
    maximum: int = 256

    def draw(
        self,
        rng: random.Random,
        max_tokens: int | None = None,
        min_tokens: int = 0,
        ignore_eos: bool = False,
    ) -> tuple[int, str]:
        """``(tokens, finish_reason)`` of one answer."""
        limit = max_tokens if max_tokens is not None else self.maximum
        if ignore_eos and max_tokens is not None:
            return max_tokens, "length"
        natural = max(1, round(rng.gauss(self.mean, self.stddev))) if self.stddev else max(1, round(self.mean))
        natural = max(natural, min_tokens)
        if max_tokens is None:
            return min(natural, limit), "stop"
        if natural >= limit:
            return limit, "length"
        return natural, "stop"
