"""The neutral, immutable result of reading the metrics registry.

Every exporter (JSON, Prometheus, CSV, health, dashboard) renders one ``MetricsSnapshot``;
none of them reads the registry or computes a statistic of its own, so they cannot disagree.

Units: durations in seconds, rates per second, token counts in tokens. Statistics of an
empty window are NaN (each exporter decides how to show "no data").
"""

from __future__ import annotations

from typing import Any

import msgspec

from fakeai.metrics.instruments import HistogramSnapshot

__all__ = (
    "EndpointSnapshot",
    "EngineSnapshot",
    "KVCacheSnapshot",
    "KVReuse",
    "KVWorkerSnapshot",
    "LabelSpaceSnapshot",
    "MetricsSnapshot",
    "ModelSnapshot",
    "StreamingSnapshot",
    "Totals",
    "WindowStats",
)


class WindowStats(msgspec.Struct, kw_only=True, frozen=True):
    """Statistics of one sliding window of samples."""

    count: int
    """Samples in the window."""
    rate: float
    """Samples per second (see ``SlidingWindow.rate`` for the divisor)."""
    sum: float
    """Sum of the samples' values."""
    sum_rate: float
    """Sum of the values per second (e.g. tokens per second for a window of token counts)."""
    avg: float
    min: float
    max: float
    p50: float
    p90: float
    p99: float


class EndpointSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    """One endpoint (its route path, e.g. ``/v1/chat/completions``, or ``unmatched``)."""

    latency: WindowStats
    """Finished requests' durations (until the last byte); its count/rate are the request rate."""
    errors: WindowStats
    """Durations of the finished requests that failed (status >= 400)."""
    prompt_tokens: WindowStats
    """Prompt tokens per finished request; ``sum_rate`` is prompt tokens per second."""
    completion_tokens: WindowStats
    """Completion tokens per finished request; ``sum_rate`` is completion tokens per second."""
    requests_total: int
    """Finished requests since start."""
    errors_total: dict[int, int]
    """Failed requests since start, by HTTP status."""
    prompt_tokens_total: int
    completion_tokens_total: int
    duration_histogram: HistogramSnapshot
    """Request durations since start; its ``sum`` and ``count`` are the summaries' too."""
    prompt_tokens_histogram: HistogramSnapshot
    completion_tokens_histogram: HistogramSnapshot


class StreamingSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    """Server-sent-event streams, all endpoints together."""

    active_streams: int
    completed_streams: int
    """Streams that sent every token and the final ``[DONE]``, since start."""
    failed_streams: int
    """Streams that ended early (error or client disconnect), since start."""
    completion_rate: float
    """completed / (completed + failed) since start; NaN before the first stream ends."""
    ttft: WindowStats
    """Time to first token: from the request's arrival until the write carrying its first
    token was made."""
    tokens_per_second: WindowStats
    """Per finished stream: completion tokens / the stream's duration."""
    itl: WindowStats
    """Per finished stream of 2+ tokens: its mean inter-token latency,
    (duration - TTFT) / (tokens - 1)."""
    tokens_per_second_sum: float
    """Sum of every finished stream's tokens per second since start (a summary's ``_sum``)."""
    tokens_per_second_count: int
    ttft_histogram: HistogramSnapshot
    itl_histogram: HistogramSnapshot
    """Each finished stream's mean inter-token latency (as ``itl``, since start)."""
    itl_gaps_histogram: HistogramSnapshot
    """Every gap between two consecutive streamed tokens of a choice (0 between tokens sent in
    one write), since start."""


class EngineSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    """One model on one simulated engine (a KV worker), as vLLM reports an engine: the
    generation requests the router sent there."""

    running: int
    """Requests routed here and not finished."""
    waiting: int
    """Requests in this engine's waiting queue (always 0 without the engine model)."""
    prompt_tokens_total: int
    generation_tokens_total: int
    cached_prompt_tokens_total: int
    """Prompt tokens found in the engine's prefix cache (not prefilled)."""
    preemptions_total: int
    success_total: dict[str, int]
    """Finished requests by finish reason, ``stop``, ``length`` and ``abort`` always present."""
    ttft_histogram: HistogramSnapshot
    itl_histogram: HistogramSnapshot
    tpot_histogram: HistogramSnapshot
    e2e_histogram: HistogramSnapshot
    queue_histogram: HistogramSnapshot
    inference_histogram: HistogramSnapshot
    prefill_histogram: HistogramSnapshot
    decode_histogram: HistogramSnapshot
    prompt_tokens_histogram: HistogramSnapshot
    generation_tokens_histogram: HistogramSnapshot
    max_generation_tokens_histogram: HistogramSnapshot
    max_tokens_histogram: HistogramSnapshot
    prefill_kv_computed_histogram: HistogramSnapshot
    n_histogram: HistogramSnapshot


class ModelSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    """One model (``model_name``): its engines' figures, and their sums."""

    running: int
    """Generation requests for this model routed to an engine and not finished."""
    prompt_tokens_total: int
    generation_tokens_total: int
    success_total: dict[str, int]
    """Finished generation requests by finish reason (only the reasons that occurred)."""
    engines: dict[str, EngineSnapshot]
    """By engine (the simulated KV worker's number)."""


class Totals(msgspec.Struct, kw_only=True, frozen=True):
    """All endpoints together, over the window."""

    requests_per_second: float
    errors_per_second: float
    error_rate_percentage: float
    """Failed / finished requests in the window, in percent; 0.0 with no requests."""
    average_latency_seconds: float
    """Mean duration of the finished requests in the window; 0.0 with no requests."""
    latency: WindowStats
    """Durations of every endpoint's finished requests in the window, together (the union of
    the samples, so its percentiles are exact, not an average of per-endpoint ones)."""
    health: str
    """``healthy``, ``degraded`` or ``unhealthy``: see ``fakeai.metrics.health``."""


class KVWorkerSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    """One simulated inference worker and its prefix cache."""

    id: int
    """Its number: the ``engine`` label of vLLM's families."""
    blocks_used: int
    capacity_blocks: int
    usage: float
    """blocks_used / capacity_blocks (0..1), vLLM's ``kv_cache_usage_perc``."""
    active_requests: int
    """Requests routed to the worker and not yet ended."""
    requests_routed: int
    """Requests routed to the worker since start."""
    prompt_tokens: int
    """Prompt tokens looked up in its cache since start (vLLM's prefix-cache queries)."""
    cached_tokens: int
    """Prompt tokens found in its cache since start (vLLM's prefix-cache hits)."""
    evictions: int
    """Blocks evicted since start."""
    requests_running: int = 0
    """Requests in the engine's batch now (vLLM's ``num_requests_running``, every model together;
    without the engine model, the requests routed to it and not finished)."""
    requests_waiting: int = 0
    """Requests in the engine's waiting queue now (vLLM's ``num_requests_waiting``)."""
    preemptions: int = 0
    """Requests the engine preempted since start (vLLM's ``num_preemptions``)."""


class KVReuse(msgspec.Struct, kw_only=True, frozen=True):
    """What the prefix caches saved over one period (the sliding window, or since start)."""

    requests: int
    """Requests routed."""
    hit_requests: int
    """Requests with at least one cached block."""
    prompt_tokens: int
    cached_tokens: int
    oracle_cached_tokens: int
    """Cached tokens an oracle router (always the worker with the longest cached prefix) would
    have reused for the same requests."""
    hit_rate: float
    """cached_tokens / prompt_tokens (token level); NaN with no prompt tokens."""
    miss_rate: float
    """1 - hit_rate."""
    request_hit_rate: float
    """hit_requests / requests; NaN with no requests."""
    average_token_reduction: float
    """Mean cached (not prefilled) tokens per request; NaN with no requests."""
    router_efficiency: float
    """cached_tokens / oracle_cached_tokens; 1.0 when nothing was reusable, NaN with no requests."""


class KVCacheSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    """The simulated prefix caches and the router in front of them."""

    model_name: str
    """The model the workers are labelled with in vLLM's families (the first one served)."""
    policy: str
    """The routing policy (``kv-aware``, ``round-robin``, ``random``, ``least-loaded``)."""
    block_tokens: int
    workers: list[KVWorkerSnapshot]
    prompt_tokens: WindowStats
    """Prompt tokens per routed request over the window; ``sum_rate`` is looked-up tokens per second."""
    cached_tokens: WindowStats
    """Cached tokens per routed request (0 for a miss); ``sum_rate`` is cached tokens per second."""
    window: KVReuse
    total: KVReuse
    blocks_used: int
    capacity_blocks: int
    usage: float
    """All workers' blocks used / their capacity (0..1)."""
    evictions: int
    requests_running: int = 0
    """Every engine's ``requests_running`` together."""
    requests_waiting: int = 0
    """Every engine's ``requests_waiting`` together."""
    preemptions: int = 0


class LabelSpaceSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    """How the bounded label space is used (see ``fakeai.metrics.labels``)."""

    model_label_budget: int
    """Model names that can have a label of their own (``--max-model-labels``, or more
    ``--models``)."""
    model_labels: int
    """Model names that have one (configured ones included, used or not)."""
    other_requests: int
    """Requests admitted since start whose model had no label: counted under ``__other__``."""
    unrecorded_figures: int
    """Figures that found no room in a metrics region and were not recorded (0 unless the
    region's arithmetic is wrong: a figure lost is counted here, never a request failed)."""


class MetricsSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    timestamp: float
    """Wall-clock time of the snapshot (Unix seconds)."""
    uptime_seconds: float
    window_seconds: float
    kernel: str
    """The sliding-window implementation in use: ``compiled`` or ``python``."""
    dropped_samples: int
    """Samples discarded because a window was full (0 unless the cap was reached)."""
    in_flight: int
    """API requests being served now."""
    processes: int
    """Server processes whose metrics this snapshot covers and that are alive (``--workers``)."""
    endpoints: dict[str, EndpointSnapshot]
    models: dict[str, ModelSnapshot]
    """By model name; requests for models without a label of their own under ``__other__``."""
    label_space: LabelSpaceSnapshot
    streaming: StreamingSnapshot
    totals: Totals
    kv_cache: KVCacheSnapshot
    series: dict[str, list[tuple[tuple[tuple[str, str], ...], Any]]] = msgspec.field(default_factory=dict)
    """The figures of every declared metric with cells of its own (``Metric.cell``), by
    name: ``[(labels, value)]``, a value a number or a ``HistogramSnapshot``."""
