"""The latency model: when each token of an answer is due. Pure functions of a seeded source.

* Time to first token = ``ttft_ms + prefill_ms_per_token * uncached prompt tokens``, each
  part jittered independently by up to ``+-ttft_jitter`` (uniform, relative).
* Each later token follows the previous one by ``itl_ms``, jittered by ``+-itl_jitter``.
* Under load every duration is multiplied by ``1 + load_slowdown * (requests in flight - 1)``.
* A non-streamed answer of ``n`` tokens takes TTFT + (n - 1) inter-token latencies in total,
  like a real server that generates before it answers.
"""

from __future__ import annotations

import random

import msgspec

__all__ = ("LatencyModel",)


class LatencyModel(msgspec.Struct, frozen=True, kw_only=True):
    ttft_ms: float = 50.0
    prefill_ms_per_token: float = 0.02
    ttft_jitter: float = 0.1
    itl_ms: float = 10.0
    itl_jitter: float = 0.1
    load_slowdown: float = 0.0
    zero_latency: bool = False

    def load_factor(self, in_flight: int) -> float:
        return 1.0 + self.load_slowdown * max(in_flight - 1, 0)

    def ttft(self, rng: random.Random, uncached_prompt_tokens: int, in_flight: int = 1) -> float:
        """Seconds from arrival to the first token."""
        if self.zero_latency:
            return 0.0
        base = self.ttft_ms * _jitter(rng, self.ttft_jitter)
        prefill = self.prefill_ms_per_token * uncached_prompt_tokens * _jitter(rng, self.ttft_jitter)
        return (base + prefill) * self.load_factor(in_flight) / 1000.0

    def itl(self, rng: random.Random, in_flight: int = 1) -> float:
        """Seconds between two tokens."""
        if self.zero_latency:
            return 0.0
        return self.itl_ms * _jitter(rng, self.itl_jitter) * self.load_factor(in_flight) / 1000.0

    def token_offsets(
        self, rng: random.Random, tokens: int, uncached_prompt_tokens: int, in_flight: int = 1
    ) -> list[float]:
        """Seconds from arrival at which each of ``tokens`` tokens is due (empty for none)."""
        if tokens <= 0:
            return []
        if self.zero_latency:
            return [0.0] * tokens
        offsets = [self.ttft(rng, uncached_prompt_tokens, in_flight)]
        self.extend_offsets(rng, offsets, tokens - 1, in_flight)
        return offsets

    def extend_offsets(self, rng: random.Random, offsets: list[float], tokens: int, in_flight: int = 1) -> None:
        """Append the deadlines of ``tokens`` more tokens to ``offsets`` (which holds at least the
        first): a long answer's deadlines can be drawn in steps, the same as in one go. Each gap
        is ``itl`` (the same draws and arithmetic, in one loop rather than a call per token)."""
        due = offsets[-1]
        if self.zero_latency:
            offsets.extend([due] * tokens)
            return
        itl_ms, fraction, factor = self.itl_ms, self.itl_jitter, self.load_factor(in_flight)
        append = offsets.append
        if not fraction:
            step = itl_ms * factor / 1000.0
            for _ in range(tokens):
                due += step
                append(due)
            return
        uniform = rng.random
        for _ in range(tokens):
            due += itl_ms * (1.0 + fraction * (2.0 * uniform() - 1.0)) * factor / 1000.0
            append(due)


def _jitter(rng: random.Random, fraction: float) -> float:
    return 1.0 + fraction * (2.0 * rng.random() - 1.0) if fraction else 1.0
