"""``GET /metrics/history`` as JSON: the ring of past points, one array per figure."""

from __future__ import annotations

import msgspec

from fakeai.metrics.history import MetricsHistory

__all__ = ("render_history_json",)

_encode = msgspec.json.Encoder().encode


def render_history_json(history: MetricsHistory) -> bytes:
    """``{"interval_seconds", "seconds", "capacity", "points", "series": {figure: [...]}}``,
    oldest point first; NaN (an empty window's percentile) is ``null``."""
    return _encode(
        {
            "interval_seconds": history.interval_seconds,
            "seconds": history.seconds,
            "capacity": history.capacity,
            "points": len(history),
            "series": history.columns(),
        }
    )
