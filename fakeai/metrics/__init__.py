"""Recording and reading fakeai's metrics."""

from fakeai.metrics.registry import QUANTILES, MetricsRegistry
from fakeai.metrics.snapshot import EndpointSnapshot, MetricsSnapshot, StreamingSnapshot, Totals, WindowStats

__all__ = (
    "QUANTILES",
    "EndpointSnapshot",
    "MetricsRegistry",
    "MetricsSnapshot",
    "StreamingSnapshot",
    "Totals",
    "WindowStats",
)
