"""Pure-Python sliding window: the reference implementation of ``fakeai._window``.

This module is the specification. The compiled kernel ``fakeai/_window.pyx`` must give
exactly the same results (the equivalence tests feed both the same operations); where the
two could differ (summation order, interpolation arithmetic) the comments say how the
compiled one matches.

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
* At most ``max_samples`` samples are held; recording into a full window drops the oldest
  sample and counts it in ``dropped``.
* Quantiles use linear interpolation between closest ranks, exactly like
  ``numpy.quantile(values, q, method="linear")``: with the values sorted as ``x``,
  ``h = (n - 1) * q``, ``i = floor(h)``, ``g = h - i`` and the result is
  ``x[i] + (x[i+1] - x[i]) * g`` (computed as ``x[i+1] - (x[i+1] - x[i]) * (1 - g)`` when
  ``g >= 0.5``, as numpy does).
* An empty window has count 0, sum 0.0 and NaN for min, max, mean and every quantile.
* ``rate(now, started_at)`` is samples per second: the count divided by the window length,
  or by the time elapsed since ``started_at`` while that is shorter than one window (so a
  fresh server does not under-report). With no time elapsed the rate is 0.0.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from operator import itemgetter

__all__ = ("DEFAULT_MAX_SAMPLES", "SlidingWindow", "union")

#: Enough for 100k samples per second over the default 5 s window, with headroom.
DEFAULT_MAX_SAMPLES = 1_000_000

_NAN = math.nan


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
        if int(max_samples) < 1:
            raise ValueError(f"max_samples must be at least 1, got {max_samples!r}")
        self._window_seconds = window_seconds
        self._max_samples = int(max_samples)
        self._samples: deque[tuple[float, float]] = deque()
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

    def _values(self, now: float) -> list[float]:
        self.expire(now)
        return [value for _, value in self._samples]

    def count(self, now: float) -> int:
        self.expire(now)
        return len(self._samples)

    def sum(self, now: float) -> float:
        # Plain left-to-right addition from the oldest sample, as the compiled kernel does
        # (not math.fsum and not the builtin sum, which compensates on Python 3.12+).
        total = 0.0
        for value in self._values(now):
            total += value
        return total

    def min(self, now: float) -> float:
        values = self._values(now)
        return min(values) if values else _NAN

    def max(self, now: float) -> float:
        values = self._values(now)
        return max(values) if values else _NAN

    def mean(self, now: float) -> float:
        count = self.count(now)
        return self.sum(now) / count if count else _NAN

    def rate(self, now: float, started_at: float) -> float:
        count = self.count(now)
        divisor = min(self._window_seconds, now - _check_finite("started_at", started_at))
        return count / divisor if divisor > 0.0 else 0.0

    def quantile(self, now: float, q: float) -> float:
        return self.quantiles(now, (q,))[0]

    def quantiles(self, now: float, qs: Sequence[float]) -> tuple[float, ...]:
        checked = [_check_quantile(q) for q in qs]
        ordered = sorted(self._values(now))
        if not ordered:
            return tuple(_NAN for _ in checked)
        return tuple(_interpolate(ordered, q) for q in checked)

    def summary(self, now: float, qs: Sequence[float]) -> tuple[int, float, float, float, tuple[float, ...]]:
        """``(count, sum, min, max, quantiles)`` in one pass: what a snapshot needs."""
        quantiles = self.quantiles(now, qs)
        return (self.count(now), self.sum(now), self.min(now), self.max(now), quantiles)


def union(windows: Sequence[SlidingWindow], now: float) -> SlidingWindow:
    """A new window holding the live samples at ``now`` of every one of ``windows``.

    The windows must have the same length. Samples are merged in timestamp order, ties in the
    order of ``windows`` (so sums add up in a defined order); nothing is dropped.
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

