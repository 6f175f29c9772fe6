"""Streams that end early: counted as failed, and nothing is left behind."""

from __future__ import annotations

import httpx

from fakeai.config import Settings
from tests.servers import eventually, running_app

MODEL = "openai/gpt-oss-120b"
STREAMS = 3


def test_client_disconnect_mid_stream_is_a_failed_stream_and_leaks_nothing() -> None:
    with running_app(Settings(ttft_ms=5, itl_ms=20, ttft_jitter=0, itl_jitter=0)) as (base_url, app):
        registry = app.state.metrics
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 200,
                "ignore_eos": True, "stream": True}
        with httpx.Client(timeout=10) as client:
            with client.stream("POST", base_url + "/v1/chat/completions", json=body) as response:
                lines = response.iter_lines()
                assert next(line for line in lines if line.startswith("data: "))
                assert registry.snapshot().streaming.active_streams == 1
            # leaving the block closes the connection after one token
        eventually(lambda: registry.snapshot().streaming.active_streams == 0, "the stream ended on the server")
        snapshot = registry.snapshot()
        assert (snapshot.streaming.failed_streams, snapshot.streaming.completed_streams) == (1, 0)
        assert snapshot.endpoints["/v1/chat/completions"].errors_total == {499: 1}
        assert registry.in_flight == 0 and snapshot.models[MODEL].running == 0
        assert snapshot.models[MODEL].success_total == {"abort": 1}
        sent = snapshot.endpoints["/v1/chat/completions"].completion_tokens_total
        assert 1 <= sent < 200, "only the tokens sent before the disconnect are counted"


def test_completed_stream_records_ttft_and_tokens_per_second() -> None:
    with running_app(Settings(ttft_ms=30, itl_ms=5, ttft_jitter=0, itl_jitter=0, prefill_ms_per_token=0)) as (
        base_url,
        app,
    ):
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20,
                "ignore_eos": True, "stream": True}
        with httpx.Client(timeout=10) as client:
            for _ in range(STREAMS):
                with client.stream("POST", base_url + "/v1/chat/completions", json=body) as response:
                    assert response.read().endswith(b"data: [DONE]\n\n")
        registry = app.state.metrics
        eventually(lambda: registry.snapshot().streaming.completed_streams == STREAMS, "the streams were recorded")
        streaming = registry.snapshot().streaming
        # never early, any of them; on time, the best of them (a busy machine delays some now and then)
        assert streaming.ttft.count == STREAMS and 0.030 <= streaming.ttft.min < 0.045
        duration = 0.030 + 19 * 0.005
        assert streaming.tokens_per_second.max <= 20 / duration
        assert streaming.tokens_per_second.max > 20 / (duration + 0.02)
        assert streaming.active_streams == 0 and registry.in_flight == 0
