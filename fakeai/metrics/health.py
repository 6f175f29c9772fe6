"""Health levels, from the windowed error rate (the seed's rules).

* ``healthy``: error rate below 5 %;
* ``degraded``: from 5 % up to and including 10 %;
* ``unhealthy``: above 10 %.

So exactly 5 % is degraded and exactly 10 % is still degraded. With no request in the
window the error rate is 0 and the server is healthy.
"""

from __future__ import annotations

__all__ = ("DEGRADED_FROM_PERCENT", "UNHEALTHY_ABOVE_PERCENT", "health_status")

DEGRADED_FROM_PERCENT = 5.0
UNHEALTHY_ABOVE_PERCENT = 10.0


def health_status(error_rate_percentage: float) -> str:
    if error_rate_percentage > UNHEALTHY_ABOVE_PERCENT:
        return "unhealthy"
    if error_rate_percentage >= DEGRADED_FROM_PERCENT:
        return "degraded"
    return "healthy"
