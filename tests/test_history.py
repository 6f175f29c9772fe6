"""The metrics history: points taken from snapshots, bounded, served at /metrics/history."""

from __future__ import annotations

import math
import time

import httpx
import pytest

from fakeai.config import Settings
from fakeai.metrics import MetricsRegistry
from fakeai.metrics.history import HISTORY_FIELDS, MetricsHistory
from tests.servers import eventually, running_app


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_points_are_the_snapshots_figures_and_the_ring_is_bounded() -> None:
    clock = Clock()
    registry = MetricsRegistry(window_seconds=10.0, clock=clock, wall_clock=lambda: 1_700_000_000.0 + clock.now)
    history = MetricsHistory(seconds=3.0, interval_seconds=1.0)
    assert history.capacity == 3
    history.add(registry.snapshot())  # nothing yet: rates 0, percentiles NaN
    clock.now += 10.0
    for duration, status in ((0.1, 200), (0.3, 200), (0.2, 500), (0.4, 200)):
        registry.request_started("m")
        registry.record("/v1/chat/completions", duration, status, 10, 20, model="m", finish_reason="stop")
        registry.request_started("m")
        registry.record("/v1/completions", duration / 10, 200, 10, 5, model="m", finish_reason="stop")
    registry.request_started("m")
    registry.record("/v1/embeddings", 0.0, 200, 100, 0, model="m", finish_reason="stop", kv=(0, 100, 25, 25, None))
    history.add(registry.snapshot())
    columns = history.columns()
    assert list(columns) == list(HISTORY_FIELDS)
    assert math.isnan(columns["latency_p99_seconds"][0]) and columns["requests_per_second"][0] == 0.0
    # 9 requests in a 10 s window; the latency percentiles are over every endpoint's samples
    assert columns["requests_per_second"][1] == pytest.approx(0.9)
    assert columns["error_rate_percentage"][1] == pytest.approx(100 / 9)
    every = sorted([0.1, 0.3, 0.2, 0.4, 0.01, 0.03, 0.02, 0.04, 0.0])
    assert columns["latency_p50_seconds"][1] == pytest.approx(every[4])
    assert columns["latency_p99_seconds"][1] == pytest.approx(every[7] + (every[8] - every[7]) * 0.92)
    assert columns["completion_tokens_per_second"][1] == pytest.approx((4 * 20 + 4 * 5) / 10)
    assert columns["kv_cache_hit_rate"][1] == 0.25
    assert columns["timestamp"] == [1_700_000_100.0, 1_700_000_110.0]
    for _ in range(5):
        history.add(registry.snapshot())
    assert len(history) == 3, "only the newest points are kept"


def test_history_endpoint_fills_at_the_interval_up_to_its_capacity() -> None:
    settings = Settings(history_seconds=0.5, history_interval_seconds=0.1, zero_latency=True)
    with running_app(settings) as (base_url, _), httpx.Client(timeout=10) as client:
        client.post(base_url + "/v1/chat/completions",
                    json={"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}]})
        answered = time.time()  # the server recorded the request in the step that sent its answer

        def filled_since_the_answer() -> bool:
            # a slow first answer can come after the ring is full: wait for a point taken after it
            document = client.get(base_url + "/metrics/history").json()
            return document["points"] == 5 and document["series"]["timestamp"][-1] > answered

        eventually(filled_since_the_answer, "the ring filled up")
        document = client.get(base_url + "/metrics/history").json()
        assert (document["interval_seconds"], document["seconds"], document["capacity"]) == (0.1, 0.5, 5)
        timestamps = document["series"]["timestamp"]
        assert len(timestamps) == 5 and timestamps == sorted(timestamps)
        assert document["series"]["requests_per_second"][-1] > 0, "the newest point counts the request"
        assert client.head(base_url + "/metrics/history").status_code == 200
