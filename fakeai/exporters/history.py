"""``GET /metrics/history`` as JSON: the ring of past points, or the points a query of the
history database found, one array per figure."""

from __future__ import annotations

import msgspec

from fakeai.metrics.history import HISTORY_FIELDS, MetricsHistory
from fakeai.metrics.history_db import QueryResult
from fakeai.metrics.history_ring import SharedHistory

__all__ = ("render_history_json", "render_history_query_json")

_encode = msgspec.json.Encoder().encode


def render_history_json(history: MetricsHistory | SharedHistory) -> bytes:
    """``{"interval_seconds", "seconds", "capacity", "points", "series": {figure: [...]}}``,
    oldest point first; NaN (an empty window's percentile) is ``null``."""
    series = history.columns()  # read once: another process may add a point meanwhile
    return _encode(
        {
            "interval_seconds": history.interval_seconds,
            "seconds": history.seconds,
            "capacity": history.capacity,
            "points": len(series["timestamp"]),
            "series": series,
        }
    )


def render_history_query_json(
    history: MetricsHistory | SharedHistory, since: float, result: QueryResult, max_points: int
) -> bytes:
    """The same document for the database's points from ``since`` on, plus ``since`` (Unix
    seconds) and ``step`` (what the points were merged to, ``null``: as stored); ``capacity``
    is the most points an answer holds."""
    points = result.points
    series = {field: [point[index] for point in points] for index, field in enumerate(HISTORY_FIELDS)}
    return _encode(
        {
            "interval_seconds": history.interval_seconds,
            "seconds": history.seconds,
            "capacity": max_points,
            "points": len(points),
            "since": since,
            "step": result.step,
            "series": series,
        }
    )
