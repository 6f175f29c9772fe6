"""The simulation parts, without a server: pure functions of their inputs and a seed."""

from __future__ import annotations

import math
import random

import pytest

from fakeai.simulation.answers import AnswerLength
from fakeai.simulation.embeddings import embed
from fakeai.simulation.errors import ERRORS, ErrorInjector
from fakeai.simulation.latency import LatencyModel
from fakeai.simulation.tokens import count_tokens


def test_token_count_is_characters_over_four_rounded_up() -> None:
    assert [count_tokens(text) for text in ("", "a", "abcd", "abcde", "x" * 4000)] == [0, 1, 1, 2, 1000]


def test_answer_length_limits() -> None:
    lengths = AnswerLength(mean=50, stddev=10, maximum=60)
    rng = random.Random(1)
    assert lengths.draw(rng, max_tokens=7, ignore_eos=True) == (7, "length")
    assert lengths.draw(rng, max_tokens=3) == (3, "length")
    assert lengths.draw(rng, max_tokens=500, min_tokens=400) == (400, "stop")
    drawn = [lengths.draw(rng)[0] for _ in range(2000)]
    assert max(drawn) <= 60 and min(drawn) >= 1
    assert sum(drawn) / len(drawn) == pytest.approx(49, abs=1.5)  # the cap at 60 trims the top


def test_latency_offsets_without_jitter_are_exact() -> None:
    model = LatencyModel(ttft_ms=100, prefill_ms_per_token=0.5, ttft_jitter=0, itl_ms=20, itl_jitter=0)
    offsets = model.token_offsets(random.Random(0), 4, uncached_prompt_tokens=10)
    assert offsets == pytest.approx([0.105, 0.125, 0.145, 0.165])
    assert model.token_offsets(random.Random(0), 0, 10) == []


def test_latency_jitter_stays_within_its_bounds() -> None:
    model = LatencyModel(ttft_ms=100, prefill_ms_per_token=0, ttft_jitter=0.1, itl_ms=10, itl_jitter=0.5)
    rng = random.Random(2)
    ttfts = [model.ttft(rng, 0) for _ in range(1000)]
    itls = [model.itl(rng) for _ in range(1000)]
    assert 0.090 <= min(ttfts) and max(ttfts) <= 0.110
    assert 0.005 <= min(itls) and max(itls) <= 0.015


def test_zero_latency_and_load_factor() -> None:
    assert LatencyModel(zero_latency=True).token_offsets(random.Random(0), 3, 1000) == [0.0, 0.0, 0.0]
    slowed = LatencyModel(ttft_ms=10, ttft_jitter=0, prefill_ms_per_token=0, load_slowdown=0.5)
    assert slowed.ttft(random.Random(0), 0, in_flight=5) == pytest.approx(0.010 * 3)


def test_fail_first_then_rate() -> None:
    injector = ErrorInjector(kinds=("rate_limit", "server_error"), fail_first=3, seed=0)
    picked = [injector.pick() for _ in range(5)]
    assert picked[:3] == [ERRORS["rate_limit"], ERRORS["server_error"], ERRORS["rate_limit"]]
    assert picked[3:] == [None, None]
    with pytest.raises(ValueError, match="unknown error kinds"):
        ErrorInjector(kinds=("nope",))


def test_stream_breaks_before_the_end() -> None:
    injector = ErrorInjector(stream_rate=1.0, seed=0)
    assert all(0 <= injector.stream_break(10) < 10 for _ in range(100))  # type: ignore[operator]
    assert ErrorInjector(stream_rate=0.0).stream_break(10) is None


def test_embeddings_are_deterministic_unit_vectors_and_prefixes() -> None:
    long, again, short = embed(b"text", 256), embed(b"text", 256), embed(b"text", 16)
    assert long == again and embed(b"other", 256) != long
    assert math.fsum(x * x for x in long) == pytest.approx(1.0)
    scale = math.sqrt(math.fsum(x * x for x in long[:16]))
    assert short == pytest.approx([x / scale for x in long[:16]])
