"""The latency model as a client sees it: TTFT, inter-token gaps, non-streamed duration."""

from __future__ import annotations

import statistics
import time

import httpx
import pytest

from fakeai.config import Settings
from tests.servers import running_app

MODEL = "openai/gpt-oss-120b"
TTFT, ITL = 0.050, 0.010
# Loopback and a shared 2-core machine add a little; the server must never be early.
LATE_BY_AT_MOST = 0.015


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
    ttft, gaps = _stream_timings(base_url, "hi", 30)
    prompt_tokens = 4  # "<|user|>\nhi\n<|assistant|>\n" is 25 characters
    expected_ttft = TTFT + prompt_tokens * 0.05e-3
    assert expected_ttft <= ttft <= expected_ttft + LATE_BY_AT_MOST
    assert statistics.median(gaps) == pytest.approx(ITL, abs=0.002)
    # Deadlines are absolute, so lateness does not accumulate: the last token is on time too.
    assert sum(gaps) == pytest.approx(29 * ITL, abs=LATE_BY_AT_MOST)


def test_prefill_time_grows_with_the_prompt(base_url: str) -> None:
    short, _ = _stream_timings(base_url, "hi", 2)
    long, _ = _stream_timings(base_url, "x" * 8000, 2)  # 2000 more tokens at 0.05 ms
    assert long - short == pytest.approx(0.100, abs=LATE_BY_AT_MOST)


def test_non_streamed_answer_takes_ttft_plus_n_minus_one_itl(base_url: str) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20, "ignore_eos": True}
    with httpx.Client(timeout=10) as client:
        started = time.perf_counter()
        response = client.post(base_url + "/v1/chat/completions", json=body)
        elapsed = time.perf_counter() - started
    assert response.json()["usage"]["completion_tokens"] == 20
    expected = TTFT + 4 * 0.05e-3 + 19 * ITL
    assert expected <= elapsed <= expected + LATE_BY_AT_MOST


def test_zero_latency_sends_at_once() -> None:
    with running_app(Settings(zero_latency=True)) as (url, _):
        ttft, gaps = _stream_timings(url, "hi", 50)
    assert ttft < 0.05 and sum(gaps) < 0.01


def test_load_slowdown_stretches_latency_with_requests_in_flight() -> None:
    settings = Settings(ttft_ms=40, itl_ms=0, ttft_jitter=0, prefill_ms_per_token=0, load_slowdown=1.0)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    with running_app(settings) as (url, app), httpx.Client(timeout=10) as client:
        registry = app.state.metrics

        def timed() -> float:
            started = time.perf_counter()
            client.post(url + "/v1/chat/completions", json=body).raise_for_status()
            return time.perf_counter() - started

        alone = timed()
        registry.request_started(MODEL)  # one other request in flight: factor 2
        loaded = timed()
    assert 0.040 <= alone <= 0.040 + LATE_BY_AT_MOST
    assert 0.080 <= loaded <= 0.080 + LATE_BY_AT_MOST
