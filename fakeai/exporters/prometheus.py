"""Prometheus text exposition 0.0.4 and OpenMetrics 1.0, from one snapshot.

Three groups of families (``docs`` names each one's meaning and unit):

* the seed's, computed over the sliding window: ``fakeai_requests_per_second``,
  ``fakeai_errors_per_second``, ``fakeai_tokens_per_second`` (gauges),
  ``fakeai_latency_seconds`` and ``fakeai_ttft_seconds`` (summaries whose quantiles describe
  the window and whose ``_sum``/``_count`` are cumulative, as Prometheus' Go client does),
  ``fakeai_active_streams``;
* Prometheus-native ones: ``_total`` counters and histograms with buckets down to 100 us,
  for ``rate()`` and ``histogram_quantile()``;
* vLLM's drop-in names (``vllm:*``, labelled ``model_name``) for tools built for vLLM.

The two formats differ only where the standards do: OpenMetrics names a counter family
without ``_total`` in ``# HELP``/``# TYPE`` and ends with ``# EOF``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from fakeai.metrics import QUANTILES, HistogramSnapshot, KVCacheSnapshot, MetricsSnapshot, WindowStats

__all__ = ("OPENMETRICS_CONTENT_TYPE", "TEXT_CONTENT_TYPE", "render_prometheus")

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

Labels = tuple[tuple[str, str], ...]
Sample = tuple[str, Labels, float]  # (suffix, labels, value)


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{_escape_label(value)}"' for name, value in labels) + "}"


class _Exposition:
    def __init__(self, openmetrics: bool) -> None:
        self.openmetrics = openmetrics
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> None:
        """One family: HELP, TYPE, then its samples (``name + suffix``)."""
        shown_name = name.removesuffix("_total") if (kind == "counter" and self.openmetrics) else name
        help_text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
        self.lines.append(f"# HELP {shown_name} {help_text}")
        self.lines.append(f"# TYPE {shown_name} {kind}")
        for suffix, labels, value in samples:
            self.lines.append(f"{name}{suffix}{_labels(labels)} {_number(value)}")

    def text(self) -> bytes:
        if self.openmetrics:
            self.lines.append("# EOF")
        return ("\n".join(self.lines) + "\n").encode()


def _histogram(histogram: HistogramSnapshot, labels: Labels = ()) -> list[Sample]:
    samples: list[Sample] = [
        ("_bucket", (*labels, ("le", _number(float(bound)))), count)
        for bound, count in zip(histogram.bounds, histogram.cumulative)
    ]
    samples.append(("_bucket", (*labels, ("le", "+Inf")), histogram.cumulative[-1]))
    samples.append(("_sum", labels, histogram.sum))
    samples.append(("_count", labels, histogram.count))
    return samples


def _summary(stats: WindowStats, total: float, count: int, labels: Labels = ()) -> list[Sample]:
    quantiles = (stats.p50, stats.p90, stats.p99)
    samples: list[Sample] = [
        ("", (*labels, ("quantile", repr(q))), value) for q, value in zip(QUANTILES, quantiles)
    ]
    samples.append(("_sum", labels, total))
    samples.append(("_count", labels, count))
    return samples


def _kv_families(out: _Exposition, kv: KVCacheSnapshot) -> None:
    workers = [((("worker", str(index)),), worker) for index, worker in enumerate(kv.workers)]
    total = kv.total
    out.family("fakeai_kv_cache_requests_total", "counter", "Requests routed to each simulated worker.",
               [("", labels, worker.requests_routed) for labels, worker in workers])
    out.family("fakeai_kv_cache_hit_requests_total", "counter",
               "Requests that found at least one prompt block cached.", [("", (), total.hit_requests)])
    out.family("fakeai_kv_cache_prompt_tokens_total", "counter", "Prompt tokens looked up in each worker's cache.",
               [("", labels, worker.prompt_tokens) for labels, worker in workers])
    out.family("fakeai_kv_cache_cached_tokens_total", "counter",
               "Prompt tokens found in each worker's cache (not prefilled).",
               [("", labels, worker.cached_tokens) for labels, worker in workers])
    out.family("fakeai_kv_cache_oracle_cached_tokens_total", "counter",
               "Prompt tokens an oracle router (longest cached prefix) would have found cached.",
               [("", (), total.oracle_cached_tokens)])
    out.family("fakeai_kv_cache_evictions_total", "counter", "Blocks evicted from each worker's cache.",
               [("", labels, worker.evictions) for labels, worker in workers])
    out.family("fakeai_kv_cache_blocks", "gauge", "Blocks held in each worker's cache.",
               [("", labels, worker.blocks_used) for labels, worker in workers])
    out.family("fakeai_kv_cache_capacity_blocks", "gauge", "Capacity of each worker's cache, in blocks.",
               [("", labels, worker.capacity_blocks) for labels, worker in workers])
    out.family("fakeai_kv_cache_usage_ratio", "gauge", "Blocks held / capacity of each worker's cache (0..1).",
               [("", labels, worker.usage) for labels, worker in workers])
    out.family("fakeai_kv_worker_active_requests", "gauge", "Requests running on each simulated worker.",
               [("", labels, worker.active_requests) for labels, worker in workers])
    window = kv.window
    out.family("fakeai_kv_cache_hit_ratio", "gauge",
               "Cached / looked-up prompt tokens over the sliding window (0..1; NaN with no requests).",
               [("", (), window.hit_rate)])
    out.family("fakeai_kv_cache_miss_ratio", "gauge", "1 - fakeai_kv_cache_hit_ratio, over the sliding window.",
               [("", (), window.miss_rate)])
    out.family("fakeai_kv_cache_request_hit_ratio", "gauge",
               "Requests with a cached block / requests routed, over the sliding window (0..1).",
               [("", (), window.request_hit_rate)])
    out.family("fakeai_kv_cache_average_token_reduction_tokens", "gauge",
               "Mean cached (not prefilled) prompt tokens per request over the sliding window.",
               [("", (), window.average_token_reduction)])
    out.family("fakeai_kv_router_efficiency_ratio", "gauge",
               "Cached tokens achieved / an oracle router's, over the sliding window (0..1; 1 when nothing "
               "was reusable).", [("", (), window.router_efficiency)])


def render_prometheus(snapshot: MetricsSnapshot, *, openmetrics: bool = False) -> bytes:
    out = _Exposition(openmetrics)
    endpoints = snapshot.endpoints
    streaming = snapshot.streaming
    by_endpoint = [((("endpoint", path),), ep) for path, ep in endpoints.items()]

    # -- the seed's families, over the sliding window --------------------------------------
    out.family("fakeai_requests_per_second", "gauge", "Requests finished per second over the sliding window.",
               [("", labels, ep.latency.rate) for labels, ep in by_endpoint])
    out.family("fakeai_errors_per_second", "gauge",
               "Failed requests (status >= 400) per second over the sliding window.",
               [("", labels, ep.errors.rate) for labels, ep in by_endpoint])
    out.family("fakeai_tokens_per_second", "gauge", "Tokens per second over the sliding window, by kind.",
               [sample for labels, ep in by_endpoint for sample in (
                   ("", (*labels, ("kind", "prompt")), ep.prompt_tokens.sum_rate),
                   ("", (*labels, ("kind", "completion")), ep.completion_tokens.sum_rate))])
    out.family("fakeai_latency_seconds", "summary",
               "Request duration until the last byte: window quantiles, cumulative sum and count.",
               [s for labels, ep in by_endpoint for s in _summary(
                   ep.latency, ep.duration_histogram.sum, ep.duration_histogram.count, labels)])
    out.family("fakeai_ttft_seconds", "summary",
               "Time to first token of streams: window quantiles, cumulative sum and count.",
               _summary(streaming.ttft, streaming.ttft_histogram.sum, streaming.ttft_histogram.count))
    out.family("fakeai_stream_tokens_per_second", "summary",
               "Completion tokens per second of each finished stream: window quantiles, cumulative sum and count.",
               _summary(streaming.tokens_per_second, streaming.tokens_per_second_sum,
                        streaming.tokens_per_second_count))
    out.family("fakeai_active_streams", "gauge", "Streams open now.", [("", (), streaming.active_streams)])
    out.family("fakeai_error_ratio", "gauge", "Failed / finished requests over the sliding window (0..1).",
               [("", (), snapshot.totals.error_rate_percentage / 100.0)])
    out.family("fakeai_health", "gauge", "1 for the current health level (error rate: healthy < 5% <= "
               "degraded <= 10% < unhealthy), 0 for the others.",
               [("", (("status", level),), int(level == snapshot.totals.health))
                for level in ("healthy", "degraded", "unhealthy")])

    # -- Prometheus-native families --------------------------------------------------------
    out.family("fakeai_requests_total", "counter", "Requests finished since start.",
               [("", labels, ep.requests_total) for labels, ep in by_endpoint])
    out.family("fakeai_errors_total", "counter", "Failed requests since start, by HTTP status.",
               [("", (*labels, ("status", str(status))), count)
                for labels, ep in by_endpoint for status, count in ep.errors_total.items()])
    out.family("fakeai_tokens_total", "counter", "Tokens since start, by kind (prompt, completion).",
               [sample for labels, ep in by_endpoint for sample in (
                   ("", (*labels, ("kind", "prompt")), ep.prompt_tokens_total),
                   ("", (*labels, ("kind", "completion")), ep.completion_tokens_total))])
    out.family("fakeai_streams_total", "counter", "Streams ended since start, by outcome.",
               [("", (("outcome", "completed"),), streaming.completed_streams),
                ("", (("outcome", "failed"),), streaming.failed_streams)])
    out.family("fakeai_dropped_samples_total", "counter",
               "Window samples discarded because a window was full (counters lose nothing).",
               [("", (), snapshot.dropped_samples)])
    labels = snapshot.label_space
    out.family("fakeai_model_labels", "gauge",
               'Model names with a label of their own; requests for any other model_name="__other__".',
               [("", (), labels.model_labels)])
    out.family("fakeai_model_label_budget", "gauge", "Model names that can have a label of their own.",
               [("", (), labels.model_label_budget)])
    out.family("fakeai_model_other_requests_total", "counter",
               'Requests counted under model_name="__other__" (their model had no label of its own).',
               [("", (), labels.other_requests)])
    out.family("fakeai_unrecorded_figures_total", "counter",
               "Figures that found no room in a metrics region and were not recorded (0 unless a bug).",
               [("", (), labels.unrecorded_figures)])
    out.family("fakeai_request_duration_seconds", "histogram", "Request duration until the last byte.",
               [s for labels, ep in by_endpoint for s in _histogram(ep.duration_histogram, labels)])
    out.family("fakeai_time_to_first_token_seconds", "histogram", "Time to first token of streams.",
               _histogram(streaming.ttft_histogram))
    out.family("fakeai_inter_token_latency_seconds", "histogram",
               "Mean inter-token latency of each finished stream of two or more tokens.",
               _histogram(streaming.itl_histogram))
    out.family("fakeai_request_prompt_tokens", "histogram", "Prompt tokens per request.",
               [s for labels, ep in by_endpoint for s in _histogram(ep.prompt_tokens_histogram, labels)])
    out.family("fakeai_request_completion_tokens", "histogram", "Completion tokens per request.",
               [s for labels, ep in by_endpoint for s in _histogram(ep.completion_tokens_histogram, labels)])
    out.family("fakeai_requests_in_flight", "gauge", "API requests being served now.",
               [("", (), snapshot.in_flight)])
    out.family("fakeai_uptime_seconds", "gauge", "Seconds since the server started.",
               [("", (), snapshot.uptime_seconds)])
    out.family("fakeai_window_seconds", "gauge", "Length of the sliding window.",
               [("", (), snapshot.window_seconds)])
    out.family("fakeai_processes", "gauge", "Server processes (workers) alive whose metrics these are.",
               [("", (), snapshot.processes)])
    out.family("fakeai_kernel_compiled", "gauge",
               "1 when the compiled sliding-window kernel is in use, 0 for the pure-Python one.",
               [("", (), int(snapshot.kernel == "compiled"))])

    _kv_families(out, snapshot.kv_cache)

    # -- vLLM's drop-in names ---------------------------------------------------------------
    models = [((("model_name", name),), model) for name, model in snapshot.models.items()]
    out.family("vllm:num_requests_running", "gauge", "Requests running now.",
               [("", labels, m.running) for labels, m in models])
    out.family("vllm:num_requests_waiting", "gauge", "Requests waiting to run (fakeai never queues).",
               [("", labels, 0) for labels, m in models])
    kv = snapshot.kv_cache
    engines = [((("model_name", kv.model_name), ("engine", str(index))), worker)
               for index, worker in enumerate(kv.workers)]
    out.family("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage of each simulated worker, 0..1.",
               [("", labels, worker.usage) for labels, worker in engines])
    out.family("vllm:prefix_cache_queries_total", "counter", "Prompt tokens looked up in the prefix cache.",
               [("", labels, worker.prompt_tokens) for labels, worker in engines])
    out.family("vllm:prefix_cache_hits_total", "counter", "Prompt tokens found in the prefix cache.",
               [("", labels, worker.cached_tokens) for labels, worker in engines])
    out.family("vllm:prompt_tokens_total", "counter", "Prompt tokens processed.",
               [("", labels, m.prompt_tokens_total) for labels, m in models])
    out.family("vllm:generation_tokens_total", "counter", "Generation tokens sent.",
               [("", labels, m.generation_tokens_total) for labels, m in models])
    out.family("vllm:request_success_total", "counter", "Finished requests, by finish reason.",
               [("", (*labels, ("finished_reason", reason)), count)
                for labels, m in models for reason, count in m.success_total.items()])
    for name, help_text, attribute in (
        ("vllm:time_to_first_token_seconds", "Time to first token.", "ttft_histogram"),
        ("vllm:inter_token_latency_seconds", "Mean inter-token latency per request.", "itl_histogram"),
        ("vllm:e2e_request_latency_seconds", "End-to-end request latency.", "e2e_histogram"),
        ("vllm:request_prompt_tokens", "Prompt tokens per request.", "prompt_tokens_histogram"),
        ("vllm:request_generation_tokens", "Generation tokens per request.", "generation_tokens_histogram"),
    ):
        out.family(name, "histogram", help_text,
                   [s for labels, m in models for s in _histogram(getattr(m, attribute), labels)])
    return out.text()
