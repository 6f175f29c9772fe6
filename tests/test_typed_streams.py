"""The typed event streams (Responses API, Anthropic Messages) are paced and recorded as chat's are."""

from __future__ import annotations

import httpx
import pytest

from fakeai.config import Settings
from tests.servers import eventually, running_app

MODEL = "openai/gpt-oss-120b"
STREAMS = 3
ENDPOINTS = [
    pytest.param("/v1/responses", {"input": "Hi", "max_output_tokens": 20}, "response.output_text.delta", id="responses"),
    pytest.param("/v1/messages", {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 20},
                 "content_block_delta", id="messages"),
]


@pytest.mark.parametrize(("endpoint", "body", "delta"), ENDPOINTS)
def test_stream_is_paced_by_the_latency_model(endpoint: str, body: dict, delta: str) -> None:
    settings = Settings(ttft_ms=30, itl_ms=5, ttft_jitter=0, itl_jitter=0, prefill_ms_per_token=0)
    with running_app(settings) as (base_url, app):
        request = {"model": MODEL, **body, "ignore_eos": True, "stream": True}
        with httpx.Client(timeout=10) as client:
            for _ in range(STREAMS):
                text = client.post(base_url + endpoint, json=request).text
                assert text.count(f"event: {delta}\n") == 20, "one event per token"
        registry = app.state.metrics
        eventually(lambda: registry.snapshot().streaming.completed_streams == STREAMS, "the streams were recorded")
        snapshot = registry.snapshot()
        streaming = snapshot.streaming
        # never early, any of them; on time, the best of them (a busy machine delays some now and then)
        assert streaming.ttft.count == STREAMS and 0.030 <= streaming.ttft.min < 0.045
        duration = 0.030 + 19 * 0.005
        assert streaming.tokens_per_second.max <= 20 / duration
        assert streaming.tokens_per_second.max > 20 / (duration + 0.02)
        assert snapshot.models[MODEL].success_total == {"length": STREAMS}
        assert snapshot.endpoints[endpoint].completion_tokens_total == 20 * STREAMS


@pytest.mark.parametrize(("endpoint", "body", "delta"), ENDPOINTS)
def test_plain_answer_is_sent_when_its_last_token_is_due(endpoint: str, body: dict, delta: str) -> None:
    settings = Settings(ttft_ms=30, itl_ms=5, ttft_jitter=0, itl_jitter=0, prefill_ms_per_token=0)
    with running_app(settings) as (base_url, app):
        with httpx.Client(timeout=10) as client:
            response = client.post(base_url + endpoint, json={"model": MODEL, **body, "ignore_eos": True})
        assert response.status_code == 200
        registry = app.state.metrics
        eventually(lambda: registry.snapshot().endpoints[endpoint].requests_total == 1, "the request was recorded")
        latency = registry.snapshot().endpoints[endpoint].latency
        assert 0.030 + 19 * 0.005 <= latency.min < 0.030 + 19 * 0.005 + 0.05


@pytest.mark.parametrize(("endpoint", "body", "delta"), ENDPOINTS)
def test_client_that_leaves_mid_stream_is_a_failed_stream(endpoint: str, body: dict, delta: str) -> None:
    with running_app(Settings(ttft_ms=5, itl_ms=20, ttft_jitter=0, itl_jitter=0)) as (base_url, app):
        registry = app.state.metrics
        request = {"model": MODEL, **body, "ignore_eos": True, "stream": True}
        request["max_output_tokens" if "max_output_tokens" in body else "max_tokens"] = 200
        with httpx.Client(timeout=10) as client:
            with client.stream("POST", base_url + endpoint, json=request) as response:
                lines = response.iter_lines()  # kept: closing it would close the connection
                assert next(line for line in lines if line == f"event: {delta}")
                assert registry.snapshot().streaming.active_streams == 1
        eventually(lambda: registry.snapshot().streaming.active_streams == 0, "the stream ended on the server")
        snapshot = registry.snapshot()
        assert (snapshot.streaming.failed_streams, snapshot.streaming.completed_streams) == (1, 0)
        assert snapshot.endpoints[endpoint].errors_total == {499: 1}
        assert registry.in_flight == 0 and snapshot.models[MODEL].running == 0
        assert snapshot.models[MODEL].success_total == {"abort": 1}
        assert 1 <= snapshot.endpoints[endpoint].completion_tokens_total < 200, "only the tokens sent are counted"


@pytest.mark.parametrize(("endpoint", "body", "delta"), ENDPOINTS)
def test_client_that_leaves_before_a_plain_answer_is_499(endpoint: str, body: dict, delta: str) -> None:
    with running_app(Settings(ttft_ms=2000, ttft_jitter=0)) as (base_url, app):
        registry = app.state.metrics
        with httpx.Client(timeout=0.3) as client, pytest.raises(httpx.ReadTimeout):
            client.post(base_url + endpoint, json={"model": MODEL, **body})
        eventually(lambda: endpoint in registry.snapshot().endpoints
                   and registry.snapshot().endpoints[endpoint].requests_total == 1, "the request was recorded")
        snapshot = registry.snapshot()
        assert snapshot.endpoints[endpoint].errors_total == {499: 1} and registry.in_flight == 0
