"""The server's one metrics history when it has several processes: a ring file they all read,
written by whichever process holds the sampling lease.

With ``fakeai serve`` the server's processes share a directory (``FAKEAI_SHARED_METRICS_DIR``).
In it, ``history.lock`` is the sampling lease: an exclusive ``flock`` that one process takes and
keeps for its life, released by the kernel when it ends, so another process takes the lease at
its next attempt. The lease holder writes a point every interval into ``history.ring``; every
process answers ``/metrics/history`` from that file, so every answer shows the same points.

Layout of ``history.ring`` (native byte order):

    header  64 bytes: magic, version, capacity, fields, written (u64); next due (f64,
            ``time.monotonic``, shared by the server's processes)
    slots   capacity x (u64 sequence + fields x f64)

Point ``i`` (``written`` counts every point written) goes in slot ``i % capacity``. Its writer
sets the slot's sequence to ``2i + 1`` (being written), then the figures, then ``2i + 2``
(complete), then advances ``written``. A reader keeps a slot only if it reads the sequence
``2i + 2`` both before and after copying the figures: a point half written (or whose writer
was killed while writing it) or overwritten meanwhile is never shown. The interpreter issues
the stores and loads in program order, and x86-64 keeps stores (and loads) in that order as
seen from other processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import mmap
import os
import struct
from collections.abc import Generator
from pathlib import Path

from fakeai.metrics.history import HISTORY_FIELDS, history_point
from fakeai.metrics.slicing import run
from fakeai.metrics.snapshot import MetricsSnapshot

__all__ = ("RING_FILE", "LEASE_FILE", "SamplingLease", "SharedHistory", "ring_file_bytes")

RING_FILE = "history.ring"
LEASE_FILE = "history.lock"
MAGIC = 0x31484941454B4146  # b"FAKEAIH1"
VERSION = 1
_HEADER = struct.Struct("=QQQQQd")
_MAGIC, _VERSION, _CAPACITY, _FIELDS, _WRITTEN, _NEXT_DUE = (8 * index for index in range(6))
HEADER_BYTES = 64
_U64 = struct.Struct("=Q")
_F64 = struct.Struct("=d")
_POINT = struct.Struct(f"={len(HISTORY_FIELDS)}d")
SLOT_BYTES = _U64.size + _POINT.size


def ring_capacity(seconds: float, interval_seconds: float) -> int:
    return math.ceil(seconds / interval_seconds)


def ring_file_bytes(seconds: float, interval_seconds: float) -> int:
    """The size of the ring file for a history of ``seconds`` at ``interval_seconds``."""
    return HEADER_BYTES + ring_capacity(seconds, interval_seconds) * SLOT_BYTES


POINTS_PER_STEP = 128
"""Slots ``SharedHistory.points_in_steps`` reads between two pauses (about 0.2 ms here)."""


class SharedHistory:
    """The ring file of a shared directory: the same interface as ``MetricsHistory``, plus the
    schedule (``next_due``) a new lease holder continues.

    Every process opens it (the first one creates it); only the lease holder ``add``\\ s.
    """

    def __init__(self, directory: str | os.PathLike, seconds: float, interval_seconds: float) -> None:
        if interval_seconds <= 0 or seconds < interval_seconds:
            raise ValueError("the history needs interval_seconds > 0 and seconds >= interval_seconds")
        self.seconds = float(seconds)
        self.interval_seconds = float(interval_seconds)
        self.capacity = ring_capacity(seconds, interval_seconds)
        self.path = Path(directory) / RING_FILE
        size = ring_file_bytes(seconds, interval_seconds)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        header = _HEADER.pack(MAGIC, VERSION, self.capacity, len(HISTORY_FIELDS), 0, 0.0)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)  # the server's processes start together: one creates
            found = os.pread(descriptor, _HEADER.size, 0)
            if len(found) < _HEADER.size or _U64.unpack_from(found, _MAGIC)[0] != MAGIC:
                # new, or left unfinished by a process that died creating it
                os.ftruncate(descriptor, 0)
                os.ftruncate(descriptor, size)
                os.pwrite(descriptor, header, 0)
            elif found[: _WRITTEN] != header[: _WRITTEN] or os.fstat(descriptor).st_size != size:
                raise ValueError(f"{self.path} is not a history ring of {self.capacity} points")
            self._map = mmap.mmap(descriptor, size)
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)  # explicitly: the mapping keeps the file open
            os.close(descriptor)

    @property
    def written(self) -> int:
        """Points written since the server started (the newest ``capacity`` are kept)."""
        return _U64.unpack_from(self._map, _WRITTEN)[0]

    @property
    def next_due(self) -> float | None:
        """When the next point is due on ``time.monotonic`` (``None`` before the first)."""
        due = _F64.unpack_from(self._map, _NEXT_DUE)[0]
        return due if due > 0.0 else None

    def __len__(self) -> int:
        return min(self.written, self.capacity)

    def add(self, snapshot: MetricsSnapshot, next_due: float | None = None) -> None:
        """Write the snapshot's point (the lease holder alone), and when the next one is due."""
        self.add_point(history_point(snapshot), next_due)

    def add_point(self, point: tuple[float, ...], next_due: float | None = None) -> None:
        index = self.written
        at = HEADER_BYTES + (index % self.capacity) * SLOT_BYTES
        ring = self._map
        _U64.pack_into(ring, at, 2 * index + 1)
        _POINT.pack_into(ring, at + _U64.size, *point)
        _U64.pack_into(ring, at, 2 * index + 2)
        _U64.pack_into(ring, _WRITTEN, index + 1)
        if next_due is not None:
            _F64.pack_into(ring, _NEXT_DUE, next_due)

    def points(self) -> list[tuple[float, ...]]:
        """The complete points kept, oldest first."""
        return run(self.points_in_steps())

    def points_in_steps(self) -> Generator[None, None, list[tuple[float, ...]]]:
        """``points``, yielding after every ``POINTS_PER_STEP`` slots read (an hour of points
        takes milliseconds to read): the points kept when it started, but for any the sampler
        overwrote meanwhile, which are left out as a point being written is (a read paused
        for as long as the sampler takes to come round the ring shows a gap, never a torn or
        misplaced point)."""
        ring = self._map
        written = self.written
        found = []
        for index in range(max(0, written - self.capacity), written):
            if index % POINTS_PER_STEP == 0:
                yield
            at = HEADER_BYTES + (index % self.capacity) * SLOT_BYTES
            complete = 2 * index + 2
            if _U64.unpack_from(ring, at)[0] != complete:
                continue
            point = _POINT.unpack_from(ring, at + _U64.size)
            if _U64.unpack_from(ring, at)[0] == complete:
                found.append(point)
        return found


class SamplingLease:
    """The right to write the server's history: ``held()`` tries to take it (without waiting)
    and keeps it for the life of the process, or until ``release``. Another job done by one
    process of the server (alerts, the OTLP export) takes a lease of its own: ``file`` names it."""

    def __init__(self, directory: str | os.PathLike, file: str = LEASE_FILE) -> None:
        self.path = Path(directory) / file
        self._descriptor: int | None = None
        self._held = False

    def held(self) -> bool:
        """Whether this process holds the lease, taking it if it is free. Raises ``OSError``
        when the lock file cannot be opened (out of file descriptors: try again later)."""
        if self._held:
            return True
        if self._descriptor is None:
            self._descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self._held = True
        return True

    def release(self) -> None:
        if self._descriptor is not None:
            with contextlib.suppress(OSError):
                os.close(self._descriptor)  # releases the lock
        self._descriptor = None
        self._held = False
