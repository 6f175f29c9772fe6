"""The history database off the event loop: one thread per server process owns its connection.

The sampler (on the event loop) hands each point to ``put``, which never waits: it appends to
a bounded queue, or, when the queue is full (the disk has stalled longer than the live ring
reaches), drops the point and counts it. The thread takes whatever is queued, writes it in one
transaction and commits (so one point per commit while the disk keeps up: a crash loses at
most the point not yet written, the newest), merges and expires old points every
``MAINTENANCE_SECONDS`` (only in the process that writes), and answers queries
(``submit_query``, ``submit_recent``) in order after the writes queued before them. A commit
that finds the database locked by another connection is retried with the same points (they
stay counted against the queue's bound); any other error drops them, counted and logged once.

The counts reach the metrics registry through ``take_counts``, which the sampler calls on the
event loop (the registry is written there only).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path

from fakeai.metrics.history_db import MAX_POINTS, HistoryDatabase, QueryResult

__all__ = ("HISTORY_DB_FILE", "MAINTENANCE_SECONDS", "HistoryBusy", "HistoryDatabaseInUse", "HistoryStore",
           "WriterLock", "claim_database")

_log = logging.getLogger("fakeai")

HISTORY_DB_FILE = "history.sqlite"
"""The history database of ``fakeai serve`` without ``--history-db``: in its shared directory
(in memory, ``/dev/shm``, and removed when the server stops), so every worker reads it."""
MAINTENANCE_SECONDS = 10.0
"""How often the writing process merges old points and deletes expired ones (at most)."""
MAX_QUEUED_QUERIES = 8
"""Queries waiting for the thread at most; more are refused (``HistoryBusy``)."""
_RETRY_SECONDS = 0.5
"""A commit that found the database locked is tried again after this long (or the next point)."""


class HistoryBusy(Exception):
    """Too many queries wait for the database already, or it could not be opened."""


class HistoryDatabaseInUse(Exception):
    """Another server writes the history database (its writer lock is taken)."""


class WriterLock:
    """The right to write a history database file: an exclusive ``flock`` on ``PATH.lock``,
    held for the life of the server (one server per file; its workers share it), released by
    the kernel when the holder ends."""

    def __init__(self, database: str | os.PathLike) -> None:
        self.path = Path(f"{os.fspath(database)}.lock")
        self._descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._descriptor, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(self._descriptor)
            raise HistoryDatabaseInUse(
                f"{database} is the history database of another fakeai server (pid {holder}); "
                "give each server a file of its own"
            ) from None
        os.ftruncate(self._descriptor, 0)
        os.pwrite(self._descriptor, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1


def claim_database(
    path: str | os.PathLike, lock: bool, **database: float
) -> tuple[HistoryDatabase, WriterLock | None]:
    """Open the history database at ``path`` (creating its directory and file if missing),
    first taking its ``WriterLock`` if ``lock``. Raises ``OSError``, ``HistoryDatabaseInUse``,
    ``HistoryDatabaseError`` or ``sqlite3.Error`` with a message for the user."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    writer = WriterLock(path) if lock else None
    try:
        return HistoryDatabase(path, **database), writer
    except BaseException:
        if writer is not None:
            writer.release()
        raise


class HistoryStore:
    """The history database of this process, run by a thread of its own.

    Args:
        path: The database file; ``None``: in memory (this process only).
        seconds: The full-resolution span (``--history-seconds``).
        interval_seconds: Between two sampled points.
        downsample_seconds: The step of merged points.
        retention_seconds: How long points are kept.
        queue_points: Points waiting for the disk at most (queued plus being written).
        lock: Take the ``WriterLock`` (a server of one process; ``fakeai serve`` takes it itself).
        wall_clock: Unix seconds, for merging and expiry.
        busy_seconds: How long one statement waits for another connection's lock.
    """

    def __init__(
        self,
        path: str | os.PathLike | None,
        *,
        seconds: float,
        interval_seconds: float,
        downsample_seconds: float,
        retention_seconds: float,
        queue_points: int,
        lock: bool = False,
        wall_clock: Callable[[], float] = time.time,
        busy_seconds: float = 5.0,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.seconds = float(seconds)
        self.interval_seconds = float(interval_seconds)
        self.downsample_seconds = float(downsample_seconds)
        self.retention_seconds = float(retention_seconds)
        self.queue_points = max(1, int(queue_points))
        self.wall_clock = wall_clock
        self._lock_file = lock
        self._busy_seconds = busy_seconds
        self._condition = threading.Condition()
        self._queued: list[Sequence[float]] = []
        self._writing_now = 0
        """Points taken by the thread and not yet committed (they count against the bound)."""
        self._queries: list[tuple[Future, Callable[[HistoryDatabase], object]]] = []
        self._stored = 0
        self._dropped = 0
        self._writer = False
        """Whether this process has written points (it merges and expires then)."""
        self._closing = False
        self._thread: threading.Thread | None = None
        self.failure: str | None = None
        """Why the database could not be opened (then points are dropped, queries refused)."""
        self._failing: str | None = None

    # -- the event loop's side -------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fakeai-history-db", daemon=True)
        self._thread.start()

    def put(self, record: Sequence[float]) -> bool:
        """Queue a point (``HISTORY_FIELDS`` then ``WEIGHT_FIELDS``) for the database; never
        waits. False (and counted as dropped) when the queue is full or the database failed."""
        with self._condition:
            self._writer = True
            if self.failure is not None or len(self._queued) + self._writing_now >= self.queue_points:
                self._dropped += 1
                return False
            self._queued.append(record)
            self._condition.notify()
            return True

    def take_counts(self) -> tuple[int, int]:
        """Points stored and points dropped since the last call."""
        with self._condition:
            counts = (self._stored, self._dropped)
            self._stored = self._dropped = 0
            return counts

    def submit_query(
        self, since: float, step: float | None, max_points: int = MAX_POINTS
    ) -> Future[QueryResult]:
        """The points from ``since`` on (see ``HistoryDatabase.query``), answered by the thread
        after the points queued before. Raises ``HistoryBusy``."""
        return self._submit(lambda database: database.query(since, step, max_points))

    def submit_recent(self) -> Future[QueryResult]:
        """The points of the last ``seconds``, as stored (to fill a new server's live ring)."""
        return self._submit(lambda database: database.query(self.wall_clock() - self.seconds, None))

    def _submit(self, job: Callable[[HistoryDatabase], object]) -> Future:
        future: Future = Future()
        with self._condition:
            if self.failure is not None:
                raise HistoryBusy(f"The history database is unavailable: {self.failure}")
            if len(self._queries) >= MAX_QUEUED_QUERIES:
                raise HistoryBusy("Too many history queries are waiting for the database")
            self._queries.append((future, job))
            self._condition.notify()
        return future

    def close(self, timeout: float) -> bool:
        """Write what is queued, close the database and end the thread, waiting up to
        ``timeout`` seconds (blocking: call it in a thread); False if it did not end in time
        (a stalled disk: the queued points are lost)."""
        with self._condition:
            self._closing = True
            self._condition.notify()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        database_settings = dict(seconds=self.seconds, downsample_seconds=self.downsample_seconds,
                                 retention_seconds=self.retention_seconds, busy_seconds=self._busy_seconds)
        try:
            if self.path is None:
                database, lock = HistoryDatabase(None, **database_settings), None
            else:
                database, lock = claim_database(self.path, self._lock_file, **database_settings)
        except Exception as exc:
            _log.error("the history database %s cannot be used; the history is not kept", self.path,
                       exc_info=exc)
            with self._condition:
                self.failure = f"{type(exc).__name__}: {exc}"
                self._dropped += len(self._queued)
                self._queued.clear()
                queries, self._queries = self._queries, []
            for future, _ in queries:
                if future.set_running_or_notify_cancel():
                    future.set_exception(HistoryBusy(f"The history database is unavailable: {self.failure}"))
            return
        try:
            self._serve(database)
        except Exception as exc:  # a bug: say so, and stop taking points rather than hold them
            _log.error("the history database's thread failed; the history is not kept any more", exc_info=exc)
            with self._condition:
                self.failure = f"{type(exc).__name__}: {exc}"
        finally:
            database.close()
            if lock is not None:
                lock.release()

    def _serve(self, database: HistoryDatabase) -> None:
        batch: list[Sequence[float]] = []
        maintained_at = -MAINTENANCE_SECONDS
        while True:
            retry_at = time.monotonic() + _RETRY_SECONDS if batch else None
            with self._condition:
                while not (self._queued or self._queries or self._closing):
                    deadlines = [retry_at] if retry_at is not None else []
                    if self._writer:
                        deadlines.append(maintained_at + MAINTENANCE_SECONDS)
                    if not deadlines:
                        self._condition.wait()
                        continue
                    left = min(deadlines) - time.monotonic()
                    if left <= 0:
                        break
                    self._condition.wait(left)
                batch += self._queued
                self._queued = []
                self._writing_now = len(batch)
                queries, self._queries = self._queries, []
                closing, writer = self._closing, self._writer
            if batch:
                batch = self._write(database, batch)
            for future, job in queries:
                if future.set_running_or_notify_cancel():  # its caller may have given up
                    try:
                        future.set_result(job(database))
                    except Exception as exc:
                        future.set_exception(exc)
            if writer and time.monotonic() - maintained_at >= MAINTENANCE_SECONDS:
                maintained_at = time.monotonic()
                self._maintain(database)
            if closing and not batch:
                return
            if closing and batch:  # locked at shutdown: one more try, then give up
                batch = self._write(database, batch)
                if batch:
                    with self._condition:
                        self._dropped += len(batch)
                    return

    def _write(self, database: HistoryDatabase, batch: list[Sequence[float]]) -> list[Sequence[float]]:
        """Commit ``batch``; returns what is left to retry (the database was locked)."""
        try:
            written = database.insert(batch, self.interval_seconds)
        except sqlite3.Error as exc:
            locked = getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            self._failed("writing history points", exc)
            if locked:
                return batch
            with self._condition:
                self._dropped += len(batch)
                self._writing_now = 0
            return []
        with self._condition:
            self._stored += written
            self._writing_now = 0
        self._failing = None
        return []

    def _maintain(self, database: HistoryDatabase) -> None:
        now = self.wall_clock()
        try:
            database.compact(now)
            database.expire(now)
        except sqlite3.Error as exc:  # tried again next time
            self._failed("merging or expiring history points", exc)

    def _failed(self, what: str, exc: BaseException) -> None:
        """Log a failure once while it repeats."""
        kind = f"{what}: {type(exc).__name__}: {exc}"
        if kind != self._failing:
            _log.error("%s failed", what, exc_info=exc)
            self._failing = kind
