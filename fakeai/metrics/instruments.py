"""Cumulative histograms beside the sliding windows: their bucket sets and their snapshot.

A region's histogram block (see the kernel's ``Region.observe``) counts observations per
bucket; the cumulative ``le`` counts Prometheus wants are computed once per scrape. Bucket
bounds are upper bounds, inclusive, as Prometheus defines them.
"""

from __future__ import annotations

import msgspec

__all__ = (
    "DURATION_BUCKETS",
    "INTER_TOKEN_BUCKETS",
    "TOKEN_COUNT_BUCKETS",
    "HistogramSnapshot",
)

DURATION_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3,
    0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 30.0, 60.0, 120.0,
)
"""Request durations and time to first token, in seconds: from 100 us (fast simulated
answers) to two minutes (long streams)."""

INTER_TOKEN_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.025, 0.03,
    0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0,
)
"""Inter-token latency, in seconds: dense around the usual 5-50 ms, down to 100 us."""

TOKEN_COUNT_BUCKETS = (
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
    32768.0, 65536.0, 131072.0,
)
"""Tokens per request (prompt or completion): powers of two up to 128k."""


class HistogramSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    bounds: tuple[float, ...]
    """Upper bounds of the buckets, without +Inf."""
    cumulative: tuple[int, ...]
    """Observations at or below each bound, then the total (the +Inf bucket): len(bounds) + 1."""
    sum: float
    count: int
