"""Recording and reading fakeai's metrics."""

from fakeai.metrics.registry import QUANTILES, MetricsRegistry
from fakeai.metrics.health import HealthReading, health_status
from fakeai.metrics.instruments import HistogramSnapshot
from fakeai.metrics.snapshot import (
    EndpointSnapshot,
    EngineSnapshot,
    KVCacheSnapshot,
    KVReuse,
    KVWorkerSnapshot,
    LabelSpaceSnapshot,
    MetricsSnapshot,
    ModelSnapshot,
    StreamingSnapshot,
    Totals,
    WindowStats,
)

__all__ = (
    "QUANTILES",
    "EndpointSnapshot",
    "EngineSnapshot",
    "HealthReading",
    "HistogramSnapshot",
    "KVCacheSnapshot",
    "KVReuse",
    "KVWorkerSnapshot",
    "LabelSpaceSnapshot",
    "MetricsRegistry",
    "MetricsSnapshot",
    "ModelSnapshot",
    "StreamingSnapshot",
    "Totals",
    "WindowStats",
    "health_status",
)
