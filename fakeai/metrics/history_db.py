"""The metrics history in an SQLite database: kept for ``--history-retention-seconds``, older
points merged into coarser ones, read back by ``GET /metrics/history?since=&step=``.

``HistoryDatabase`` is synchronous and used by one thread only (``history_store.HistoryStore``
runs it off the event loop). One table, ``points``, one row per point, keyed by its
timestamp: the figures of ``HISTORY_FIELDS`` (NaN is stored as NULL), the weights of
``WEIGHT_FIELDS``, and two columns of its own:

* ``step_seconds``: its resolution: the sampling interval for a point taken from a snapshot,
  the downsampling step for a point merged from several;
* ``covered_seconds``: the time its figures stand for: the interval, or the sum of the merged
  points' (less than the step where the server was not sampling).

**Merging.** A step's points (every row whose timestamp falls in ``[k x step, (k+1) x step)``
Unix seconds) become one point whose figures are, exactly (``MERGED``):

* ``timestamp``: the newest merged point's;
* ``requests_per_second``, ``errors_per_second``, ``completion_tokens_per_second``: the
  time-weighted mean (by ``covered_seconds``) of the points' rates, each a rate over the sliding
  window that ended at its point;
* ``error_rate_percentage``: 100 x the errors over the requests those rates count together
  (sum of errors_per_second x covered / sum of requests_per_second x covered), 0 with none:
  weighted by requests, not a mean of percentages;
* ``average_latency_seconds``: the requests' mean latency (each point's average weighted by
  its requests, requests_per_second x covered), 0 with no requests;
* ``kv_cache_hit_rate``: cached over looked-up prompt tokens (each point's rate weighted by its
  looked-up tokens, ``kv_prompt_tokens_per_second`` x covered), null with none looked up;
* ``latency_p50_seconds``, ``latency_p99_seconds``, ``ttft_p99_seconds``: the largest of the
  points' (a percentile of several windows cannot be had from their percentiles; the largest
  keeps a spike visible), null when every point's was;
* ``active_streams``, ``requests_in_flight``, ``requests_running``, ``requests_waiting``: the
  largest of the points' (the peak the samples saw);
* the history holds no counters (every figure is a window's rate, ratio or percentile, or a
  gauge), so nothing is a last value or a sum of deltas.

Every rule merges merged points again to the same figures as merging their sources in one go
(the weights are kept), so a coarse query over stored merged points is exact; a single point
is its own merge. ``compact`` stores the merge of every step entirely older than
``seconds`` (the full-resolution span); ``expire`` deletes points older than the retention;
``query`` merges on the fly to a step asked for.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from fakeai.metrics.history import HISTORY_FIELDS, WEIGHT_FIELDS

__all__ = ("MAX_POINTS", "MERGED", "SCHEMA_VERSION", "HistoryDatabase", "HistoryDatabaseError", "QueryResult",
           "database_file_bytes")

SCHEMA_VERSION = 1
MAX_POINTS = 5000
"""The most points one answer holds: a longer span is merged to a coarser step."""

_FIGURES = HISTORY_FIELDS[1:]
COLUMNS = ("timestamp", "step_seconds", "covered_seconds", *WEIGHT_FIELDS, *_FIGURES)


def database_file_bytes(seconds: float, interval_seconds: float, downsample_seconds: float,
                        retention_seconds: float) -> int:
    """About the most a history database takes on disk: its points (the full-resolution span,
    then merged ones up to the retention) at 256 bytes each with the index, and a write-ahead
    log of SQLite's default 1000 pages."""
    points = math.ceil(seconds / interval_seconds) + math.ceil(retention_seconds / downsample_seconds) + 1
    return points * 256 + 1000 * 4096


def _mean(field: str) -> str:
    return f"SUM({field} * covered_seconds) / SUM(covered_seconds)"


def _weighted(field: str, weight: str, empty: str) -> str:
    total = f"SUM({weight} * covered_seconds)"
    return f"COALESCE(SUM({field} * {weight} * covered_seconds) / NULLIF({total}, 0), {empty})"


_RULES = {
    "timestamp": "MAX(timestamp)",
    "covered_seconds": "SUM(covered_seconds)",
    "kv_prompt_tokens_per_second": _mean("kv_prompt_tokens_per_second"),
    "requests_per_second": _mean("requests_per_second"),
    "errors_per_second": _mean("errors_per_second"),
    "error_rate_percentage": "COALESCE(100.0 * SUM(errors_per_second * covered_seconds)"
                             " / NULLIF(SUM(requests_per_second * covered_seconds), 0), 0.0)",
    "average_latency_seconds": _weighted("average_latency_seconds", "requests_per_second", "0.0"),
    "latency_p50_seconds": "MAX(latency_p50_seconds)",
    "latency_p99_seconds": "MAX(latency_p99_seconds)",
    "ttft_p99_seconds": "MAX(ttft_p99_seconds)",
    "completion_tokens_per_second": _mean("completion_tokens_per_second"),
    "active_streams": "MAX(active_streams)",
    "requests_in_flight": "MAX(requests_in_flight)",
    "kv_cache_hit_rate": _weighted("kv_cache_hit_rate", "kv_prompt_tokens_per_second", "NULL"),
    "requests_running": "MAX(requests_running)",
    "requests_waiting": "MAX(requests_waiting)",
}
assert set(_RULES) == set(COLUMNS) - {"step_seconds"}, "every column has its merge rule"

MERGED = {
    column: rule if column in ("timestamp", "covered_seconds")
    else f"CASE WHEN COUNT(*) = 1 THEN MAX({column}) ELSE {rule} END"
    for column, rule in _RULES.items()
}
"""Column -> the SQL aggregate of a step's rows (a lone row keeps its own figures)."""

_SCHEMA = (
    "CREATE TABLE points (timestamp REAL PRIMARY KEY, step_seconds REAL NOT NULL, "
    "covered_seconds REAL NOT NULL, "
    + ", ".join(f"{column} REAL" for column in (*WEIGHT_FIELDS, *_FIGURES))
    + ") WITHOUT ROWID",
    "CREATE INDEX points_by_step ON points (step_seconds, timestamp)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


class HistoryDatabaseError(Exception):
    """The file is not a fakeai history database (or not one of this version)."""


class QueryResult:
    """Points of a query, oldest first (each in ``HISTORY_FIELDS`` order, None for null), and
    the step they were merged to (``None``: as stored)."""

    __slots__ = ("points", "step")

    def __init__(self, points: list[tuple], step: float | None) -> None:
        self.points = points
        self.step = step


def _bucket(step: float) -> str:
    return f"CAST(timestamp / {float(step)!r} AS INTEGER)"


class HistoryDatabase:
    """One connection to the history database at ``path`` (``None``: in memory).

    Args:
        seconds: The full-resolution span: steps entirely older are merged by ``compact``.
        downsample_seconds: The step merged points have.
        retention_seconds: How old a point may get before ``expire`` deletes it.
        busy_seconds: How long a statement waits for another connection's lock.
    """

    def __init__(
        self,
        path: str | Path | None,
        *,
        seconds: float,
        downsample_seconds: float,
        retention_seconds: float,
        busy_seconds: float = 5.0,
    ) -> None:
        self.path = path
        self.seconds = float(seconds)
        self.downsample_seconds = float(downsample_seconds)
        self.retention_seconds = float(retention_seconds)
        # autocommit mode: every transaction below is explicit
        self._connection = sqlite3.connect(
            ":memory:" if path is None else str(path), timeout=busy_seconds, isolation_level=None
        )
        try:
            self._prepare(path is None)
        except BaseException:
            self._connection.close()
            raise

    def _prepare(self, in_memory: bool) -> None:
        execute = self._connection.execute
        try:
            version = execute("PRAGMA user_version").fetchone()[0]
            tables = {row[0] for row in execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:  # "file is not a database"
            raise HistoryDatabaseError(f"{self.path} is not an SQLite database ({exc})") from None
        if tables and (version != SCHEMA_VERSION or "points" not in tables):
            raise HistoryDatabaseError(
                f"{self.path} is not a fakeai history database of version {SCHEMA_VERSION} "
                f"(user_version {version}, tables {sorted(tables)})"
            )
        if not in_memory:
            # WAL: readers (the server's other processes) never wait for the writer; FULL:
            # each commit is on the disk when it returns, so a crash of the machine too loses
            # only what was not yet committed
            execute("PRAGMA journal_mode = WAL")
            execute("PRAGMA synchronous = FULL")
        if not tables:
            with self._transaction("BEGIN IMMEDIATE"):  # another process may be creating it too
                if not execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]:
                    for statement in _SCHEMA:
                        execute(statement)

    def close(self) -> None:
        self._connection.close()

    # -- writing ---------------------------------------------------------------------------

    def insert(self, records: Iterable[Sequence[float]], interval_seconds: float) -> int:
        """Add points taken from snapshots, each ``HISTORY_FIELDS`` then ``WEIGHT_FIELDS``, in
        one transaction; returns how many. Raises ``sqlite3.Error`` (nothing is written then)."""
        rows = [
            (record[0], interval_seconds, interval_seconds, *record[len(HISTORY_FIELDS):],
             *(None if value != value else value for value in record[1:len(HISTORY_FIELDS)]))
            for record in records
        ]
        marks = ", ".join("?" * len(COLUMNS))
        with self._transaction():
            self._connection.executemany(
                f"INSERT OR REPLACE INTO points ({', '.join(COLUMNS)}) VALUES ({marks})", rows
            )
        return len(rows)

    def compact(self, now: float) -> int:
        """Merge every step of ``downsample_seconds`` that ends before ``now - seconds`` and
        holds finer points (or several); returns the steps merged."""
        step = self.downsample_seconds
        end = math.floor((now - self.seconds) / step) * step
        execute = self._connection.execute
        with self._transaction():
            first = execute(
                "SELECT MIN(timestamp) FROM points WHERE step_seconds < ? AND timestamp < ?", (step, end)
            ).fetchone()[0]
            if first is None:
                return 0
            start = math.floor(first / step) * step - step  # a margin for the division's rounding
            columns = [column for column in COLUMNS if column != "step_seconds"]
            merged = execute(
                f"SELECT {_bucket(step)} AS bucket, {', '.join(MERGED[column] for column in columns)} "
                f"FROM points WHERE timestamp >= ? AND timestamp < ? GROUP BY bucket "
                f"HAVING MIN(step_seconds) < ? OR COUNT(*) > 1",
                (start, end, step),
            ).fetchall()
            for bucket, *figures in merged:
                execute(f"DELETE FROM points WHERE timestamp >= ? AND timestamp < ? AND {_bucket(step)} = ?",
                        (start, end, bucket))
                marks = ", ".join("?" * len(COLUMNS))
                execute(f"INSERT INTO points (step_seconds, {', '.join(columns)}) VALUES ({marks})", (step, *figures))
        return len(merged)

    def expire(self, now: float) -> int:
        """Delete the points older than ``now - retention_seconds``; returns how many."""
        with self._transaction():
            return self._connection.execute(
                "DELETE FROM points WHERE timestamp < ?", (now - self.retention_seconds,)
            ).rowcount

    # -- reading ---------------------------------------------------------------------------

    def query(self, since: float, step: float | None = None, max_points: int = MAX_POINTS) -> QueryResult:
        """The points from ``since`` (Unix seconds) on, merged to ``step`` if given; at most
        ``max_points``: a span with more is merged to the step that fits it (the result says
        which)."""
        execute = self._connection.execute
        with self._transaction():  # one read transaction: the count and the points agree
            count, first, last = execute(
                "SELECT COUNT(*), MIN(timestamp), MAX(timestamp) FROM points WHERE timestamp >= ?", (since,)
            ).fetchone()
            if count > max_points:
                needed = math.ceil((last - first) / (max_points - 2) * 1000.0) / 1000.0
                step = max(step or 0.0, needed)
            if not count:
                return QueryResult([], step)
            if step is None:
                rows = execute(
                    f"SELECT {', '.join(HISTORY_FIELDS)} FROM points WHERE timestamp >= ? ORDER BY timestamp",
                    (since,),
                ).fetchall()
            else:
                rows = execute(
                    f"SELECT {', '.join(MERGED[field] for field in HISTORY_FIELDS)} FROM points "
                    f"WHERE timestamp >= ? GROUP BY {_bucket(step)} ORDER BY 1",
                    (since,),
                ).fetchall()
        return QueryResult(rows, step)

    def stored(self) -> list[tuple]:
        """Every row, oldest first, in ``COLUMNS`` order (for tests and tools)."""
        query = f"SELECT {', '.join(COLUMNS)} FROM points ORDER BY timestamp"
        return self._connection.execute(query).fetchall()

    def _transaction(self, begin: str = "BEGIN") -> _Transaction:
        return _Transaction(self._connection, begin)


class _Transaction:
    """``BEGIN`` ... ``COMMIT``, or ``ROLLBACK`` on an error."""

    __slots__ = ("_begin", "_connection")

    def __init__(self, connection: sqlite3.Connection, begin: str) -> None:
        self._connection = connection
        self._begin = begin

    def __enter__(self) -> None:
        self._connection.execute(self._begin)

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self._connection.execute("COMMIT")
        elif self._connection.in_transaction:
            self._connection.execute("ROLLBACK")
