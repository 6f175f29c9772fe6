"""How an empty window's NaN statistics are shown in JSON and CSV: as 0.0, as the seed does."""

from __future__ import annotations

import math

from fakeai.metrics import WindowStats

__all__ = ("DISTRIBUTION_FIELDS", "distribution", "shown")

DISTRIBUTION_FIELDS = ("avg", "min", "max", "p50", "p90", "p99")


def shown(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def distribution(stats: WindowStats) -> list[float]:
    """``avg, min, max, p50, p90, p99`` with 0.0 for an empty window."""
    return [shown(getattr(stats, field)) for field in DISTRIBUTION_FIELDS]
