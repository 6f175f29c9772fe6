"""``GET /metrics/history`` as JSON: the ring of past points, one array per figure."""

from __future__ import annotations

import msgspec

from fakeai.metrics.history import MetricsHistory
from fakeai.metrics.history_ring import SharedHistory

__all__ = ("render_history_json",)

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
