"""The shared-memory metrics region's layout: the one definition both region kernels read.

``fakeai/_region.pyx`` (compiled) and ``fakeai/_region_py.py`` (its twin) import these
constants; neither defines its own, so a reader of either side reads what the other wrote.

One process writes a region; any process reads it. Layout (native byte order):

  header   4096 bytes: 64-bit fields at HEADER_FIELDS' offsets
  keys     key_capacity entries of 128 bytes: u32 first cell, u32 cells, 120 bytes of name
  cells    cell_capacity float64 cells (counters, gauges and histogram blocks)
  journal  journal_capacity records of 64 bytes (RECORD), a ring

Consistency, with no lock between processes: a key (and its zeroed cells) is written before
``keys_used`` is advanced; cells change only between two increments of ``seq`` (odd while
changing), and a reader copies them until it sees the same even ``seq`` before and after;
a record is written before ``journal_written`` is advanced, and a reader keeps only the
records the writer cannot have overwritten while they were copied.

``RequestFacts`` is the other thing both writers read: one request's facts, as the request
path notes them and ``MetricsWriter.finish`` records them.
"""

from __future__ import annotations

import math
import os
import struct

__all__ = (
    "CLIENT_CLOSED_REQUEST",
    "HEADER_BYTES",
    "HEADER_FIELDS",
    "KEY_BYTES",
    "KEY_NAME_BYTES",
    "RECORD",
    "REGION_MAGIC",
    "REGION_VERSION",
    "STREAM_COMPLETED",
    "STREAM_FAILED",
    "STREAM_PLAIN",
    "RequestFacts",
    "process_alive",
    "region_bytes",
)

REGION_MAGIC = 0x314D4941454B4146  # b"FAKEAIM1"
REGION_VERSION = 1
HEADER_BYTES = 4096
HEADER_FIELDS = {
    "magic": 0,
    "version": 8,
    "pid": 16,
    "seq": 24,
    "keys_used": 32,
    "cells_used": 40,
    "key_capacity": 48,
    "cell_capacity": 56,
    "journal_capacity": 64,
    "journal_written": 72,
    "dropped": 80,
    "window_seconds": 88,  # float64
}
KEY_BYTES = 128
KEY_NAME_BYTES = KEY_BYTES - 8
RECORD = struct.Struct("=ddddIIIHBBIIII")
"""finished_at, duration, ttft, itl, prompt tokens, completion tokens, endpoint id, status,
stream (0 plain, 1 completed, 2 failed), flags (1: KV figures present), KV prompt tokens,
KV cached tokens, KV oracle tokens, KV worker."""
STREAM_PLAIN, STREAM_COMPLETED, STREAM_FAILED = 0, 1, 2
"""A record's ``stream`` field: a plain response, a stream that finished, one that ended early."""
CLIENT_CLOSED_REQUEST = 499
"""The status recorded for a request whose client disconnected before the end (nginx's)."""


class RequestFacts:
    """What the writer records of one request, noted while it is served (``MetricsWriter.admit``,
    ``route_request``, then the server's handlers and senders) and recorded at its end in one
    call (``MetricsWriter.finish``). The API's per-request exchange extends it.

    A plain class with ``__slots__``, shared by both kernels: Python code sets and reads its
    fields at the cost of a slot, and the compiled writer reads them where the slots lie (their
    offsets, taken once from this class), instead of being handed some 26 arguments.
    """

    __slots__ = ("choice_tokens", "completion_tokens", "engine_series", "failure_status", "finish_reason",
                 "finished_at", "first_token_at", "kv_cached", "kv_oracle", "kv_prompt", "kv_worker",
                 "last_token_at", "longest", "max_tokens", "model_series", "n", "offsets", "prefill", "prompt_tokens",
                 "queue", "scheduled", "series", "started", "status", "stream")

    def __init__(self, started: float = 0.0) -> None:
        self.started = started
        """Arrival, on the clock the writer's ``finish`` is given."""
        self.finished_at = 0.0
        """When its last byte was sent (0.0: never, the client went away: recorded as 499)."""
        self.status = 500
        self.failure_status = 0
        """The status of a stream that failed after its 200 was sent (0: it did not)."""
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.stream = False
        """It was answered with a stream (opened with ``stream_started``)."""
        self.finish_reason: str | None = None
        """Why its (first) answer ended, once it was sent."""
        self.series: object = None
        """Its endpoint's cells, the writer's ``EndpointCells`` (``finish`` needs them: set before
        it, for every request)."""
        self.model_series: object = None
        """Its model's ``ModelCells`` once it was admitted (``admit``): it runs until ``finish``."""
        self.engine_series: object = None
        """Its model's ``EngineCells`` on the simulated engine it was routed to (``route_request``)."""
        self.kv_worker = -1
        """The KV worker it was routed to (-1: none), and its prompt, cached and oracle tokens."""
        self.kv_prompt = 0
        self.kv_cached = 0
        self.kv_oracle = 0
        self.first_token_at = math.nan
        """When its first and last tokens were produced (NaN: none was)."""
        self.last_token_at = math.nan
        self.longest = 0
        """Tokens of its longest choice."""
        self.n = 0
        """Its ``n`` and ``max_tokens`` parameters (0: not a generation request, not given)."""
        self.max_tokens = 0
        self.offsets: list[float] | None = None
        """A plain answer's planned token times after arrival; ``choice_tokens``: each choice's tokens."""
        self.choice_tokens: list[int] | None = None
        self.queue = math.nan
        """Its seconds in the engine's waiting queue and from its scheduling to its first token
        (NaN: the engine model did not run it)."""
        self.prefill = math.nan
        self.scheduled = False
        """The engine model runs it (its engine gauges are the scheduler's to keep)."""


def region_bytes(key_capacity: int, cell_capacity: int, journal_capacity: int) -> int:
    """The size of a region with these capacities."""
    return HEADER_BYTES + key_capacity * KEY_BYTES + cell_capacity * 8 + journal_capacity * RECORD.size


def process_alive(pid: int) -> bool:
    """Whether the writer ``pid`` still runs: a reader takes a dead writer's cells as they are."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0
