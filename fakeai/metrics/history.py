"""A bounded ring of past snapshots' headline figures, for charts (``GET /metrics/history``).

Each point is picked from one ``MetricsSnapshot`` (nothing is computed here), so a chart of
the history shows exactly what ``/metrics`` said at that moment. The app adds a point every
``interval_seconds``; the ring keeps the newest ``ceil(seconds / interval_seconds)``.

``MetricsHistory`` is the ring of a server of one process (in its memory); a server of several
shares one ring file instead (``history_ring.SharedHistory``), written by one of them. Both
are the live view; the database (``history_db``) keeps the same points for longer.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Generator

from fakeai.metrics.snapshot import MetricsSnapshot

__all__ = ("HISTORY_FIELDS", "WEIGHT_FIELDS", "MetricsHistory", "history_point", "history_weights")

HISTORY_FIELDS = (
    "timestamp",
    "requests_per_second",
    "errors_per_second",
    "error_rate_percentage",
    "average_latency_seconds",
    "latency_p50_seconds",
    "latency_p99_seconds",
    "ttft_p99_seconds",
    "completion_tokens_per_second",
    "active_streams",
    "requests_in_flight",
    "kv_cache_hit_rate",
    "requests_running",
    "requests_waiting",
)
"""The figures of every point, in order. Units: Unix seconds, per second, percent, seconds,
tokens per second, counts, a 0..1 ratio, and counts (every simulated engine's running and
waiting requests). An empty window's percentile is NaN (null in JSON)."""


WEIGHT_FIELDS = ("kv_prompt_tokens_per_second",)
"""Figures the database keeps beside each point, not shown, to merge points exactly (see
``history_db``): the prompt tokens looked up in the prefix caches per second, the weight of
``kv_cache_hit_rate``."""


def history_weights(snapshot: MetricsSnapshot) -> tuple[float, ...]:
    """The snapshot's ``WEIGHT_FIELDS``."""
    return (snapshot.kv_cache.prompt_tokens.sum_rate,)


def history_point(snapshot: MetricsSnapshot) -> tuple[float, ...]:
    totals = snapshot.totals
    return (
        snapshot.timestamp,
        totals.requests_per_second,
        totals.errors_per_second,
        totals.error_rate_percentage,
        totals.average_latency_seconds,
        totals.latency.p50,
        totals.latency.p99,
        snapshot.streaming.ttft.p99,
        math.fsum(endpoint.completion_tokens.sum_rate for endpoint in snapshot.endpoints.values()),
        snapshot.streaming.active_streams,
        snapshot.in_flight,
        snapshot.kv_cache.window.hit_rate,
        snapshot.kv_cache.requests_running,
        snapshot.kv_cache.requests_waiting,
    )


class MetricsHistory:
    """The newest points, oldest first."""

    def __init__(self, seconds: float, interval_seconds: float) -> None:
        if interval_seconds <= 0 or seconds < interval_seconds:
            raise ValueError("the history needs interval_seconds > 0 and seconds >= interval_seconds")
        self.seconds = float(seconds)
        self.interval_seconds = float(interval_seconds)
        self._points: deque[tuple[float, ...]] = deque(maxlen=math.ceil(seconds / interval_seconds))

    @property
    def capacity(self) -> int:
        return self._points.maxlen or 0

    def __len__(self) -> int:
        return len(self._points)

    next_due = None
    """One process samples its own history on its own schedule (see ``SharedHistory``)."""

    def add(self, snapshot: MetricsSnapshot, next_due: float | None = None) -> None:
        self._points.append(history_point(snapshot))

    def add_point(self, point: tuple[float, ...], next_due: float | None = None) -> None:
        self._points.append(point)

    def points(self) -> list[tuple[float, ...]]:
        """The points kept, oldest first (a copy: the sampler may add one meanwhile)."""
        return list(self._points)

    def points_in_steps(self) -> Generator[None, None, list[tuple[float, ...]]]:
        """``points`` as ``SharedHistory`` reads them, in steps: a copy is one step here."""
        yield from ()
        return self.points()
