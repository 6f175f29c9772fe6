"""Exact numbers: a known workload on an injected clock, read back in every format.

The clock is simulated: waiting for a token's deadline moves the clock to that deadline, so
every duration is exactly what the latency model says (zero jitter). The workload, with
``--fail-first 2`` and TTFT 100 ms, ITL 10 ms, no prefill time:

* 2 chat requests failed by injection (429, then 500): duration 0, prompt tokens 0;
* 6 plain chat answers of 10 tokens: duration 0.1 + 9 x 0.01 = 0.19 s each;
* 2 streamed chat answers of 5 tokens: TTFT 0.1 s, duration 0.14 s, 5 / 0.14 tokens/s;
* 1 embedding of "hello world" (3 tokens): prefill only, duration 0.1 s.

Everything happens within 2 s, after 10 s of uptime, so rates divide by the 5 s window.
"""

from __future__ import annotations

import csv
import io
import math

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from fakeai.app import create_app
from fakeai.config import Settings

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
MODEL = "openai/gpt-oss-120b"
PROMPT_TOKENS = 7  # "<|user|>\nhi\n<|assistant|>\n" is 25 characters
WINDOW = 5.0


class SimulatedClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class JumpingPacer:
    """Waiting for a deadline moves the simulated clock there."""

    def __init__(self, clock: SimulatedClock) -> None:
        self.clock = clock

    async def wait_until(self, deadline: float) -> None:
        self.clock.now = max(self.clock.now, deadline)

    def next_deadline(self) -> float:
        return math.inf  # nothing waits: a wait moves the clock at once

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def served():
    clock = SimulatedClock()
    settings = Settings(
        ttft_ms=100, itl_ms=10, ttft_jitter=0, itl_jitter=0, prefill_ms_per_token=0.0,
        fail_first=2, error_kinds=("rate_limit", "server_error"), window_seconds=WINDOW,
    )
    app = create_app(settings, clock=clock, wall_clock=lambda: 1_700_000_000.0)
    with TestClient(app) as client:
        app.state.engine.pacer = JumpingPacer(clock)
        clock.now += 10.0
        chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "ignore_eos": True}
        statuses = [client.post(CHAT, json={**chat, "max_tokens": 10}).status_code for _ in range(8)]
        assert statuses == [429, 500] + [200] * 6
        for _ in range(2):
            client.post(CHAT, json={**chat, "max_tokens": 5, "stream": True}).raise_for_status()
        embedded = client.post(EMBEDDINGS, json={"model": "text-embedding-3-small", "input": "hello world"})
        assert embedded.json()["usage"]["prompt_tokens"] == 3
        assert clock.now - 1010.0 < 2.0
        yield client


def test_json_carries_the_expected_numbers(served) -> None:
    doc = served.get("/metrics").json()
    chat = doc["responses"][CHAT]
    assert chat["count"] == 10 and chat["rate"] == pytest.approx(10 / WINDOW)
    # durations: 0, 0, 0.19 x 6, 0.14 x 2 -> sorted 0 0 .14 .14 .19 .19 .19 .19 .19 .19
    assert (chat["min"], chat["max"]) == (0.0, pytest.approx(0.19))
    assert chat["avg"] == pytest.approx((6 * 0.19 + 2 * 0.14) / 10)
    assert chat["p50"] == pytest.approx(0.19)  # h = 4.5 -> between two 0.19s
    assert chat["p90"] == pytest.approx(0.19)
    assert doc["requests"][CHAT] == {"rate": pytest.approx(2.0), "avg": 0.0, "min": 0.0, "max": 0.0,
                                     "p50": 0.0, "p90": 0.0, "p99": 0.0, "count": 10}
    assert doc["errors"][CHAT]["count"] == 2 and doc["errors"][CHAT]["rate"] == pytest.approx(2 / WINDOW)
    assert doc["errors_by_status"][CHAT] == {"429": 1, "500": 1}
    assert doc["tokens"][CHAT]["rate"] == pytest.approx((6 * 10 + 2 * 5) / WINDOW)
    assert doc["totals"][CHAT] == {"requests": 10, "errors": 2, "prompt_tokens": 8 * PROMPT_TOKENS,
                                   "completion_tokens": 70, "latency_seconds_sum": pytest.approx(1.42)}
    assert doc["totals"][EMBEDDINGS]["prompt_tokens"] == 3
    assert doc["responses"][EMBEDDINGS]["max"] == pytest.approx(0.1)
    streaming = doc["streaming_stats"]
    assert (streaming["active_streams"], streaming["completed_streams"], streaming["failed_streams"]) == (0, 2, 0)
    assert streaming["ttft"]["p50"] == pytest.approx(0.1) and streaming["ttft"]["count"] == 2
    assert streaming["tokens_per_second"]["avg"] == pytest.approx(5 / 0.14)
    assert streaming["itl"]["avg"] == pytest.approx(0.01)
    assert streaming["completion_rate"] == 1.0
    assert doc["summary"]["error_rate_percentage"] == pytest.approx(100 * 2 / 11)
    assert doc["summary"]["status"] == "unhealthy"
    assert doc["models"][MODEL]["requests_succeeded"] == {"length": 8}
    assert doc["window_seconds"] == WINDOW and doc["uptime_seconds"] > WINDOW


def _prometheus_samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_prometheus_equals_json(served) -> None:
    doc = served.get("/metrics").json()
    samples = _prometheus_samples(served.get("/metrics/prometheus").text)

    def value(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    for path in (CHAT, EMBEDDINGS):
        assert value("fakeai_requests_per_second", endpoint=path) == doc["requests"][path]["rate"]
        assert value("fakeai_errors_per_second", endpoint=path) == doc["errors"][path]["rate"]
        assert value("fakeai_tokens_per_second", endpoint=path, kind="completion") == doc["tokens"][path]["rate"]
        assert value("fakeai_requests_total", endpoint=path) == doc["totals"][path]["requests"]
        assert value("fakeai_latency_seconds_count", endpoint=path) == doc["totals"][path]["requests"]
        assert value("fakeai_latency_seconds_sum", endpoint=path) == doc["totals"][path]["latency_seconds_sum"]
        for q, field in (("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99")):
            assert value("fakeai_latency_seconds", endpoint=path, quantile=q) == doc["responses"][path][field]
        assert value("fakeai_request_duration_seconds_count", endpoint=path) == doc["totals"][path]["requests"]
    assert value("fakeai_errors_total", endpoint=CHAT, status="429") == 1
    assert value("fakeai_tokens_total", endpoint=CHAT, kind="completion") == 70
    assert value("fakeai_ttft_seconds", quantile="0.5") == doc["streaming_stats"]["ttft"]["p50"]
    assert value("fakeai_ttft_seconds_count") == 2
    assert value("fakeai_streams_total", outcome="completed") == 2
    assert value("fakeai_active_streams") == 0
    assert value("fakeai_health", status="unhealthy") == 1
    assert value("fakeai_error_ratio") == pytest.approx(doc["summary"]["error_rate_percentage"] / 100)
    # the 2 streams' TTFT of 0.1 s (measured as clock differences, so a hair either side)
    assert value("fakeai_time_to_first_token_seconds_bucket", le="0.075") == 0
    assert value("fakeai_time_to_first_token_seconds_bucket", le="0.15") == 2
    assert value("fakeai_request_duration_seconds_bucket", endpoint=CHAT, le="0.0001") == 2
    assert value("fakeai_request_duration_seconds_bucket", endpoint=CHAT, le="0.15") == 4
    assert value("fakeai_request_duration_seconds_bucket", endpoint=CHAT, le="+Inf") == 10
    def engines_sum(name: str, **labels: str) -> float:  # vLLM's families are per engine
        wanted = set(labels.items())
        return sum(v for (n, found), v in samples.items() if n == name and wanted <= found and dict(found).get("engine"))

    assert engines_sum("vllm:generation_tokens_total", model_name=MODEL) == 70
    assert engines_sum("vllm:request_success_total", model_name=MODEL, finished_reason="length") == 8
    assert engines_sum("vllm:e2e_request_latency_seconds_count", model_name=MODEL) == 8


def test_csv_rows_equal_json(served) -> None:
    doc = served.get("/metrics").json()
    rows = list(csv.DictReader(io.StringIO(served.get("/metrics/csv").text)))
    by_key = {(row["metric_type"], row["endpoint"]): row for row in rows}
    for section in ("requests", "responses", "tokens", "errors"):
        for path, stats in doc[section].items():
            row = by_key[(section, path)]
            assert float(row["rate"]) == stats["rate"]
            for field in ("avg", "min", "max", "p50", "p90", "p99"):
                assert float(row[f"{field}_latency"]) == stats[field]
    assert float(by_key[("ttft", "all")]["p99_latency"]) == doc["streaming_stats"]["ttft"]["p99"]
    assert float(by_key[("tokens_per_second", "all")]["avg_latency"]) == doc["streaming_stats"]["tokens_per_second"]["avg"]


def test_detailed_health_equals_json(served) -> None:
    doc = served.get("/metrics").json()
    health = served.get("/health/detailed").json()
    summary = doc["summary"]
    assert health["status"] == summary["status"] == served.get("/health").json()["status"]
    assert health["metrics_summary"] == {
        "total_requests_per_second": summary["total_requests_per_second"],
        "total_errors_per_second": summary["total_errors_per_second"],
        "error_rate_percentage": summary["error_rate_percentage"],
        "average_latency_seconds": summary["average_latency_seconds"],
        "active_streams": 0,
    }
    assert health["metrics_summary"]["total_requests_per_second"] == pytest.approx(11 / WINDOW)
    chat = health["endpoints"][CHAT]
    assert chat["requests_per_second"] == doc["requests"][CHAT]["rate"]
    assert chat["latency_p50_ms"] == doc["responses"][CHAT]["p50"] * 1000
    assert chat["latency_p99_ms"] == doc["responses"][CHAT]["p99"] * 1000
    assert health["timestamp"] == 1_700_000_000.0 and health["kernel"] in ("compiled", "python")
    assert math.isclose(health["uptime_seconds"], doc["uptime_seconds"])


def test_scrapes_are_not_counted_as_traffic(served) -> None:
    before = served.get("/metrics").json()["totals"]
    for path in ("/metrics", "/metrics/prometheus", "/metrics/csv", "/metrics/snapshot", "/health", "/health/detailed"):
        served.get(path)
    assert served.get("/metrics").json()["totals"] == before
    assert not any(path.startswith(("/metrics", "/health")) for path in before)


def test_vllm_families_observe_what_vllm_observes(served) -> None:
    """The same workload in vLLM's terms: TTFT 0.1 s for each of the 8 generation requests,
    plain ones included; one ITL of 0.01 s per gap (6 x 9 + 2 x 4); per request a TPOT of
    0.01 s, prefill 0.1 s, decode 0.09 s (plain) or 0.04 s (streamed), no queueing. The two
    injected errors never reached an engine and the embedding is no generation: neither is in."""
    samples = _prometheus_samples(served.get("/metrics/prometheus").text)

    def total(name: str) -> float:
        return sum(value for (found, labels), value in samples.items()
                   if found == name and dict(labels).get("model_name") == MODEL)

    assert total("vllm:time_to_first_token_seconds_count") == 8
    assert total("vllm:time_to_first_token_seconds_sum") == pytest.approx(0.8)
    assert total("vllm:inter_token_latency_seconds_count") == 6 * 9 + 2 * 4
    assert total("vllm:inter_token_latency_seconds_sum") == pytest.approx(0.62)
    assert total("vllm:request_time_per_output_token_seconds_count") == 8
    assert total("vllm:request_time_per_output_token_seconds_sum") == pytest.approx(0.08)
    assert total("vllm:request_prefill_time_seconds_sum") == pytest.approx(0.8)
    assert total("vllm:request_decode_time_seconds_sum") == pytest.approx(6 * 0.09 + 2 * 0.04)
    assert total("vllm:request_inference_time_seconds_sum") == pytest.approx(6 * 0.19 + 2 * 0.14)
    assert total("vllm:e2e_request_latency_seconds_sum") == pytest.approx(6 * 0.19 + 2 * 0.14)
    assert (total("vllm:request_queue_time_seconds_count"), total("vllm:request_queue_time_seconds_sum")) == (8, 0)
    assert total("vllm:request_params_max_tokens_sum") == 6 * 10 + 2 * 5
    assert total("vllm:request_params_n_sum") == total("vllm:request_params_n_count") == 8
    assert total("vllm:request_max_num_generation_tokens_sum") == 70
    assert total("vllm:request_prompt_tokens_sum") == total("vllm:prompt_tokens_total") == 8 * PROMPT_TOKENS
    assert total("vllm:request_success_total") == 8
    # fakeai's own: every streamed gap, and the streams' mean ITL apart
    assert samples[("fakeai_inter_token_latency_seconds_count", frozenset())] == 2 * 4
    assert samples[("fakeai_inter_token_latency_seconds_sum", frozenset())] == pytest.approx(0.08)
    assert samples[("fakeai_stream_mean_inter_token_latency_seconds_count", frozenset())] == 2
