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
from array import array
from collections import deque
from collections.abc import Sequence
from operator import itemgetter

__all__ = (
    "DEFAULT_MAX_SAMPLES",
    "Histogram",
    "ModelSeries",
    "PrefixCache",
    "RequestSeries",
    "SlidingWindow",
    "block_hashes",
    "union",
)

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


class Histogram:
    """Observation counts per bucket; bucket ``i`` holds values ``<= bounds[i]`` (and above the
    previous bound), the last one everything above the highest bound (+Inf). NaN is rejected.
    """

    __slots__ = ("_bounds", "_counts", "_sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        bounds = tuple(float(bound) for bound in bounds)
        if not bounds or any(not math.isfinite(b) for b in bounds) or list(bounds) != sorted(set(bounds)):
            raise ValueError("histogram bounds must be finite and strictly increasing")
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)
        self._sum = 0.0

    @property
    def bounds(self) -> tuple[float, ...]:
        return self._bounds

    def observe(self, value: float) -> None:
        value = float(value)
        if math.isnan(value):
            raise ValueError("value must not be NaN")
        index = 0
        for bound in self._bounds:  # the first bound at or above the value (bisect_left)
            if value <= bound:
                break
            index += 1
        self._counts[index] += 1
        self._sum += value

    def state(self) -> tuple[tuple[int, ...], float, int]:
        """``(cumulative counts, sum, count)``; the last cumulative count is +Inf's (= count)."""
        running = 0
        cumulative = []
        for count in self._counts:
            running += count
            cumulative.append(running)
        return tuple(cumulative), self._sum, running


# -- series: everything one request adds, in one call ---------------------------------------


def _check_count(name: str, value: int) -> int:
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return int(value)


class RequestSeries:
    """What one endpoint records per finished request: four windows, three histograms, totals.

    ``record`` adds the request's duration to ``latency`` (and to ``errors`` when the status
    is 400 or more), its token counts to ``prompt_tokens`` and ``completion_tokens``, observes
    the three histograms and advances the cumulative counters, all at timestamp ``now``.
    """

    __slots__ = (
        "completion_tokens",
        "completion_tokens_histogram",
        "completion_tokens_total",
        "duration_histogram",
        "errors",
        "errors_total",
        "latency",
        "prompt_tokens",
        "prompt_tokens_histogram",
        "prompt_tokens_total",
        "requests_total",
    )

    def __init__(
        self,
        window_seconds: float,
        max_samples: int,
        duration_bounds: Sequence[float],
        token_bounds: Sequence[float],
    ) -> None:
        self.latency = SlidingWindow(window_seconds, max_samples)
        self.errors = SlidingWindow(window_seconds, max_samples)
        self.prompt_tokens = SlidingWindow(window_seconds, max_samples)
        self.completion_tokens = SlidingWindow(window_seconds, max_samples)
        self.duration_histogram = Histogram(duration_bounds)
        self.prompt_tokens_histogram = Histogram(token_bounds)
        self.completion_tokens_histogram = Histogram(token_bounds)
        self.requests_total = 0
        self.prompt_tokens_total = 0
        self.completion_tokens_total = 0
        self.errors_total: dict[int, int] = {}

    def record(
        self,
        now: float,
        duration: float,
        status: int,
        prompt_tokens: int,
        completion_tokens: int,
        model: ModelSeries | None = None,
        ttft: float = math.nan,
        itl: float = math.nan,
        finish_reason: str | None = None,
    ) -> None:
        """One finished request; with ``model``, also ``model.record(...)`` for it."""
        prompt_tokens = _check_count("prompt_tokens", prompt_tokens)
        completion_tokens = _check_count("completion_tokens", completion_tokens)
        _check_finite("now", now)
        _check_finite("duration", duration)
        self.latency.record(now, duration)
        self.prompt_tokens.record(now, prompt_tokens)
        self.completion_tokens.record(now, completion_tokens)
        self.duration_histogram.observe(duration)
        self.prompt_tokens_histogram.observe(prompt_tokens)
        self.completion_tokens_histogram.observe(completion_tokens)
        self.requests_total += 1
        self.prompt_tokens_total += prompt_tokens
        self.completion_tokens_total += completion_tokens
        if status >= 400:
            self.errors.record(now, duration)
            self.errors_total[status] = self.errors_total.get(status, 0) + 1
        if model is not None:
            model.record(duration, prompt_tokens, completion_tokens, ttft, itl, finish_reason)


class ModelSeries:
    """What one model records per finished request, as vLLM reports it per ``model_name``.

    ``started`` counts a request as running; ``record`` ends it, adds its tokens to the
    totals and, when it succeeded (a ``finish_reason``), counts that reason and observes the
    end-to-end, token, TTFT and inter-token histograms (NaN TTFT or ITL: not observed).
    """

    __slots__ = (
        "e2e",
        "generation_tokens",
        "generation_tokens_total",
        "itl",
        "prompt_tokens",
        "prompt_tokens_total",
        "running",
        "success_total",
        "ttft",
    )

    def __init__(
        self, duration_bounds: Sequence[float], token_bounds: Sequence[float], inter_token_bounds: Sequence[float]
    ) -> None:
        self.running = 0
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self.success_total: dict[str, int] = {}
        self.ttft = Histogram(duration_bounds)
        self.itl = Histogram(inter_token_bounds)
        self.e2e = Histogram(duration_bounds)
        self.prompt_tokens = Histogram(token_bounds)
        self.generation_tokens = Histogram(token_bounds)

    def started(self) -> None:
        self.running += 1

    def record(
        self,
        duration: float,
        prompt_tokens: int,
        generation_tokens: int,
        ttft: float,
        itl: float,
        finish_reason: str | None,
    ) -> None:
        prompt_tokens = _check_count("prompt_tokens", prompt_tokens)
        generation_tokens = _check_count("generation_tokens", generation_tokens)
        self.running -= 1
        self.prompt_tokens_total += prompt_tokens
        self.generation_tokens_total += generation_tokens
        if finish_reason is None:
            return
        self.success_total[finish_reason] = self.success_total.get(finish_reason, 0) + 1
        self.e2e.observe(duration)
        self.prompt_tokens.observe(prompt_tokens)
        self.generation_tokens.observe(generation_tokens)
        if not math.isnan(ttft):
            self.ttft.observe(ttft)
        if not math.isnan(itl):
            self.itl.observe(itl)


# -- prefix-cache block hashing ------------------------------------------------------------

_HASH_SEED = 0xCBF29CE484222325
_HASH_MULTIPLIER = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1


def block_hashes(data: bytes, block_bytes: int) -> list[int]:
    """Chained 64-bit hashes of ``data``'s full blocks of ``block_bytes`` bytes.

    Hash ``i`` depends on every byte of blocks ``0..i`` (the state runs on from block to
    block), so equal hashes mean equal prefixes, as vLLM's prefix caching requires. The
    data is read as native-order 32-bit words (``block_bytes`` must be a multiple of 4);
    per word: ``h = (h ^ word) * M mod 2**64; h ^= h >> 29``. A trailing partial block is
    not hashed.
    """
    if block_bytes < 4 or block_bytes % 4:
        raise ValueError("block_bytes must be a positive multiple of 4")
    blocks = len(data) // block_bytes
    words = array("I")
    if words.itemsize != 4:  # pragma: no cover - every platform fakeai runs on has 4-byte "I"
        raise RuntimeError("array('I') is not 32-bit here")
    words.frombytes(data[: blocks * block_bytes])
    per_block = block_bytes // 4
    state = _HASH_SEED
    multiplier = _HASH_MULTIPLIER
    hashes = []
    for position, word in enumerate(words, 1):
        state = ((state ^ word) * multiplier) & _MASK64
        state ^= state >> 29
        if position % per_block == 0:
            hashes.append(state)
    return hashes


# -- the prefix cache of one simulated worker ----------------------------------------------


class PrefixCache:
    """One worker's cache of prefix blocks: LRU over the blocks no running request uses.

    * A block is cached or not; a cached block has ``pins``, the running requests using it.
    * ``acquire(hashes)`` starts a request: the leading cached blocks are its hits; every block
      is pinned, missing ones inserted. Inserting into a full cache evicts the least recently
      released unpinned block; when every block is pinned, the block and those after it are
      not cached (and not pinned). Returns ``(hits, pinned blocks)``.
    * ``release(pinned)`` ends it: its blocks are unpinned last to first, so a prompt's tail
      becomes evictable before its head (vLLM's free-block queue does the same).

    Blocks in use are never evicted and the cache never holds more than ``capacity`` blocks.
    Each operation is O(blocks in the prompt).
    """

    def __init__(self, capacity_blocks: int) -> None:
        if capacity_blocks < 1:
            raise ValueError("capacity_blocks must be at least 1")
        self.capacity = int(capacity_blocks)
        self.evictions = 0
        self.active_requests = 0
        self._pins: dict[int, int] = {}  # every cached block -> running requests using it
        self._free: dict[int, None] = {}  # cached blocks with no pins, least recently released first
        self._pinned = 0

    def __len__(self) -> int:
        return len(self._pins)

    def __contains__(self, block: int) -> bool:
        return block in self._pins

    def pins(self, block: int) -> int:
        return self._pins.get(block, 0)

    def pinned_blocks(self) -> int:
        """Blocks some running request is using."""
        return self._pinned

    def cached_prefix(self, hashes: Sequence[int]) -> int:
        """How many leading blocks of ``hashes`` are cached (changes nothing)."""
        pins = self._pins
        count = 0
        for block in hashes:
            if block not in pins:
                break
            count += 1
        return count

    def acquire(self, hashes: Sequence[int]) -> tuple[int, list[int]]:
        cached = self.cached_prefix(hashes)
        pins = self._pins
        free = self._free
        pinned = []
        for block in hashes:
            held = pins.get(block)
            if held is None:
                if len(pins) >= self.capacity:
                    if not free:
                        break  # every block is in use: this one and the rest stay uncached
                    victim = next(iter(free))
                    del free[victim]
                    del pins[victim]
                    self.evictions += 1
                pins[block] = 1
                self._pinned += 1
            else:
                if held == 0:
                    del free[block]
                    self._pinned += 1
                pins[block] = held + 1
            pinned.append(block)
        self.active_requests += 1
        return cached, pinned

    def release(self, pinned: Sequence[int]) -> None:
        pins = self._pins
        for block in reversed(pinned):
            held = pins.get(block)
            if held is None or held == 0:
                continue  # not pinned (cannot happen for what acquire returned)
            pins[block] = held - 1
            if held == 1:
                self._free[block] = None
                self._pinned -= 1
        self.active_requests -= 1


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
