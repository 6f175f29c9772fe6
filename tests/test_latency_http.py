"""The latency model as a client sees it: TTFT, inter-token gaps, non-streamed duration."""

from __future__ import annotations

import statistics
import time

import httpx
import pytest

from fakeai.config import Settings
from tests.servers import running_app

pytestmark = pytest.mark.timing

MODEL = "openai/gpt-oss-120b"
TTFT, ITL = 0.050, 0.010
# Loopback and a shared 2-core machine add a little; the server must never be early.
LATE_BY_AT_MOST = 0.015
TRIALS = 3
"""Every measurement is taken this many times. The server is never early in any of them; on
time (late by at most ``LATE_BY_AT_MOST``) in the best one: a machine busy with other work
delays some answers now and then, while a server that is late itself is late every time."""


@pytest.fixture(scope="module")
def base_url():
    settings = Settings(ttft_ms=50, itl_ms=10, ttft_jitter=0, itl_jitter=0, prefill_ms_per_token=0.05)
    with running_app(settings) as (url, _):
        yield url


def _stream_timings(base_url: str, content: str, tokens: int) -> tuple[float, list[float]]:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": tokens,
        "ignore_eos": True,
        "stream": True,
    }
    with httpx.Client(timeout=10) as client:
        started = time.perf_counter()
        arrivals = []
        with client.stream("POST", base_url + "/v1/chat/completions", json=body) as response:
            for line in response.iter_lines():
                if line.startswith("data: ") and '"content"' in line:
                    arrivals.append(time.perf_counter())
    assert len(arrivals) == tokens
    return arrivals[0] - started, [b - a for a, b in zip(arrivals, arrivals[1:])]


def test_stream_ttft_and_gaps_follow_the_model(base_url: str) -> None:
    trials = [_stream_timings(base_url, "hi", 30) for _ in range(TRIALS)]
    prompt_tokens = 4  # "<|user|>\nhi\n<|assistant|>\n" is 25 characters
    expected_ttft = TTFT + prompt_tokens * 0.05e-3
    assert all(ttft >= expected_ttft for ttft, _ in trials)
    assert min(ttft for ttft, _ in trials) <= expected_ttft + LATE_BY_AT_MOST
    assert min(abs(statistics.median(gaps) - ITL) for _, gaps in trials) <= 0.002
    # Deadlines are absolute, so lateness does not accumulate: the last token is on time too.
    assert min(abs(sum(gaps) - 29 * ITL) for _, gaps in trials) <= LATE_BY_AT_MOST


def test_prefill_time_grows_with_the_prompt(base_url: str) -> None:
    short = min(_stream_timings(base_url, "hi", 2)[0] for _ in range(TRIALS))
    # 2000 more tokens at 0.05 ms; each prompt its own (a repeated one would be a prefix-cache hit)
    long = min(_stream_timings(base_url, f"{trial:04d}" + "x" * 7996, 2)[0] for trial in range(TRIALS))
    assert long - short == pytest.approx(0.100, abs=LATE_BY_AT_MOST)


def test_non_streamed_answer_takes_ttft_plus_n_minus_one_itl(base_url: str) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20, "ignore_eos": True}
    elapsed = []
    with httpx.Client(timeout=10) as client:
        for _ in range(TRIALS):
            started = time.perf_counter()
            response = client.post(base_url + "/v1/chat/completions", json=body)
            elapsed.append(time.perf_counter() - started)
            assert response.json()["usage"]["completion_tokens"] == 20
    expected = TTFT + 4 * 0.05e-3 + 19 * ITL
    assert all(duration >= expected for duration in elapsed)
    assert min(elapsed) <= expected + LATE_BY_AT_MOST


def test_zero_latency_sends_at_once() -> None:
    with running_app(Settings(zero_latency=True)) as (url, _):
        trials = [_stream_timings(url, "hi", 50) for _ in range(TRIALS)]
    assert min(ttft for ttft, _ in trials) < 0.05 and min(sum(gaps) for _, gaps in trials) < 0.01


def test_load_slowdown_stretches_latency_with_requests_in_flight() -> None:
    settings = Settings(ttft_ms=40, itl_ms=0, ttft_jitter=0, prefill_ms_per_token=0, load_slowdown=1.0)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    with running_app(settings) as (url, app), httpx.Client(timeout=10) as client:
        registry = app.state.metrics

        def timed() -> float:
            started = time.perf_counter()
            client.post(url + "/v1/chat/completions", json=body).raise_for_status()
            return time.perf_counter() - started

        alone = [timed() for _ in range(TRIALS)]
        registry.request_started(MODEL)  # one other request in flight: factor 2
        loaded = [timed() for _ in range(TRIALS)]
    assert all(duration >= 0.040 for duration in alone) and min(alone) <= 0.040 + LATE_BY_AT_MOST
    assert all(duration >= 0.080 for duration in loaded) and min(loaded) <= 0.080 + LATE_BY_AT_MOST
