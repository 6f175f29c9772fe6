"""Cumulative histograms beside the sliding windows: their bucket sets and their snapshot.

A region's histogram block (see the kernel's ``Region.observe``) counts observations per
bucket; the cumulative ``le`` counts Prometheus wants are computed once per scrape. Bucket
bounds are upper bounds, inclusive, as Prometheus defines them.
"""

from __future__ import annotations

import msgspec

__all__ = (
    "DURATION_BUCKETS",
    "INTER_TOKEN_BUCKETS",
    "LATENESS_BUCKETS",
    "TOKEN_COUNT_BUCKETS",
    "VLLM_INTER_TOKEN_BUCKETS",
    "VLLM_N_BUCKETS",
    "VLLM_REQUEST_LATENCY_BUCKETS",
    "VLLM_TOKEN_BUCKETS",
    "VLLM_TTFT_BUCKETS",
    "HistogramSnapshot",
    "build_1_2_5_buckets",
)

DURATION_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3,
    0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 30.0, 60.0, 120.0,
)
"""Request durations and time to first token, in seconds: from 100 us (fast simulated
answers) to two minutes (long streams)."""

INTER_TOKEN_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.025, 0.03,
    0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0,
)
"""Inter-token latency, in seconds: dense around the usual 5-50 ms, down to 100 us."""

LATENESS_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1)
"""How late paced work was served, in seconds: 50 us (on time) to 100 ms (a stalled loop)."""

TOKEN_COUNT_BUCKETS = (
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
    32768.0, 65536.0, 131072.0,
)
"""Tokens per request (prompt or completion): powers of two up to 128k."""

# vLLM's bucket sets, exactly as ``vllm/v1/metrics/loggers.py`` (PrometheusStatLogger) declares them.

VLLM_TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
    160.0, 640.0, 2560.0,
)
"""``vllm:time_to_first_token_seconds``."""

VLLM_INTER_TOKEN_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)
"""``vllm:inter_token_latency_seconds`` and ``vllm:request_time_per_output_token_seconds``."""

VLLM_REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0,
    1920.0, 7680.0,
)
"""vLLM's ``request_latency_buckets``: end-to-end latency and the request phases (queue,
prefill, decode, inference)."""

VLLM_N_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0)
"""``vllm:request_params_n``."""


def build_1_2_5_buckets(max_value: int) -> tuple[float, ...]:
    """vLLM's token-count buckets: 1, 2, 5, 10, 20, 50, ... while at most ``max_value`` (its
    ``build_1_2_5_buckets(max_model_len)``)."""
    bounds: list[float] = []
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > max_value:
                return tuple(bounds)
            bounds.append(float(value))
        exponent += 1


DEFAULT_MAX_MODEL_LEN = 131_072
"""The context length the declared token buckets are shown for (``--max-context-tokens``'
default); a registry uses the server's own (``bucket_sets``)."""

VLLM_TOKEN_BUCKETS = build_1_2_5_buckets(DEFAULT_MAX_MODEL_LEN)
"""vLLM's per-request token histograms (prompt, generation, max_tokens, ...) at the default
context length."""


class HistogramSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    bounds: tuple[float, ...]
    """Upper bounds of the buckets, without +Inf."""
    cumulative: tuple[int, ...]
    """Observations at or below each bound, then the total (the +Inf bucket): len(bounds) + 1."""
    sum: float
    count: int
