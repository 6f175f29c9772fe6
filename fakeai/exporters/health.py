"""``GET /health`` and ``GET /health/detailed``: the seed's shapes.

``/health`` renders the registry's cheap ``HealthReading`` (what a probe needs); the
detailed one renders a snapshot: each of its figures is a declaration's reading
(``fakeai.metrics.schema``), named here, so it shows what ``/metrics`` shows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from fakeai.exporters._values import shown
from fakeai.exporters.json import json_value
from fakeai.metrics import HealthReading, MetricsSnapshot
from fakeai.metrics.schema import METRICS, Metric, Reading

__all__ = ("render_detailed_health", "render_health", "render_loading")

_encode = msgspec.json.Encoder().encode


def render_health(reading: HealthReading) -> bytes:
    return _encode({"status": reading.status, "timestamp": reading.timestamp})


def render_loading(timestamp: float, ready_in_seconds: float) -> bytes:
    """``/health`` while the model is loading (``--startup-seconds``), sent with 503."""
    return _encode({"status": "loading", "timestamp": timestamp, "ready_in_seconds": ready_in_seconds})


class _Figures:
    """The declarations' readings of one snapshot, by declaration name, as JSON shows them."""

    def __init__(self, snapshot: MetricsSnapshot, metrics: Iterable[Metric]) -> None:
        self.snapshot = snapshot
        self.declared = _DECLARED if metrics is METRICS else {metric.name: metric for metric in metrics}

    def reading(self, name: str) -> Reading:
        return self.declared[name].reading(self.snapshot)

    def one(self, name: str) -> Any:
        """The value of a declaration without labels."""
        return json_value(self.reading(name)[0][1])

    def by(self, name: str) -> dict[str, Any]:
        """A declaration labelled by one label: ``{its value: the reading}``."""
        return {labels[0][1]: value for labels, value in self.reading(name)}


_DECLARED = {metric.name: metric for metric in METRICS}


def detailed_health_document(snapshot: MetricsSnapshot, metrics: Iterable[Metric] = METRICS) -> dict[str, Any]:
    """The seed's shape; every figure a declaration's reading (its JSON value; the endpoints'
    latency quantiles in milliseconds, as the seed shows them)."""
    figures = _Figures(snapshot, metrics)
    latency = figures.by("fakeai_latency_seconds")
    return {
        "status": figures.one("health_status"),
        "timestamp": snapshot.timestamp,
        "uptime_seconds": figures.one("fakeai_uptime_seconds"),
        "metrics_summary": {
            "total_requests_per_second": figures.one("total_requests_per_second"),
            "total_errors_per_second": figures.one("total_errors_per_second"),
            "error_rate_percentage": figures.one("error_rate_percentage"),
            "average_latency_seconds": figures.one("average_latency_seconds"),
            "active_streams": figures.one("fakeai_active_streams"),
        },
        "endpoints": {
            endpoint: {
                "requests_per_second": rate,
                "latency_p50_ms": shown(latency[endpoint].window.p50) * 1000.0,
                "latency_p99_ms": shown(latency[endpoint].window.p99) * 1000.0,
            }
            for endpoint, rate in figures.by("fakeai_requests_per_second").items()
        },
        "kv_cache": {
            "policy": figures.one("kv_routing_policy"),
            "cache_hit_rate": figures.one("fakeai_kv_cache_hit_ratio"),
            "cache_miss_rate": figures.one("fakeai_kv_cache_miss_ratio"),
            "router_efficiency": figures.one("fakeai_kv_router_efficiency_ratio"),
            "usage": figures.one("kv_cache_usage"),
            "evictions": figures.one("kv_cache_evictions"),
            "active_requests_by_worker": list(figures.by("fakeai_kv_worker_active_requests").values()),
        },
        "engine": {
            "requests_running": figures.one("requests_running"),
            "requests_waiting": figures.one("requests_waiting"),
            "running_by_worker": list(figures.by("engine_requests_running").values()),
            "waiting_by_worker": list(figures.by("engine_requests_waiting").values()),
            "preemptions_by_worker": list(figures.by("engine_preemptions").values()),
        },
        "processes": figures.one("fakeai_processes"),
        "kernel": figures.one("kernel"),
        "window_seconds": figures.one("fakeai_window_seconds"),
    }


def render_detailed_health(snapshot: MetricsSnapshot, extra: Mapping[str, Any] | None = None) -> bytes:
    """The document, then ``extra``'s sections (the server's state that is not a metric: its
    readiness, engine model and runtime changes)."""
    document = detailed_health_document(snapshot)
    if extra:
        document.update(extra)
    return _encode(document)
