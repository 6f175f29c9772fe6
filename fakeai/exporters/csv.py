"""``GET /metrics/csv``: one row per metric type and endpoint, the seed's columns exactly.

Rows, in this order: for each endpoint ``requests``, ``responses``, ``tokens``, ``errors``
(the JSON sections of the same names, same numbers), then the streaming distributions
``ttft``, ``tokens_per_second`` and ``itl`` with endpoint ``all``, then the prefix caches'
``kv_prompt_tokens`` and ``kv_cached_tokens`` (endpoint ``all``; rate: tokens looked up /
found cached per second, so their ratio is the window's hit rate; distribution: per routed
request, 0 for a miss). The ``*_latency``
columns hold the row's distribution, whatever its unit (seconds, or tokens for ``tokens``).
RFC 4180: CRLF line ends, fields quoted when they need it.
"""

from __future__ import annotations

import csv
import io

from fakeai.exporters._values import distribution
from fakeai.metrics import MetricsSnapshot, WindowStats

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


def _row(metric_type: str, endpoint: str, rate: float, stats: WindowStats | None) -> list[object]:
    return [metric_type, endpoint, rate, *(distribution(stats) if stats is not None else [0.0] * 6)]


def render_csv(snapshot: MetricsSnapshot) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for path, ep in snapshot.endpoints.items():
        writer.writerow(_row("requests", path, ep.latency.rate, None))
        writer.writerow(_row("responses", path, ep.latency.rate, ep.latency))
        writer.writerow(_row("tokens", path, ep.completion_tokens.sum_rate, ep.completion_tokens))
        writer.writerow(_row("errors", path, ep.errors.rate, ep.errors))
    streaming = snapshot.streaming
    for name, stats in (("ttft", streaming.ttft), ("tokens_per_second", streaming.tokens_per_second),
                        ("itl", streaming.itl)):
        writer.writerow(_row(name, STREAMING_ENDPOINT, stats.rate, stats))
    kv = snapshot.kv_cache
    writer.writerow(_row("kv_prompt_tokens", STREAMING_ENDPOINT, kv.prompt_tokens.sum_rate, kv.prompt_tokens))
    writer.writerow(_row("kv_cached_tokens", STREAMING_ENDPOINT, kv.cached_tokens.sum_rate, kv.cached_tokens))
    return out.getvalue().encode()
