"""Readiness: a model that takes ``--startup-seconds`` to "load".

Until the server has been up that long, ``GET /health`` answers 503 with ``"status":
"loading"`` (a Kubernetes readiness probe keeps traffic away) and the generation endpoints
answer 503 in OpenAI's error shape, with ``Retry-After``; ``GET /health/live`` answers 200
throughout (a liveness probe must not restart a server that is only loading). The server's
start is the one its processes share (``MetricsRegistry.started_at``), so every worker becomes
ready at the same moment.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from fakeai.api.errors import APIError

__all__ = ("Readiness",)


class Readiness:
    """Whether the simulated model has loaded; ``ready`` is a plain attribute once it has."""

    __slots__ = ("clock", "ready", "ready_at")

    def __init__(self, clock: Callable[[], float], ready_at: float) -> None:
        self.clock = clock
        self.ready_at = ready_at
        """When the model is loaded, on ``clock``."""
        self.ready = clock() >= ready_at

    def remaining(self) -> float:
        """Seconds until the model is loaded (0 once it is)."""
        if self.ready:
            return 0.0
        left = self.ready_at - self.clock()
        if left <= 0.0:
            self.ready = True
            return 0.0
        return left

    def check(self) -> None:
        """503 in OpenAI's shape while the model is loading."""
        left = self.remaining()
        if left:
            raise APIError(
                503,
                f"The model is still loading; the server is ready in {left:.1f} s. Please retry later.",
                type="server_error",
                code="model_loading",
                headers={"Retry-After": str(max(1, math.ceil(left)))},
            )
