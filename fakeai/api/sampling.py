"""Takes a snapshot into the metrics history every interval, on the running event loop: in
one process of the server only.

A server of one process samples into its own ``MetricsHistory``. In a server of several
(``fakeai serve --workers N``), the process holding the ``SamplingLease`` samples into the
shared ``SharedHistory`` and the others only try, once an interval, to take the lease (a
non-blocking ``flock``: one system call), so the server takes one snapshot per interval
whatever N is; when the holder dies, the next one to try continues its schedule.

The sampling process also hands each point to the history database (``HistoryStore.put``:
a queue, never a wait; the database's own thread writes it), and, as the first sampler of a
server, first fills the live ring with the database's points of the last ``--history-seconds``
(a restarted server shows what the one before it saw). It moves the database's counts of
points stored and dropped into the metrics registry every interval.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from fakeai.api.background import stop_task
from fakeai.metrics import MetricsRegistry
from fakeai.metrics.history import MetricsHistory, history_point, history_weights
from fakeai.metrics.history_ring import SamplingLease, SharedHistory
from fakeai.metrics.history_store import HistoryStore

SAMPLER_TASK = "fakeai-history-sampler"
"""The name of the sampler's task (what a debugger or ``asyncio.all_tasks`` shows)."""

__all__ = ("SAMPLER_TASK", "HistorySampler")

_log = logging.getLogger("fakeai")


class HistorySampler:
    """``start`` at start-up, ``stop`` at shutdown. Points are due at fixed times (start +
    k x interval, on ``time.monotonic``, which the server's processes share), so a slow
    snapshot does not shift the ones after it.

    Args:
        registry: Where snapshots come from.
        history: Where points go.
        lease: Who samples among the server's processes (``None``: this process alone).
        store: The history database (``None``: the live ring only).
        close_seconds: How long ``stop`` waits for the database to write what is queued.
    """

    def __init__(
        self,
        registry: MetricsRegistry,
        history: MetricsHistory | SharedHistory,
        lease: SamplingLease | None = None,
        store: HistoryStore | None = None,
        close_seconds: float = 5.0,
    ) -> None:
        self.registry = registry
        self.history = history
        self.lease = lease
        self.store = store
        self.close_seconds = close_seconds
        self._task: asyncio.Task[None] | None = None
        self._failing: str | None = None
        self._begun = asyncio.Event()
        """Set once the first pass has decided whether this process samples, and if it does,
        has filled the live ring from the database."""

    def start(self) -> None:
        if self.store is not None:
            self.store.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=SAMPLER_TASK)

    async def begun(self) -> None:
        """Wait (at start-up) until the live ring holds what the database kept, when this
        process is the server's sampler: a restarted server's first ``/metrics/history`` then
        shows the points of the one before it. At most the database's wait (an interval or a
        second, whichever is longer)."""
        if self._task is None:
            return
        waiting = asyncio.ensure_future(self._begun.wait())
        try:
            await asyncio.wait([waiting, self._task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        if self.store is not None:  # the queued points are written (a stalled disk: given up on)
            if not await asyncio.to_thread(self.store.close, self.close_seconds):
                _log.error("the history database did not finish writing in %s s; its queued points are lost",
                           self.close_seconds)
            self._count_store()
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

    def _count_store(self) -> None:
        stored, dropped = self.store.take_counts()  # type: ignore[union-attr]
        if stored:
            self.registry.add("fakeai_history_points_stored_total", stored)
        if dropped:
            self.registry.add("fakeai_history_points_dropped_total", dropped)

    async def _fill_from_store(self) -> None:
        """The first sampler of a server: the live ring starts with the database's newest
        points (waiting at most an interval or a second, whichever is longer)."""
        if self.store is None or len(self.history):
            return
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the answer when it
            # comes as the task is cancelled, so a stopping server's sampler would go on forever
            async with asyncio.timeout(max(1.0, self.history.interval_seconds)):
                found = await asyncio.wrap_future(self.store.submit_recent())
        except Exception as exc:  # busy, failed or too slow: the live history starts empty then
            self._failed("reading the history database back", exc)
            return
        if not len(self.history):
            for point in found.points:
                self.history.add_point(tuple(math.nan if value is None else value for value in point))

    async def _run(self) -> None:
        interval = self.history.interval_seconds
        due: float | None = None
        while True:
            if self.store is not None:
                self._count_store()
            if not self._leading():
                due = None
                self._begun.set()
                await asyncio.sleep(interval)
                continue
            now = time.monotonic()
            if due is None:  # just took the lease: continue the server's schedule
                await self._fill_from_store()
                self._begun.set()
                now = time.monotonic()
                due = self.history.next_due or now
                if now - due > interval:
                    due = now
            await asyncio.sleep(max(0.0, due - now))
            try:
                snapshot = await self.registry.snapshot_async()
                point = history_point(snapshot)
                self.history.add_point(point, due + interval)
                if self.store is not None:
                    self.store.put(point + history_weights(snapshot))
                self._failing = None
            except Exception as exc:  # a failed point must not end the history
                self._failed("taking a metrics history point", exc)
            due += interval
            if time.monotonic() - due > interval:  # fell behind (a stopped process): skip, do not burst
                due = time.monotonic()
