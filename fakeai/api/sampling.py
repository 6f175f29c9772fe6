"""Takes a snapshot into the metrics history every interval, on the running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fakeai.metrics import MetricsRegistry
from fakeai.metrics.history import MetricsHistory

__all__ = ("HistorySampler",)

_log = logging.getLogger("fakeai")


class HistorySampler:
    """``start`` at start-up, ``stop`` at shutdown. Points are due at fixed times (start +
    k x interval), so a slow snapshot does not shift the ones after it."""

    def __init__(self, registry: MetricsRegistry, history: MetricsHistory) -> None:
        self.registry = registry
        self.history = history
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.history.add(self.registry.snapshot())
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.history.interval_seconds
        due = loop.time()
        while True:
            due += interval
            await asyncio.sleep(max(0.0, due - loop.time()))
            try:
                self.history.add(self.registry.snapshot())
            except Exception:  # a failed point must not end the history
                _log.exception("taking a metrics history point failed")
            if loop.time() - due > interval:  # fell behind (a stopped process): skip, do not burst
                due = loop.time()
