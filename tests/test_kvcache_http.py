"""The KV-cache simulation as clients see it: usage, TTFT, and the same numbers in every format."""

from __future__ import annotations

import csv
import io
import json
import socket
import time

import httpx
import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from fakeai.app import create_app
from fakeai.config import Settings
from tests.servers import eventually, running_app
from tests.test_monitoring_exact import JumpingPacer, SimulatedClock

MODEL = "openai/gpt-oss-120b"
COMPLETIONS = "/v1/completions"
CHAT, EMBEDDINGS = "/v1/chat/completions", "/v1/embeddings"
SYSTEM = "S" * 256  # 64 tokens: 4 blocks of 16
PREFILL_MS = 0.5


def ask(client: TestClient, prompt: str, **extra: object) -> dict:
    body = {"model": MODEL, "prompt": prompt, "max_tokens": 4, "ignore_eos": True, **extra}
    response = client.post(COMPLETIONS, json=body)
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="module")
def served():
    """P1 = system + question a (84 tokens, fresh), P2 = system + b, P2 again, then an unrelated
    64-token prompt: expected by hand below."""
    clock = SimulatedClock()
    settings = Settings(ttft_ms=100, prefill_ms_per_token=PREFILL_MS, itl_ms=10, ttft_jitter=0, itl_jitter=0)
    app = create_app(settings, clock=clock, wall_clock=lambda: 1_700_000_000.0)
    with TestClient(app) as client:
        app.state.engine.pacer = JumpingPacer(clock)
        clock.now += 10.0
        usages = []
        for prompt in (SYSTEM + "a" * 80, SYSTEM + "b" * 80, SYSTEM + "b" * 80, "X" * 256):
            started = clock.now
            usages.append((ask(client, prompt)["usage"], clock.now - started))
        yield client, usages


def test_usage_reports_cached_tokens_and_prefill_skips_them(served) -> None:
    _, usages = served
    assert [usage["prompt_tokens_details"]["cached_tokens"] for usage, _ in usages] == [0, 64, 80, 0]
    assert [usage["prompt_tokens"] for usage, _ in usages] == [84, 84, 84, 64]
    # duration = TTFT (100 ms + 0.5 ms per uncached token) + 3 inter-token latencies of 10 ms
    expected = [(100 + PREFILL_MS * uncached + 30) / 1000 for uncached in (84, 20, 4, 64)]
    assert [duration for _, duration in usages] == pytest.approx(expected)


def test_kv_cache_metrics_by_hand(served) -> None:
    client, _ = served
    for path in ("/kv-cache-metrics", "/kv-cache/metrics"):
        doc = client.get(path).json()
        kv, routing = doc["kv_cache"], doc["smart_routing"]
        assert kv["window"] == kv["total"] == {
            "requests": 4, "hit_requests": 2, "prompt_tokens": 316, "cached_tokens": 144,
            "oracle_cached_tokens": 144, "hit_rate": pytest.approx(144 / 316),
            "miss_rate": pytest.approx(172 / 316), "request_hit_rate": 0.5, "average_token_reduction": 36.0,
            "router_efficiency": 1.0,
        }
        assert kv["cache_hit_rate"] == pytest.approx(144 / 316) and kv["average_token_reduction"] == 36.0
        assert (kv["blocks_used"], kv["capacity_blocks"], kv["evictions"], kv["block_tokens"]) == (10, 4 * 16384, 0, 16)
        assert routing["policy"] == "kv-aware" and routing["router_efficiency"] == 1.0
        workers = routing["workers"]
        assert [(w["requests_routed"], w["prompt_tokens"], w["cached_tokens"], w["blocks_used"]) for w in workers] == [
            (3, 252, 144, 6), (1, 64, 0, 4), (0, 0, 0, 0), (0, 0, 0, 0)]
        assert all(w["active_requests"] == 0 for w in workers)
        assert workers[0]["usage"] == 6 / 16384


def test_every_format_shows_the_same_kv_numbers(served) -> None:
    client, _ = served
    doc = client.get("/metrics").json()
    assert doc["kv_cache"] == client.get("/kv-cache-metrics").json()["kv_cache"]
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(client.get("/metrics/prometheus").text)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    assert value("fakeai_kv_cache_hit_ratio") == pytest.approx(doc["kv_cache"]["cache_hit_rate"])
    assert value("fakeai_kv_cache_request_hit_ratio") == 0.5
    assert value("fakeai_kv_router_efficiency_ratio") == 1.0
    assert value("fakeai_kv_cache_average_token_reduction_tokens") == 36.0
    assert value("fakeai_kv_cache_hit_requests_total") == 2
    assert value("fakeai_kv_cache_oracle_cached_tokens_total") == 144
    for index, worker in enumerate(doc["smart_routing"]["workers"]):
        engine = {"model_name": MODEL, "engine": str(index)}
        assert value("vllm:prefix_cache_queries_total", **engine) == worker["prompt_tokens"]
        assert value("vllm:prefix_cache_hits_total", **engine) == worker["cached_tokens"]
        assert value("vllm:kv_cache_usage_perc", **engine) == worker["usage"]
        assert value("fakeai_kv_cache_requests_total", worker=str(index)) == worker["requests_routed"]
        assert value("fakeai_kv_cache_blocks", worker=str(index)) == worker["blocks_used"]
        assert value("fakeai_kv_worker_active_requests", worker=str(index)) == 0
    rows = {row["metric_type"]: row for row in csv.DictReader(io.StringIO(client.get("/metrics/csv").text))}
    window = doc["window_seconds"]
    assert float(rows["kv_prompt_tokens"]["rate"]) == pytest.approx(316 / window)
    assert float(rows["kv_cached_tokens"]["rate"]) == pytest.approx(144 / window)
    assert float(rows["kv_cached_tokens"]["max_latency"]) == 80.0
    health = client.get("/health/detailed").json()["kv_cache"]
    assert health["cache_hit_rate"] == doc["kv_cache"]["cache_hit_rate"]
    assert health["router_efficiency"] == 1.0 and health["active_requests_by_worker"] == [0, 0, 0, 0]


def test_round_robin_efficiency_counts_what_an_oracle_would_have_reused() -> None:
    settings = Settings(zero_latency=True, routing_policy="round-robin", kv_workers=2)
    with TestClient(create_app(settings)) as client:
        cached = [ask(client, SYSTEM + letter * 80)["usage"]["prompt_tokens_details"]["cached_tokens"]
                  for letter in "abc"]
        assert cached == [0, 0, 64], "the 2nd went to the empty worker; the 3rd back to the first"
        reuse = client.get("/kv-cache-metrics").json()["kv_cache"]["total"]
        assert (reuse["cached_tokens"], reuse["oracle_cached_tokens"]) == (64, 128)
        assert reuse["router_efficiency"] == 0.5


def _first_token_seconds(client: httpx.Client, url: str, prompt: str) -> tuple[float, int]:
    body = {"model": MODEL, "prompt": prompt, "max_tokens": 2, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}}
    started = time.perf_counter()
    with client.stream("POST", url, json=body) as response:
        lines = response.iter_lines()
        next(line for line in lines if line.startswith("data: "))
        first = time.perf_counter() - started
        usage_line = [line for line in lines if '"usage"' in line and '"cached_tokens"' in line][-1]
    return first, httpx.Response(200, content=usage_line.removeprefix("data: ")).json()["usage"][
        "prompt_tokens_details"]["cached_tokens"]


@pytest.mark.timing
def test_a_cached_prompt_streams_its_first_token_sooner_by_the_prefill_it_skips() -> None:
    """2048 fresh tokens at 0.05 ms each: 102.4 ms of prefill that a repeat skips entirely."""
    settings = Settings(ttft_ms=10, prefill_ms_per_token=0.05, ttft_jitter=0, itl_ms=1, itl_jitter=0)
    with running_app(settings) as (base_url, _), httpx.Client(timeout=10) as client:
        url = base_url + COMPLETIONS
        fresh, repeated = [], []
        for attempt in range(3):
            prompt = f"{attempt:04d}" + "the quick brown fox " * 409 + "abcdefgh"  # 8192 characters, 2048 tokens
            fresh.append(_first_token_seconds(client, url, prompt))
            repeated.append(_first_token_seconds(client, url, prompt))
        assert [cached for _, cached in fresh] == [0, 0, 0]
        assert [cached for _, cached in repeated] == [2048, 2048, 2048]
        # A busy machine only ever delays a first token: the fastest of each kind is the one
        # least disturbed, and their difference is the prefill the cache saved.
        assert min(f for f, _ in fresh) >= 0.010 + 0.1024 and min(r for r, _ in repeated) >= 0.010
        saved = min(f for f, _ in fresh) - min(r for r, _ in repeated)
        assert saved == pytest.approx(0.1024, abs=0.010)


def test_every_way_out_releases_the_worker() -> None:
    """Success, injected and mid-stream errors, a context-length error and a client that leaves:
    afterwards no worker has a running request or a pinned block."""
    settings = Settings(ttft_ms=5, itl_ms=20, ttft_jitter=0, itl_jitter=0, fail_first=1, max_context_tokens=4096)
    with running_app(settings) as (base_url, app), httpx.Client(timeout=10) as client:
        kv = app.state.engine.kv_cache
        url = base_url + COMPLETIONS
        body = {"model": MODEL, "prompt": SYSTEM + "q" * 80, "max_tokens": 3}
        assert client.post(url, json=body).status_code == 429  # injected before routing
        assert client.post(url, json=body).status_code == 200
        assert client.post(url, json={**body, "max_tokens": 5000}).status_code == 400  # context length
        with client.stream("POST", url, json={**body, "max_tokens": 200, "ignore_eos": True, "stream": True}) as r:
            lines = r.iter_lines()  # kept: a dropped iterator would close the stream
            next(line for line in lines if line.startswith("data: "))
            assert client.get(base_url + "/kv-cache-metrics").json()["smart_routing"]["workers"][0][
                "active_requests"] == 1, "a running stream holds its worker"
            assert kv.workers[0].pinned_blocks() == 5
        # the client left mid-stream
        eventually(lambda: app.state.metrics.in_flight == 0, "every request ended on the server")
        workers = client.get(base_url + "/kv-cache-metrics").json()["smart_routing"]["workers"]
        assert [w["active_requests"] for w in workers] == [0, 0, 0, 0]
        assert sum(w["requests_routed"] for w in workers) == 2, "the 429 and the 400 never reached a worker"
        assert all(worker.pinned_blocks() == 0 for worker in kv.workers)


def test_a_stream_broken_by_an_injected_error_releases_its_worker() -> None:
    settings = Settings(zero_latency=True, stream_error_rate=1.0)
    with running_app(settings) as (base_url, app), httpx.Client(timeout=10) as client:
        body = {"model": MODEL, "prompt": SYSTEM, "max_tokens": 20, "ignore_eos": True, "stream": True}
        for _ in range(3):
            with client.stream("POST", base_url + COMPLETIONS, json=body) as response:
                assert '"error"' in response.read().decode()
        eventually(lambda: app.state.metrics.in_flight == 0, "every request ended on the server")
        assert app.state.metrics.snapshot().streaming.failed_streams == 3
        workers = client.get(base_url + "/kv-cache-metrics").json()["smart_routing"]["workers"]
        assert [w["active_requests"] for w in workers] == [0, 0, 0, 0] and workers[0]["requests_routed"] == 3
        assert all(worker.pinned_blocks() == 0 for worker in app.state.engine.kv_cache.workers)


@pytest.mark.parametrize("path", [CHAT, COMPLETIONS, EMBEDDINGS])
def test_a_client_that_leaves_a_plain_request_is_recorded_at_once_and_releases_its_worker(path: str) -> None:
    """The answer is due in a minute; the client leaves after the server has routed it: the
    request ends then (499), not when its answer would have been due, and frees its worker."""
    settings = Settings(ttft_ms=60_000, ttft_jitter=0, max_context_tokens=4096)
    body = {"model": "text-embedding-3-small", "input": SYSTEM} if path == EMBEDDINGS else (
        {"model": MODEL, "prompt": SYSTEM, "max_tokens": 3} if path == COMPLETIONS
        else {"model": MODEL, "messages": [{"role": "user", "content": SYSTEM}], "max_tokens": 3})
    with running_app(settings) as (base_url, app):
        registry = app.state.metrics
        port = int(base_url.rsplit(":", 1)[1])
        payload = json.dumps(body).encode()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                         % (path.encode(), len(payload), payload))
            eventually(lambda: registry.in_flight == 1, "the request was admitted")

        def recorded() -> bool:  # in_flight drops inside the record, before its journal entry is written
            figures = registry.snapshot().endpoints.get(path)
            return registry.in_flight == 0 and figures is not None and figures.latency.count == 1

        eventually(recorded, "the server saw the client leave and recorded it", seconds=10)
        figures = registry.snapshot().endpoints[path]
        assert figures.requests_total == 1 and figures.errors_total == {499: 1}
        assert figures.latency.max < 10, "ended when the client left, not when the answer was due"
        workers = httpx.get(base_url + "/kv-cache-metrics").json()["smart_routing"]["workers"]
        assert [w["active_requests"] for w in workers] == [0, 0, 0, 0]
        assert sum(w["requests_routed"] for w in workers) == (0 if path == EMBEDDINGS else 1)
        assert all(worker.pinned_blocks() == 0 for worker in app.state.engine.kv_cache.workers)
