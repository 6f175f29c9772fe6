"""What keeping the history in SQLite costs: a commit per point in the database's thread, and
what the event loop feels of it.

    python benchmarks/history_writes.py              # about 30 s
    python benchmarks/history_writes.py --points 500 --dir /var/tmp

1. **Commit per point**, in this thread, as ``HistoryStore``'s thread does it: one point per
   transaction, into a file on the disk (``--dir``, default the temporary directory; WAL,
   ``synchronous = FULL``: an fsync per commit), a file on ``/dev/shm`` (what ``fakeai serve``
   uses without ``--history-db``) and ``:memory:`` (a server in someone else's process).
   Median, p99 and worst microseconds per point.
2. **The event loop.** A loop (uvloop, as the server's) runs a probe asking to wake every
   millisecond and noting how late it wakes, while a ``HistoryStore`` takes a point every
   10 ms through ``put`` (the sampler's only call on the loop): with no store (the reference),
   with a store writing to the disk file, and with that file locked by another connection (the
   writer's thread waits on SQLite's lock; the queue fills and drops). Reported: the probe's
   p50/p99/worst lag and the cost of ``put`` itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import uvloop

from benchmarks import harness
from fakeai.metrics.history import HISTORY_FIELDS, WEIGHT_FIELDS
from fakeai.metrics.history_db import HistoryDatabase
from fakeai.metrics.history_store import HistoryStore

FIELDS = len(HISTORY_FIELDS) + len(WEIGHT_FIELDS)


def record(timestamp: float) -> tuple[float, ...]:
    return (timestamp, *(float(index) for index in range(1, FIELDS)))


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered):8.1f}  p99 {p99:8.1f}  worst {ordered[-1]:8.1f}"


def commit_cost(path: Path | None, points: int) -> list[float]:
    if path is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    database = HistoryDatabase(path, seconds=900, downsample_seconds=60, retention_seconds=86_400)
    costs = []
    now = time.time()
    for index in range(points):
        started = time.perf_counter()
        database.insert([record(now + index)], interval_seconds=1.0)
        costs.append((time.perf_counter() - started) * 1e6)
    database.close()
    return costs


async def loop_lag(
    store: HistoryStore | None, seconds: float, unlock=None
) -> tuple[list[float], list[float]]:
    """The probe's lags (ms) and the cost of each put (us) while a point is put every 10 ms
    (``unlock`` runs before the store closes)."""
    lags: list[float] = []
    puts: list[float] = []
    stop = time.perf_counter() + seconds

    async def sampler() -> None:
        while time.perf_counter() < stop:
            await asyncio.sleep(0.01)
            if store is not None:
                started = time.perf_counter()
                store.put(record(time.time()))
                puts.append((time.perf_counter() - started) * 1e6)

    if store is not None:
        store.start()
    await asyncio.gather(harness.timer_lateness(stop, lags), sampler())
    if unlock is not None:
        unlock()
    if store is not None:
        await asyncio.to_thread(store.close, 10.0)
    return [lag * 1e3 for lag in lags], puts


def store_at(path: Path) -> HistoryStore:
    return HistoryStore(path, seconds=900, interval_seconds=0.01, downsample_seconds=60,
                        retention_seconds=86_400, queue_points=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=5.0, help="each loop case")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the disk file goes")
    args = parser.parse_args()
    disk = Path(args.dir) / f"fakeai-bench-{os.getpid()}.sqlite"
    shm = Path("/dev/shm") / f"fakeai-bench-{os.getpid()}.sqlite"
    try:
        print(f"commit per point, {args.points} points, microseconds:")
        for name, path in ((f"disk file ({args.dir})", disk), ("/dev/shm file", shm), (":memory:", None)):
            print(f"  {name:28} {percentiles(commit_cost(path, args.points))}")
        print(f"event loop, {args.seconds:g} s each, a point every 10 ms; probe lag ms / put us:")
        for name, store, lock in (("no store", None, False), ("disk file", store_at(disk), False),
                                  ("disk file locked", store_at(disk), True)):
            unlock = None
            if lock:
                locker = sqlite3.connect(disk, isolation_level=None)
                locker.execute("BEGIN EXCLUSIVE")

                def unlock() -> None:
                    locker.execute("ROLLBACK")
                    locker.close()

            lags, puts = uvloop.run(loop_lag(store, args.seconds, unlock))
            counts = store.take_counts() if store is not None else (0, 0)
            put = f"  put: {percentiles(puts)}" if puts else ""
            print(f"  {name:18} lag: {percentiles(lags)}{put}  stored {counts[0]}, dropped {counts[1]}")
    finally:
        for path in (disk, shm):
            for suffix in ("", "-wal", "-shm", ".lock"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
