"""Pure-Python sliding window: the reference implementation of ``fakeai._window``.

This module is the specification. The compiled kernel ``fakeai/_window.pyx`` must give
exactly the same results (the equivalence tests feed both the same operations); where the
two could differ (summation, interpolation arithmetic) the comments say how the compiled one
matches.

Semantics
---------
* A window holds ``(timestamp, value)`` samples. At time ``now`` it contains the samples
  with ``timestamp > now - window_seconds``; a sample exactly ``window_seconds`` old has
  left the window.
* Expiry is permanent: reading with an earlier ``now`` never brings expired samples back.
  Recording a sample at ``timestamp`` also expires what is a window older than it, so a
  window that is written but never read stays window-sized.
* Timestamps are kept in order. A timestamp earlier than the newest recorded one (a clock
  that went backwards) is recorded as the newest one.
* NaN or infinite timestamps and values are rejected with ``ValueError``.
* At most ``max_samples`` samples are held (``max_samples`` below 2**31 - 2048); recording into a
  full window drops the oldest sample and counts it in ``dropped``.
* The sum is the correctly rounded sum of the live values, equal to ``math.fsum`` of them.
  A sum beyond the largest double is undefined (inf or NaN).
* Quantiles use linear interpolation between closest ranks, exactly like
  ``numpy.quantile(values, q, method="linear")``: with the values sorted as ``x``,
  ``h = (n - 1) * q``, ``i = floor(h)``, ``g = h - i`` and the result is
  ``x[i] + (x[i+1] - x[i]) * g`` (computed as ``x[i+1] - (x[i+1] - x[i]) * (1 - g)`` when
  ``g >= 0.5``, as numpy does). ``-0.0`` and ``0.0`` are equal values; which of them a
  quantile, a minimum or a maximum returns is not specified.
* An empty window has count 0, sum 0.0 and NaN for min, max, mean and every quantile.
* ``rate(now, started_at)`` is samples per second: the count divided by the window length,
  or by the time elapsed since ``started_at`` while that is shorter than one window (so a
  fresh server does not under-report). With no time elapsed the rate is 0.0.
* ``summarize(windows, now, qs)`` gives ``(count, sum, min, max, quantiles)`` over the live
  samples of several windows of one length together, as if they were one window, without
  building one (``union`` builds one).

This twin keeps the samples in time order only and sorts the live values at each read
(O(n log n) a read, O(1) a record, as ``FAKEAI_NO_EXTENSIONS=1`` always did). The compiled
kernel gives the same answers from an index whose reads do not grow with the window (see
its docstring).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from operator import itemgetter

__all__ = ("DEFAULT_MAX_SAMPLES", "MAX_SAMPLES_LIMIT", "SlidingWindow", "summarize", "union")

#: Enough for 100k samples per second over the default 5 s window, with headroom.
DEFAULT_MAX_SAMPLES = 1_000_000

#: ``max_samples`` must be below this: the compiled kernel names a sample's place by a 32-bit
#: slot, and its storage holds up to two chunks (of at most 1,024 slots) beyond ``max_samples``.
MAX_SAMPLES_LIMIT = 2**31 - 2048

_NAN = math.nan

Summary = tuple[int, float, float, float, tuple[float, ...]]


def _check_finite(name: str, number: float) -> float:
    number = float(number)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number!r}")
    return number


def _check_quantile(q: float) -> float:
    q = float(q)
    if not 0.0 <= q <= 1.0:  # also rejects NaN
        raise ValueError(f"quantile must be between 0 and 1, got {q!r}")
    return q


def _interpolate(ordered: Sequence[float], q: float) -> float:
    """numpy's ``method="linear"`` on already sorted values."""
    n = len(ordered)
    position = (n - 1) * q
    below = math.floor(position)
    gamma = position - below
    above = min(below + 1, n - 1)
    low, high = ordered[below], ordered[above]
    difference = high - low
    if gamma >= 0.5:
        return high - difference * (1.0 - gamma)
    return low + difference * gamma


class SlidingWindow:
    """Samples of the last ``window_seconds`` with count, sum, extremes and quantiles."""

    __slots__ = ("_dropped", "_max_samples", "_newest", "_samples", "_window_seconds")

    def __init__(self, window_seconds: float, max_samples: int = DEFAULT_MAX_SAMPLES) -> None:
        window_seconds = _check_finite("window_seconds", window_seconds)
        if window_seconds <= 0.0:
            raise ValueError(f"window_seconds must be positive, got {window_seconds!r}")
        if not 1 <= int(max_samples) < MAX_SAMPLES_LIMIT:
            raise ValueError(f"max_samples must be at least 1 and below 2**31 - 2048, got {max_samples!r}")
        self._window_seconds = window_seconds
        self._max_samples = int(max_samples)
        self._samples: deque[tuple[float, float]] = deque()  # time order: expiry is first in, first out
        self._newest = -math.inf
        self._dropped = 0

    @property
    def window_seconds(self) -> float:
        return self._window_seconds

    @property
    def max_samples(self) -> int:
        return self._max_samples

    @property
    def dropped(self) -> int:
        """Samples discarded because the window was full (never because they expired)."""
        return self._dropped

    def __len__(self) -> int:
        """Samples held now, before expiry at any particular time."""
        return len(self._samples)

    def record(self, timestamp: float, value: float) -> None:
        timestamp = _check_finite("timestamp", timestamp)
        value = _check_finite("value", value)
        if timestamp < self._newest:
            timestamp = self._newest
        self._newest = timestamp
        self._drop_older_than(timestamp - self._window_seconds)
        if len(self._samples) == self._max_samples:
            self._samples.popleft()
            self._dropped += 1
        self._samples.append((timestamp, value))

    def expire(self, now: float) -> None:
        self._drop_older_than(_check_finite("now", now) - self._window_seconds)

    def _drop_older_than(self, horizon: float) -> None:
        samples = self._samples
        while samples and samples[0][0] <= horizon:
            samples.popleft()

    def count(self, now: float) -> int:
        self.expire(now)
        return len(self._samples)

    def sum(self, now: float) -> float:
        return self.summary(now, ())[1]

    def min(self, now: float) -> float:
        return self.summary(now, ())[2]

    def max(self, now: float) -> float:
        return self.summary(now, ())[3]

    def mean(self, now: float) -> float:
        count, total = self.summary(now, ())[:2]
        return total / count if count else _NAN

    def rate(self, now: float, started_at: float) -> float:
        count = self.count(now)
        divisor = min(self._window_seconds, now - _check_finite("started_at", started_at))
        return count / divisor if divisor > 0.0 else 0.0

    def quantile(self, now: float, q: float) -> float:
        return self.quantiles(now, (q,))[0]

    def quantiles(self, now: float, qs: Sequence[float]) -> tuple[float, ...]:
        return self.summary(now, qs)[4]

    def summary(self, now: float, qs: Sequence[float]) -> Summary:
        """``(count, sum, min, max, quantiles)``: what a snapshot needs."""
        return summarize((self,), now, qs)


def summarize(windows: Sequence[SlidingWindow], now: float, qs: Sequence[float]) -> Summary:
    """``(count, sum, min, max, quantiles)`` at ``now`` over the live samples of ``windows``
    together, exactly as one window holding them all would answer; no window at all is an
    empty one. The windows must have the same length; each is expired to ``now``.
    """
    checked = [_check_quantile(q) for q in qs]
    windows = list(windows)
    if windows:
        seconds = windows[0].window_seconds
        if any(window.window_seconds != seconds for window in windows):
            raise ValueError("summary of windows of different lengths")
    for window in windows:
        window.expire(now)
    ordered = sorted(value for window in windows for _, value in window._samples)
    if not ordered:
        return (0, 0.0, _NAN, _NAN, tuple(_NAN for _ in checked))
    total = math.fsum(ordered)
    return (
        len(ordered),
        total,
        ordered[0],
        ordered[-1],
        tuple(_interpolate(ordered, q) for q in checked),
    )


def union(windows: Sequence[SlidingWindow], now: float) -> SlidingWindow:
    """A new window holding the live samples at ``now`` of every one of ``windows``.

    The windows must have the same length. Samples are merged in timestamp order, ties in the
    order of ``windows``; nothing is dropped. ``summarize`` answers the same figures without
    building a window.
    """
    if not windows:
        raise ValueError("union of no windows")
    seconds = windows[0].window_seconds
    for window in windows:
        if window.window_seconds != seconds:
            raise ValueError("union of windows of different lengths")
        window.expire(now)
    merged = SlidingWindow(seconds, max(1, sum(len(window) for window in windows)))
    for timestamp, value in heapq.merge(*(window._samples for window in windows), key=itemgetter(0)):
        merged.record(timestamp, value)
    return merged
