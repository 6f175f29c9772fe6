"""``GET /metrics/csv``: one row per metric type and endpoint, the seed's columns exactly.

Rows, in this order: for each endpoint ``requests``, ``responses``, ``tokens``, ``errors``
(the JSON sections of the same names, same numbers), then the streaming distributions
``ttft``, ``tokens_per_second`` and ``itl`` with endpoint ``all``, then the prefix caches'
``kv_prompt_tokens`` and ``kv_cached_tokens`` (endpoint ``all``; rate: tokens looked up /
found cached per second, so their ratio is the window's hit rate; distribution: per routed
request, 0 for a miss). The ``*_latency``
columns hold the row's distribution, whatever its unit (seconds, or tokens for ``tokens``).
RFC 4180: CRLF line ends, fields quoted when they need it. The rows are the declarations of
``fakeai.metrics.schema`` that name a ``csv`` row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from fakeai.exporters._values import distribution
from fakeai.metrics import MetricsSnapshot, WindowStats
from fakeai.metrics.schema import METRICS, Metric, SummaryValue

__all__ = ("CSV_COLUMNS", "render_csv")

CSV_COLUMNS = (
    "metric_type",
    "endpoint",
    "rate",
    "avg_latency",
    "min_latency",
    "max_latency",
    "p50_latency",
    "p90_latency",
    "p99_latency",
)
STREAMING_ENDPOINT = "all"


def _row(metric: Metric, endpoint: str, value: Any) -> list[object]:
    """A declared row: a window's or a summary's rate and distribution (a window of token
    counts gives tokens per second), or a rate alone (its distribution 0.0)."""
    if isinstance(value, SummaryValue):
        return [metric.csv, endpoint, value.window.rate, *distribution(value.window)]
    if isinstance(value, WindowStats):
        rate = value.sum_rate if metric.unit == "tokens" else value.rate
        return [metric.csv, endpoint, rate, *distribution(value)]
    return [metric.csv, endpoint, value, *[0.0] * 6]


def render_csv(snapshot: MetricsSnapshot, *, metrics: Iterable[Metric] = METRICS) -> bytes:
    """Every declared CSV row: each endpoint's rows (in declaration order), then the others."""
    by_endpoint: dict[str, list[list[object]]] = {path: [] for path in snapshot.endpoints}
    others: list[list[object]] = []
    for metric in metrics:
        if metric.csv is None:
            continue
        for labels, value in metric.reading(snapshot):
            endpoint = dict(labels).get("endpoint")
            if endpoint is None:
                others.append(_row(metric, STREAMING_ENDPOINT, value))
            else:
                by_endpoint.setdefault(endpoint, []).append(_row(metric, endpoint, value))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for rows in by_endpoint.values():
        writer.writerows(rows)
    writer.writerows(others)
    return out.getvalue().encode()
