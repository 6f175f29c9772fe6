"""The metrics registry: where requests are recorded and snapshots are taken.

One registry per app, injected where it is needed; nothing here is global. The request path
calls ``record`` once per finished request (and ``stream_started`` when a stream opens); a
scrape calls ``snapshot`` once and hands the result to an exporter.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from fakeai.metrics.snapshot import EndpointSnapshot, MetricsSnapshot, StreamingSnapshot, Totals, WindowStats
from fakeai.window import DEFAULT_MAX_SAMPLES, KERNEL, SlidingWindow

__all__ = ("QUANTILES", "MetricsRegistry")

QUANTILES = (0.5, 0.9, 0.99)
"""The quantiles every snapshot reports (p50, p90, p99)."""

Clock = Callable[[], float]


class _Endpoint:
    """Windows and counters of one endpoint."""

    __slots__ = (
        "completion_tokens",
        "completion_tokens_total",
        "errors",
        "errors_total",
        "latency",
        "latency_sum",
        "prompt_tokens",
        "prompt_tokens_total",
        "requests_total",
    )

    def __init__(self, new_window: Callable[[], SlidingWindow]) -> None:
        self.latency = new_window()
        self.errors = new_window()
        self.prompt_tokens = new_window()
        self.completion_tokens = new_window()
        self.requests_total = 0
        self.errors_total: dict[int, int] = {}
        self.latency_sum = 0.0
        self.prompt_tokens_total = 0
        self.completion_tokens_total = 0


class MetricsRegistry:
    """Sliding windows and cumulative counters of everything fakeai serves.

    Args:
        window_seconds: Length of every sliding window.
        max_samples: Cap of samples per window (the oldest are dropped and counted beyond it).
        clock: Monotonic seconds; drives the windows and uptime. Injectable for tests.
        wall_clock: Unix seconds; only stamps snapshots.
    """

    def __init__(
        self,
        *,
        window_seconds: float = 5.0,
        max_samples: int = DEFAULT_MAX_SAMPLES,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
    ) -> None:
        self.window_seconds = float(window_seconds)
        self.max_samples = int(max_samples)
        self.kernel = KERNEL
        self._clock = clock
        self._wall_clock = wall_clock
        self.started_at = clock()
        self._endpoints: dict[str, _Endpoint] = {}
        self._ttft = self._new_window()
        self._tokens_per_second = self._new_window()
        self._active_streams = 0
        self._completed_streams = 0
        self._failed_streams = 0
        self._ttft_sum = 0.0
        self._ttft_count = 0

    def _new_window(self) -> SlidingWindow:
        return SlidingWindow(self.window_seconds, self.max_samples)

    @property
    def clock(self) -> Clock:
        return self._clock

    # -- the request path ------------------------------------------------------------------

    def stream_started(self) -> None:
        """A stream opened; ``record`` with ``stream_completed`` set closes it."""
        self._active_streams += 1

    def record(
        self,
        endpoint: str,
        duration: float,
        status: int,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        ttft: float | None = None,
        stream_completed: bool | None = None,
    ) -> None:
        """Record one finished request.

        Args:
            endpoint: The route path (a bounded set, never the raw URL).
            duration: Seconds from arrival until the last byte was sent.
            status: HTTP status sent; 400 and above count as errors.
            prompt_tokens: Prompt tokens of the request.
            completion_tokens: Completion tokens sent.
            ttft: Seconds from arrival until the first token was sent, if one was.
            stream_completed: ``None`` for a plain response; for a stream opened with
                ``stream_started``, whether it finished (True) or ended early (False).
        """
        now = self._clock()
        metrics = self._endpoints.get(endpoint)
        if metrics is None:
            metrics = self._endpoints[endpoint] = _Endpoint(self._new_window)
        metrics.latency.record(now, duration)
        metrics.prompt_tokens.record(now, prompt_tokens)
        metrics.completion_tokens.record(now, completion_tokens)
        metrics.requests_total += 1
        metrics.latency_sum += duration
        metrics.prompt_tokens_total += prompt_tokens
        metrics.completion_tokens_total += completion_tokens
        if status >= 400:
            metrics.errors.record(now, duration)
            metrics.errors_total[status] = metrics.errors_total.get(status, 0) + 1
        if ttft is not None:
            self._ttft.record(now, ttft)
            self._ttft_sum += ttft
            self._ttft_count += 1
        if stream_completed is not None:
            self._active_streams -= 1
            if stream_completed:
                self._completed_streams += 1
            else:
                self._failed_streams += 1
            if duration > 0.0 and completion_tokens:
                self._tokens_per_second.record(now, completion_tokens / duration)

    # -- the scrape path -------------------------------------------------------------------

    def _per_second(self, now: float) -> float:
        """1 / the rate divisor: the window length, or the uptime while shorter (the kernel's rule)."""
        divisor = min(self.window_seconds, now - self.started_at)
        return 1.0 / divisor if divisor > 0.0 else 0.0

    def _stats(self, window: SlidingWindow, now: float) -> WindowStats:
        count, total, low, high, (p50, p90, p99) = window.summary(now, QUANTILES)
        per_second = self._per_second(now)
        return WindowStats(
            count=count,
            rate=count * per_second,
            sum=total,
            sum_rate=total * per_second,
            avg=total / count if count else math.nan,
            min=low,
            max=high,
            p50=p50,
            p90=p90,
            p99=p99,
        )

    def snapshot(self) -> MetricsSnapshot:
        """Everything, computed once, at one instant."""
        now = self._clock()
        endpoints = {}
        requests = errors = 0
        latency_total = 0.0
        for path, metrics in sorted(self._endpoints.items()):
            latency = self._stats(metrics.latency, now)
            failed = self._stats(metrics.errors, now)
            endpoints[path] = EndpointSnapshot(
                latency=latency,
                errors=failed,
                prompt_tokens=self._stats(metrics.prompt_tokens, now),
                completion_tokens=self._stats(metrics.completion_tokens, now),
                requests_total=metrics.requests_total,
                errors_total=dict(sorted(metrics.errors_total.items())),
                latency_sum=metrics.latency_sum,
                prompt_tokens_total=metrics.prompt_tokens_total,
                completion_tokens_total=metrics.completion_tokens_total,
            )
            requests += latency.count
            errors += failed.count
            latency_total += latency.sum
        per_second = self._per_second(now)
        ended = self._completed_streams + self._failed_streams
        return MetricsSnapshot(
            timestamp=self._wall_clock(),
            uptime_seconds=now - self.started_at,
            window_seconds=self.window_seconds,
            kernel=self.kernel,
            dropped_samples=self._dropped_samples(),
            endpoints=endpoints,
            streaming=StreamingSnapshot(
                active_streams=self._active_streams,
                completed_streams=self._completed_streams,
                failed_streams=self._failed_streams,
                completion_rate=self._completed_streams / ended if ended else math.nan,
                ttft=self._stats(self._ttft, now),
                tokens_per_second=self._stats(self._tokens_per_second, now),
                ttft_sum=self._ttft_sum,
                ttft_count=self._ttft_count,
            ),
            totals=Totals(
                requests_per_second=requests * per_second,
                errors_per_second=errors * per_second,
                error_ratio=errors / requests if requests else 0.0,
                average_latency_seconds=latency_total / requests if requests else 0.0,
            ),
        )

    def _dropped_samples(self) -> int:
        windows = [self._ttft, self._tokens_per_second]
        for metrics in self._endpoints.values():
            windows += (metrics.latency, metrics.errors, metrics.prompt_tokens, metrics.completion_tokens)
        return sum(window.dropped for window in windows)
