"""Health levels, from the windowed error rate (the seed's rules).

* ``healthy``: error rate below 5 %;
* ``degraded``: from 5 % up to and including 10 %;
* ``unhealthy``: above 10 %.

So exactly 5 % is degraded and exactly 10 % is still degraded. With no request in the
window the error rate is 0 and the server is healthy.
"""

from __future__ import annotations

import msgspec

__all__ = ("DEGRADED_FROM_PERCENT", "UNHEALTHY_ABOVE_PERCENT", "HealthReading", "error_rate_percentage", "health_status")

DEGRADED_FROM_PERCENT = 5.0
UNHEALTHY_ABOVE_PERCENT = 10.0


def error_rate_percentage(errors: int, requests: int) -> float:
    """Percent of the window's requests that failed; 0 with no request in the window."""
    return 100.0 * errors / requests if requests else 0.0


def health_status(error_rate_percentage: float) -> str:
    if error_rate_percentage > UNHEALTHY_ABOVE_PERCENT:
        return "unhealthy"
    if error_rate_percentage >= DEGRADED_FROM_PERCENT:
        return "degraded"
    return "healthy"


class HealthReading(msgspec.Struct, kw_only=True, frozen=True):
    """What ``GET /health`` shows, read cheaply (``MetricsRegistry.health``): the same figures
    as a snapshot's ``totals`` at the same instant, from window counts alone."""

    status: str
    """``health_status(error_rate_percentage)``."""
    timestamp: float
    """Unix seconds, as a snapshot's."""
    requests: int
    """Requests finished in the window, every endpoint and process."""
    errors: int
    """Of which failed (status >= 400)."""
    error_rate_percentage: float
    """``100 * errors / requests``, 0 with no request in the window."""
