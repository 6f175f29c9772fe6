"""Takes a snapshot into the metrics history every interval, on the running event loop: in
one process of the server only.

A server of one process samples into its own ``MetricsHistory``. In a server of several
(``fakeai serve --workers N``), the process holding the ``SamplingLease`` samples into the
shared ``SharedHistory`` and the others only try, once an interval, to take the lease (a
non-blocking ``flock``: one system call), so the server takes one snapshot per interval
whatever N is; when the holder dies, the next one to try continues its schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from fakeai.metrics import MetricsRegistry
from fakeai.metrics.history import MetricsHistory
from fakeai.metrics.history_ring import SamplingLease, SharedHistory

__all__ = ("HistorySampler",)

_log = logging.getLogger("fakeai")


class HistorySampler:
    """``start`` at start-up, ``stop`` at shutdown. Points are due at fixed times (start +
    k x interval, on ``time.monotonic``, which the server's processes share), so a slow
    snapshot does not shift the ones after it.

    Args:
        registry: Where snapshots come from.
        history: Where points go.
        lease: Who samples among the server's processes (``None``: this process alone).
    """

    def __init__(
        self, registry: MetricsRegistry, history: MetricsHistory | SharedHistory, lease: SamplingLease | None = None
    ) -> None:
        self.registry = registry
        self.history = history
        self.lease = lease
        self._task: asyncio.Task[None] | None = None
        self._failing: str | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.lease is not None:
            self.lease.release()  # another process takes over at its next attempt

    def _leading(self) -> bool:
        if self.lease is None:
            return True
        try:
            return self.lease.held()
        except OSError as exc:  # e.g. EMFILE: out of file descriptors; try again next interval
            self._failed("taking the history sampling lease", exc)
            return False

    def _failed(self, what: str, exc: BaseException) -> None:
        """Log a failure once while it repeats (not every interval)."""
        kind = f"{what}: {type(exc).__name__}: {exc}"
        if kind != self._failing:
            _log.error("%s failed", what, exc_info=exc)
            self._failing = kind

    async def _run(self) -> None:
        interval = self.history.interval_seconds
        due: float | None = None
        while True:
            if not self._leading():
                due = None
                await asyncio.sleep(interval)
                continue
            now = time.monotonic()
            if due is None:  # just took the lease: continue the server's schedule
                due = self.history.next_due or now
                if now - due > interval:
                    due = now
            await asyncio.sleep(max(0.0, due - now))
            try:
                self.history.add(await self.registry.snapshot_async(), due + interval)
                self._failing = None
            except Exception as exc:  # a failed point must not end the history
                self._failed("taking a metrics history point", exc)
            due += interval
            if time.monotonic() - due > interval:  # fell behind (a stopped process): skip, do not burst
                due = time.monotonic()
