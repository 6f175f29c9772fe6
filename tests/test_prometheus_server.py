"""A real Prometheus server scrapes fakeai and answers PromQL about it."""

from __future__ import annotations

import threading

import httpx

from fakeai.config import Settings
from tests.prometheus_server import running_prometheus
from tests.servers import running_app

MODEL = "openai/gpt-oss-120b"
CONFIG = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: fakeai
    metrics_path: /metrics/prometheus
    static_configs:
      - targets: ['{target}']
  - job_name: fakeai-negotiated
    metrics_path: /metrics
    static_configs:
      - targets: ['{target}']
"""


def _traffic(base_url: str, stop: threading.Event) -> None:
    """Chat requests, a third streamed, until told to stop (bounded by the test)."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "ignore_eos": True}
    with httpx.Client(base_url=base_url, timeout=10) as client:
        sent = 0
        while not stop.is_set() and sent < 5000:
            client.post("/v1/chat/completions", json={**body, "stream": sent % 3 == 0})
            sent += 1


def test_prometheus_scrapes_and_queries_fakeai() -> None:
    settings = Settings(ttft_ms=25, itl_ms=2, ttft_jitter=0, itl_jitter=0, prefill_ms_per_token=0)
    with running_app(settings) as (base_url, _):
        target = base_url.removeprefix("http://")
        stop = threading.Event()
        sender = threading.Thread(target=_traffic, args=(base_url, stop))
        sender.start()
        try:
            with running_prometheus(CONFIG.replace("{target}", target)) as prometheus:
                for job in ("fakeai", "fakeai-negotiated"):
                    prometheus.wait_for(f'up{{job="{job}"}}', lambda r: r and r[0]["value"][1] == "1")
                rate = prometheus.wait_for(
                    'sum(rate(fakeai_requests_total{job="fakeai",endpoint="/v1/chat/completions"}[5s]))',
                    lambda r: r and float(r[0]["value"][1]) > 1.0,
                )
                # each answer takes 25 ms + 3 x 2 ms = 31 ms, so p99 lies in the (0.025, 0.05] bucket.
                # Waited for: a busy machine can make two answers in a 5 s window late by 25 ms (p99
                # then in the next bucket) for a while; wrong buckets would never get there.
                p99 = prometheus.wait_for(
                    'histogram_quantile(0.99, sum by (le) (rate(fakeai_request_duration_seconds_bucket'
                    '{job="fakeai",endpoint="/v1/chat/completions"}[5s])))',
                    lambda r: r and r[0]["value"][1] != "NaN" and 0.025 < float(r[0]["value"][1]) <= 0.05,
                )
                # TTFT 25 ms (plain answers included, as vLLM observes them: exactly their planned
                # TTFT, so never on a bucket's bound) lies in vLLM's (0.02, 0.04] bucket, summed
                # over the engines
                ttft = prometheus.wait_for(
                    'histogram_quantile(0.5, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket'
                    f'{{job="fakeai",model_name="{MODEL}"}}[5s])))',
                    lambda r: r and r[0]["value"][1] != "NaN" and 0.02 < float(r[0]["value"][1]) <= 0.04,
                )
                negotiated = prometheus.wait_for(
                    'fakeai_requests_total{job="fakeai-negotiated",endpoint="/v1/chat/completions"}',
                    lambda r: r and float(r[0]["value"][1]) > 0,
                )
                tokens = prometheus.query(f'sum(vllm:generation_tokens_total{{job="fakeai",model_name="{MODEL}"}})')
        finally:
            stop.set()
            sender.join(timeout=30)
    assert float(rate[0]["value"][1]) > 1.0
    assert 0.025 < float(p99[0]["value"][1]) <= 0.05
    assert 0.02 < float(ttft[0]["value"][1]) <= 0.04
    assert float(negotiated[0]["value"][1]) > 0
    assert float(tokens[0]["value"][1]) >= 4
