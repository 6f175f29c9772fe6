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
"""

from __future__ import annotations

import os
import struct

__all__ = (
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
