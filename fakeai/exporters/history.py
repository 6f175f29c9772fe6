"""``GET /metrics/history`` as JSON: the ring of past points, or the points a query of the
history database found, one array per figure."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from fakeai.metrics.history import HISTORY_FIELDS, MetricsHistory
from fakeai.metrics.history_db import QueryResult
from fakeai.metrics.history_ring import SharedHistory

__all__ = ("history_json_steps", "render_history_json", "render_history_query_json")

_encode = msgspec.json.Encoder().encode


def render_history_json(history: MetricsHistory | SharedHistory) -> bytes:
    """``{"interval_seconds", "seconds", "capacity", "points", "series": {figure: [...]}}``,
    oldest point first; NaN (an empty window's percentile) is ``null``."""
    parts: list[bytes] = []
    for _ in history_json_steps(parts, history):
        pass
    return b"".join(parts)


def history_json_steps(parts: list[bytes], history: MetricsHistory | SharedHistory) -> Iterator[None]:
    """``render_history_json`` one figure at a time: appends the document's parts to ``parts``
    and yields after each figure's column, so a caller on the event loop can let it run
    between them (a full hour of points is some 14 columns of 3,600 numbers: about 5 ms to
    lay out and encode at once on a slow machine; with several workers, reading the shared
    ring as long again). The points are read first, in steps too; the figures are laid out
    from that one reading."""
    points = yield from history.points_in_steps()
    head = _encode({"interval_seconds": history.interval_seconds, "seconds": history.seconds,
                    "capacity": history.capacity, "points": len(points)})
    parts.append(head[:-1] + b',"series":{')
    for index, field in enumerate(HISTORY_FIELDS):
        yield
        column = _encode([point[index] for point in points])
        parts.append(b'%s%s:%s' % (b"," if index else b"", _encode(field), column))
    parts.append(b"}}")


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
