"""``GET /metrics`` as JSON: the seed's sections, then fakeai's additions.

Seed sections, each ``{endpoint: {rate, avg, min, max, p50, p90, p99, count}}`` over the
sliding window (``count`` is fakeai's addition: samples in the window):

* ``requests``: ``rate`` is finished requests per second; the distribution fields are 0.0
  (an arrival carries no value, as in the seed's example);
* ``responses``: ``rate`` as above; the distribution is of request durations, in seconds;
* ``tokens``: ``rate`` is completion tokens per second; the distribution is of completion
  tokens per request;
* ``errors``: ``rate`` is failed requests (status >= 400) per second; the distribution is of
  their durations, in seconds;
* ``streaming_stats``: ``active_streams``, ``completed_streams``, ``failed_streams`` (since
  start), ``ttft`` (seconds) and ``tokens_per_second`` (per stream) distributions.

Additions: ``prompt_tokens`` (like ``tokens``, for prompts), ``errors_by_status`` and
``totals`` (cumulative counts), ``streaming_stats.completion_rate`` and ``.itl`` (mean
inter-token latency per stream, seconds), ``summary`` (what ``/health/detailed`` reports),
``models`` (per model, what vLLM reports), and the snapshot's ``timestamp``,
``uptime_seconds``, ``window_seconds``, ``kernel`` and ``dropped_samples``. An empty
window's statistics are 0.0 with ``count`` 0.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fakeai.exporters._values import DISTRIBUTION_FIELDS, distribution, shown
from fakeai.metrics import MetricsSnapshot, WindowStats

__all__ = ("render_json", "snapshot_document")

_encode = msgspec.json.Encoder().encode
_ZEROS = dict.fromkeys(DISTRIBUTION_FIELDS, 0.0)


def _section(stats: WindowStats, rate: float | None = None) -> dict[str, Any]:
    return {
        "rate": stats.rate if rate is None else rate,
        **dict(zip(DISTRIBUTION_FIELDS, distribution(stats))),
        "count": stats.count,
    }


def _distribution(stats: WindowStats) -> dict[str, Any]:
    return {**dict(zip(DISTRIBUTION_FIELDS, distribution(stats))), "count": stats.count}


def snapshot_document(snapshot: MetricsSnapshot) -> dict[str, Any]:
    endpoints = snapshot.endpoints
    streaming = snapshot.streaming
    totals = snapshot.totals
    return {
        "requests": {
            path: {"rate": ep.latency.rate, **_ZEROS, "count": ep.latency.count} for path, ep in endpoints.items()
        },
        "responses": {path: _section(ep.latency) for path, ep in endpoints.items()},
        "tokens": {
            path: _section(ep.completion_tokens, ep.completion_tokens.sum_rate) for path, ep in endpoints.items()
        },
        "errors": {path: _section(ep.errors) for path, ep in endpoints.items()},
        "streaming_stats": {
            "active_streams": streaming.active_streams,
            "completed_streams": streaming.completed_streams,
            "failed_streams": streaming.failed_streams,
            "completion_rate": shown(streaming.completion_rate),
            "ttft": _distribution(streaming.ttft),
            "tokens_per_second": _distribution(streaming.tokens_per_second),
            "itl": _distribution(streaming.itl),
        },
        "prompt_tokens": {
            path: _section(ep.prompt_tokens, ep.prompt_tokens.sum_rate) for path, ep in endpoints.items()
        },
        "errors_by_status": {
            path: {str(status): count for status, count in ep.errors_total.items()} for path, ep in endpoints.items()
        },
        "totals": {
            path: {
                "requests": ep.requests_total,
                "errors": sum(ep.errors_total.values()),
                "prompt_tokens": ep.prompt_tokens_total,
                "completion_tokens": ep.completion_tokens_total,
                "latency_seconds_sum": ep.duration_histogram.sum,
            }
            for path, ep in endpoints.items()
        },
        "summary": {
            "status": totals.health,
            "total_requests_per_second": totals.requests_per_second,
            "total_errors_per_second": totals.errors_per_second,
            "error_rate_percentage": totals.error_rate_percentage,
            "average_latency_seconds": totals.average_latency_seconds,
            "active_streams": streaming.active_streams,
            "requests_in_flight": snapshot.in_flight,
        },
        "models": {
            name: {
                "requests_running": model.running,
                "prompt_tokens": model.prompt_tokens_total,
                "generation_tokens": model.generation_tokens_total,
                "requests_succeeded": model.success_total,
            }
            for name, model in snapshot.models.items()
        },
        "timestamp": snapshot.timestamp,
        "uptime_seconds": snapshot.uptime_seconds,
        "window_seconds": snapshot.window_seconds,
        "kernel": snapshot.kernel,
        "dropped_samples": snapshot.dropped_samples,
    }


def render_json(snapshot: MetricsSnapshot) -> bytes:
    return _encode(snapshot_document(snapshot))
