"""The neutral, immutable result of reading the metrics registry.

Every exporter (JSON, Prometheus, CSV, health, dashboard) renders one ``MetricsSnapshot``;
none of them reads the registry or computes a statistic of its own, so they cannot disagree.

Units: durations in seconds, rates per second, token counts in tokens. Statistics of an
empty window are NaN (each exporter decides how to show "no data").
"""

from __future__ import annotations

import msgspec

from fakeai.metrics.instruments import HistogramSnapshot

__all__ = (
    "EndpointSnapshot",
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
    """Time to first token: from the request's arrival until its first token was sent."""
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


class ModelSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    """One model, as vLLM reports it (``model_name``)."""

    running: int
    """Requests for this model in flight now."""
    prompt_tokens_total: int
    generation_tokens_total: int
    success_total: dict[str, int]
    """Finished requests by finish reason (``stop``, ``length``, ``abort``)."""
    ttft_histogram: HistogramSnapshot
    itl_histogram: HistogramSnapshot
    e2e_histogram: HistogramSnapshot
    prompt_tokens_histogram: HistogramSnapshot
    generation_tokens_histogram: HistogramSnapshot


class Totals(msgspec.Struct, kw_only=True, frozen=True):
    """All endpoints together, over the window."""

    requests_per_second: float
    errors_per_second: float
    error_rate_percentage: float
    """Failed / finished requests in the window, in percent; 0.0 with no requests."""
    average_latency_seconds: float
    """Mean duration of the finished requests in the window; 0.0 with no requests."""
    health: str
    """``healthy``, ``degraded`` or ``unhealthy``: see ``fakeai.metrics.health``."""


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
    endpoints: dict[str, EndpointSnapshot]
    models: dict[str, ModelSnapshot]
    streaming: StreamingSnapshot
    totals: Totals
