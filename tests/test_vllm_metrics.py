"""vLLM's metric names with vLLM's meaning: fakeai's ``/metrics`` against vLLM's own declarations.

``VLLM_FAMILIES`` is taken from vLLM's source, ``vllm/v1/metrics/loggers.py``
(``PrometheusStatLogger.__init__``: every family's name, type, ``labelnames`` =
``["model_name", "engine"]`` plus its own, and bucket list; counters are exposed with
``_total`` by prometheus_client), and what one observation means from
``vllm/v1/metrics/stats.py`` (``IterationStats``: TTFT once per request when its first token
is produced, inter-token latency once per token after the first, the per-request histograms
once per finished request) and ``vllm/v1/engine/parallel_sampling.py`` (``n`` and the longest
choice's tokens once per request).
"""

from __future__ import annotations

import collections

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakeai.config import Settings
from tests.servers import eventually, running_app

MODEL = "openai/gpt-oss-120b"
CONTEXT = 8192
TOKENS_1_2_5 = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)  # build_1_2_5_buckets(8192)
TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
        80.0, 160.0, 640.0, 2560.0)
ITL = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
REQUEST_LATENCY = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
                   480.0, 960.0, 1920.0, 7680.0)
ENGINE = ("model_name", "engine")

VLLM_FAMILIES = {
    # name (as the parser names the family): (type, label names, buckets)
    "vllm:num_requests_running": ("gauge", ENGINE, None),
    "vllm:num_requests_waiting": ("gauge", ENGINE, None),
    "vllm:engine_sleep_state": ("gauge", (*ENGINE, "sleep_state"), None),
    "vllm:kv_cache_usage_perc": ("gauge", ENGINE, None),
    "vllm:prefix_cache_queries": ("counter", ENGINE, None),
    "vllm:prefix_cache_hits": ("counter", ENGINE, None),
    "vllm:num_preemptions": ("counter", ENGINE, None),
    "vllm:prompt_tokens": ("counter", ENGINE, None),
    "vllm:prompt_tokens_by_source": ("counter", (*ENGINE, "source"), None),
    "vllm:prompt_tokens_cached": ("counter", ENGINE, None),
    "vllm:generation_tokens": ("counter", ENGINE, None),
    "vllm:request_success": ("counter", (*ENGINE, "finished_reason"), None),
    "vllm:request_prompt_tokens": ("histogram", ENGINE, TOKENS_1_2_5),
    "vllm:request_generation_tokens": ("histogram", ENGINE, TOKENS_1_2_5),
    "vllm:request_max_num_generation_tokens": ("histogram", ENGINE, TOKENS_1_2_5),
    "vllm:request_params_n": ("histogram", ENGINE, (1, 2, 5, 10, 20)),
    "vllm:request_params_max_tokens": ("histogram", ENGINE, TOKENS_1_2_5),
    "vllm:time_to_first_token_seconds": ("histogram", ENGINE, TTFT),
    "vllm:inter_token_latency_seconds": ("histogram", ENGINE, ITL),
    "vllm:request_time_per_output_token_seconds": ("histogram", ENGINE, ITL),
    "vllm:e2e_request_latency_seconds": ("histogram", ENGINE, REQUEST_LATENCY),
    "vllm:request_queue_time_seconds": ("histogram", ENGINE, REQUEST_LATENCY),
    "vllm:request_inference_time_seconds": ("histogram", ENGINE, REQUEST_LATENCY),
    "vllm:request_prefill_time_seconds": ("histogram", ENGINE, REQUEST_LATENCY),
    "vllm:request_decode_time_seconds": ("histogram", ENGINE, REQUEST_LATENCY),
    "vllm:request_prefill_kv_computed_tokens": ("histogram", ENGINE, TOKENS_1_2_5),
}
HELP = {  # vLLM's documentation strings, for the families fakeai fills
    "vllm:num_requests_running": "Number of requests in model execution batches.",
    "vllm:num_requests_waiting": "Number of requests waiting to be processed.",
    "vllm:kv_cache_usage_perc": "KV-cache usage. 1 means 100 percent usage.",
    "vllm:prompt_tokens_cached": "Number of cached prompt tokens (local + external).",
    "vllm:request_success": "Count of successfully processed requests.",
    "vllm:time_to_first_token_seconds": "Histogram of time to first token in seconds.",
    "vllm:inter_token_latency_seconds": "Histogram of inter-token latency in seconds.",
    "vllm:request_time_per_output_token_seconds": "Histogram of time_per_output_token_seconds per request.",
    "vllm:request_prefill_time_seconds": "Histogram of time spent in PREFILL phase for request.",
    "vllm:request_max_num_generation_tokens": "Histogram of maximum number of requested generation tokens.",
}
MAX_TOKENS = 6


@pytest.fixture(scope="module")
def exposition():
    """A real server after plain and streamed chat and completions requests, ``n`` > 1, and a
    streaming client that leaves after its first token: ``(families, generation requests,
    choices)``."""
    settings = Settings(ttft_ms=20, itl_ms=5, kv_workers=2, max_context_tokens=CONTEXT)
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": MAX_TOKENS,
            "ignore_eos": True}
    completion = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": MAX_TOKENS, "ignore_eos": True}
    with running_app(settings) as (url, _), httpx.Client(base_url=url, timeout=30) as client:
        requests = [("/v1/chat/completions", chat), ("/v1/chat/completions", {**chat, "stream": True}),
                    ("/v1/completions", {**completion, "n": 3}), ("/v1/completions", {**completion, "n": 2,
                                                                                      "stream": True})]
        for path, body in requests:
            client.post(path, json=body).raise_for_status()
        with client.stream("POST", "/v1/chat/completions", json={**chat, "max_tokens": 4000, "stream": True}) as left:
            next(left.iter_lines())  # its first token, then the client leaves
        choices = 1 + 1 + 3 + 2 + 1

        def families() -> dict:
            parsed = {family.name: family for family in
                      text_string_to_metric_families(client.get("/metrics/prometheus").text)}
            recorded = sum(s.value for s in parsed["vllm:request_success"].samples)
            return parsed if recorded == len(requests) + 1 else {}

        eventually(families, "the client that left is recorded", seconds=10)
        yield families(), len(requests) + 1, choices


def test_every_vllm_family_has_vllms_type_labels_and_buckets(exposition) -> None:
    families, _, _ = exposition
    for name, (kind, labels, buckets) in VLLM_FAMILIES.items():
        assert name in families, name
        family = families[name]
        assert family.type == kind, name
        assert family.samples, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == set(labels), (name, sample)
            assert sample.labels["model_name"] == MODEL and sample.labels["engine"] in ("0", "1")
        if buckets is not None:
            bounds = sorted({float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket")})
            assert bounds == [*map(float, buckets), float("inf")], name
    for name, documentation in HELP.items():
        assert families[name].documentation == documentation
    assert not {name for name in families if name.startswith("vllm:")} - set(VLLM_FAMILIES), "no family of our own"


def _sums(family, suffix: str = "", **labels: str) -> float:
    return sum(s.value for s in family.samples if s.name == family.name + suffix
               and all(s.labels.get(k) == v for k, v in labels.items()))


def test_each_observation_means_what_it_means_in_vllm(exposition) -> None:
    families, requests, choices = exposition
    f = families
    generated = _sums(f["vllm:generation_tokens"], "_total")
    # TTFT once per generation request, streamed or not (the one that left had its first token)
    assert _sums(f["vllm:time_to_first_token_seconds"], "_count") == requests
    # ITL once per gap: each choice's tokens after its first
    assert _sums(f["vllm:inter_token_latency_seconds"], "_count") == generated - choices
    # fakeai's own: every gap of the streamed choices (1 + 2 of 6 tokens, and the one that left)
    assert _sums(f["fakeai_inter_token_latency_seconds"], "_count") == 3 * (MAX_TOKENS - 1) + (
        generated - (MAX_TOKENS * 7) - 1)
    # once per finished request: its reason, e2e, phases, TPOT, parameters
    assert _sums(f["vllm:request_success"], "_total", finished_reason="length") == requests - 1
    assert _sums(f["vllm:request_success"], "_total", finished_reason="abort") == 1
    for name in ("vllm:e2e_request_latency_seconds", "vllm:request_time_per_output_token_seconds",
                 "vllm:request_prefill_time_seconds", "vllm:request_decode_time_seconds",
                 "vllm:request_inference_time_seconds", "vllm:request_queue_time_seconds",
                 "vllm:request_params_n", "vllm:request_params_max_tokens", "vllm:request_generation_tokens",
                 "vllm:request_max_num_generation_tokens", "vllm:request_prefill_kv_computed_tokens"):
        assert _sums(f[name], "_count") == requests, name
    assert _sums(f["vllm:request_params_n"], "_sum") == 1 + 1 + 3 + 2 + 1
    assert _sums(f["vllm:request_params_max_tokens"], "_sum") == 4 * MAX_TOKENS + 4000
    assert _sums(f["vllm:request_max_num_generation_tokens"], "_sum") == generated - 3 * MAX_TOKENS  # the longest
    assert _sums(f["vllm:request_generation_tokens"], "_sum") == generated
    assert _sums(f["vllm:request_queue_time_seconds"], "_sum") == 0.0  # no engine model here: nothing queues
    # TPOT per request: ITL 5 ms, so about 5 ms each (the one that left may have had 1 token: 0)
    tpot = f["vllm:request_time_per_output_token_seconds"]
    assert 0.003 * (requests - 1) < _sums(tpot, "_sum") < 0.012 * requests
    # the phases add up: inference = prefill + decode; TTFT = prefill (queue time 0)
    prefill, decode, inference = (_sums(f[f"vllm:request_{phase}_time_seconds"], "_sum")
                                  for phase in ("prefill", "decode", "inference"))
    assert inference == pytest.approx(prefill + decode)
    assert _sums(f["vllm:time_to_first_token_seconds"], "_sum") == pytest.approx(prefill)
    # per engine: what each counted adds up to the requests, and nothing runs now
    per_engine = collections.Counter()
    for sample in f["vllm:request_success"].samples:
        per_engine[sample.labels["engine"]] += sample.value
    assert sum(per_engine.values()) == requests
    routed = {s.labels["worker"]: s.value for s in f["fakeai_kv_cache_requests"].samples}
    assert {engine: per_engine[engine] for engine in routed} == routed
    assert _sums(f["vllm:num_requests_running"]) == 0 and _sums(f["vllm:num_requests_waiting"]) == 0
    assert _sums(f["vllm:num_preemptions"], "_total") == 0
    assert _sums(f["vllm:prompt_tokens"], "_total") == _sums(f["vllm:request_prompt_tokens"], "_sum")
    assert _sums(f["vllm:request_prefill_kv_computed_tokens"], "_sum") == (
        _sums(f["vllm:prompt_tokens"], "_total") - _sums(f["vllm:prompt_tokens_cached"], "_total"))
    for sample in f["vllm:engine_sleep_state"].samples:
        assert sample.value == (sample.labels["sleep_state"] == "awake")
