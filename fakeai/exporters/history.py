"""``GET /metrics/history`` as JSON: the ring of past points, or the points a query of the
history database found, one array per figure."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import msgspec

from fakeai.metrics.history import HISTORY_FIELDS, MetricsHistory
from fakeai.metrics.history_db import QueryResult
from fakeai.metrics.history_ring import SharedHistory

__all__ = ("history_json_steps", "history_query_json_steps")

_encode = msgspec.json.Encoder().encode

POINTS_PER_STEP = 2048
"""Values of one figure laid out and encoded between two pauses (about 0.2 ms here)."""


def history_json_steps(parts: list[bytes], history: MetricsHistory | SharedHistory) -> Iterator[None]:
    """``{"interval_seconds", "seconds", "capacity", "points", "series": {figure: [...]}}``,
    oldest point first, NaN (an empty window's percentile) as ``null``, made in steps: appends
    the document's parts to ``parts`` and yields after every ``POINTS_PER_STEP`` values of a
    figure, so a caller on the event loop can let it run between them (a full hour of points
    is some 14 columns of 3,600 numbers: about 5 ms to lay out and encode at once on a slow
    machine; with several workers, reading the shared ring as long again). The points are
    read first, in steps too; the figures are laid out from that one reading."""
    points = yield from history.points_in_steps()
    head = {"interval_seconds": history.interval_seconds, "seconds": history.seconds,
            "capacity": history.capacity, "points": len(points)}
    yield from _document_steps(parts, head, points)


def history_query_json_steps(
    parts: list[bytes], history: MetricsHistory | SharedHistory, since: float, result: QueryResult, max_points: int
) -> Iterator[None]:
    """The same document for the database's points from ``since`` on, plus ``since`` (Unix
    seconds) and ``step`` (what the points were merged to, ``null``: as stored); ``capacity``
    is the most points an answer holds. In steps, as ``history_json_steps``."""
    head = {"interval_seconds": history.interval_seconds, "seconds": history.seconds, "capacity": max_points,
            "points": len(result.points), "since": since, "step": result.step}
    yield from _document_steps(parts, head, result.points)


def _document_steps(parts: list[bytes], head: dict, points: Sequence[Sequence[float]]) -> Iterator[None]:
    """``head``'s fields, then ``"series"``: each figure's values over ``points``, encoded
    ``POINTS_PER_STEP`` at a time (joined, the same bytes as one encoding of the whole)."""
    parts.append(_encode(head)[:-1] + b',"series":{')
    for index, field in enumerate(HISTORY_FIELDS):
        parts.append(b'%s%s:[' % (b"," if index else b"", _encode(field)))
        for start in range(0, len(points), POINTS_PER_STEP):
            yield
            chunk = _encode([point[index] for point in points[start : start + POINTS_PER_STEP]])
            parts.append(chunk[1:-1] if start == 0 else b"," + chunk[1:-1])
        parts.append(b"]")
    parts.append(b"}}")
