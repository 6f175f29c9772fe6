"""``GET /health`` and ``GET /health/detailed``: the seed's shapes.

``/health`` renders the registry's cheap ``HealthReading`` (what a probe needs); the
detailed one renders a snapshot."""

from __future__ import annotations

from typing import Any

import msgspec

from fakeai.exporters._values import shown
from fakeai.metrics import HealthReading, MetricsSnapshot

__all__ = ("render_detailed_health", "render_health")

_encode = msgspec.json.Encoder().encode


def render_health(reading: HealthReading) -> bytes:
    return _encode({"status": reading.status, "timestamp": reading.timestamp})


def detailed_health_document(snapshot: MetricsSnapshot) -> dict[str, Any]:
    totals = snapshot.totals
    kv = snapshot.kv_cache
    return {
        "status": totals.health,
        "timestamp": snapshot.timestamp,
        "uptime_seconds": snapshot.uptime_seconds,
        "metrics_summary": {
            "total_requests_per_second": totals.requests_per_second,
            "total_errors_per_second": totals.errors_per_second,
            "error_rate_percentage": totals.error_rate_percentage,
            "average_latency_seconds": totals.average_latency_seconds,
            "active_streams": snapshot.streaming.active_streams,
        },
        "endpoints": {
            path: {
                "requests_per_second": ep.latency.rate,
                "latency_p50_ms": shown(ep.latency.p50) * 1000.0,
                "latency_p99_ms": shown(ep.latency.p99) * 1000.0,
            }
            for path, ep in snapshot.endpoints.items()
        },
        "kv_cache": {
            "policy": kv.policy,
            "cache_hit_rate": shown(kv.window.hit_rate),
            "cache_miss_rate": shown(kv.window.miss_rate),
            "router_efficiency": shown(kv.window.router_efficiency),
            "usage": kv.usage,
            "evictions": kv.evictions,
            "active_requests_by_worker": [worker.active_requests for worker in kv.workers],
        },
        "processes": snapshot.processes,
        "kernel": snapshot.kernel,
        "window_seconds": snapshot.window_seconds,
    }


def render_detailed_health(snapshot: MetricsSnapshot) -> bytes:
    return _encode(detailed_health_document(snapshot))
