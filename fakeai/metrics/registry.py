"""The metrics registry: where requests are recorded and snapshots are taken.

One registry per app, injected where it is needed; nothing here is global. The request path
calls ``request_started`` when a request is admitted, ``stream_started`` when a stream
opens, and ``record`` once when the request ends; a scrape calls ``snapshot`` once and hands
the result to an exporter. Every metric fakeai reports is defined here and in
``snapshot.py``.

The per-endpoint and per-model state are the kernel's compiled ``RequestSeries`` and
``ModelSeries``. For a plain (not streamed) request, recording straight into the handles
``endpoint_series`` and ``request_started`` return is exactly what ``record`` does for it,
in one compiled call: the recorder's fast path.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from fakeai.metrics.health import health_status
from fakeai.metrics.kvcache import KVCacheStats
from fakeai.metrics.instruments import (
    DURATION_BUCKETS,
    INTER_TOKEN_BUCKETS,
    TOKEN_COUNT_BUCKETS,
    Histogram,
    histogram_snapshot,
)
from fakeai.metrics.snapshot import (
    EndpointSnapshot,
    MetricsSnapshot,
    ModelSnapshot,
    StreamingSnapshot,
    Totals,
    WindowStats,
)
from fakeai.window import DEFAULT_MAX_SAMPLES, KERNEL, ModelSeries, RequestSeries, SlidingWindow, union

__all__ = ("QUANTILES", "MetricsRegistry")

_NAN = math.nan

QUANTILES = (0.5, 0.9, 0.99)
"""The quantiles every snapshot reports (p50, p90, p99)."""

Clock = Callable[[], float]


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
        self._endpoints: dict[str, RequestSeries] = {}
        self._models: dict[str, ModelSeries] = {}
        self._ttft = self._new_window()
        self._tokens_per_second = self._new_window()
        self._itl = self._new_window()
        self._ttft_histogram = Histogram(DURATION_BUCKETS)
        self._itl_histogram = Histogram(INTER_TOKEN_BUCKETS)
        self._active_streams = 0
        self._completed_streams = 0
        self._failed_streams = 0
        self._tokens_per_second_sum = 0.0
        self._tokens_per_second_count = 0
        self.kv_cache = KVCacheStats(self.window_seconds, self.max_samples)
        """Prefix-cache reuse and routing; the app attaches the simulated workers to it."""

    def _new_window(self) -> SlidingWindow:
        return SlidingWindow(self.window_seconds, self.max_samples)

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def in_flight(self) -> int:
        """API requests admitted and not yet ended."""
        return sum(model.running for model in self._models.values())

    # -- the request path ------------------------------------------------------------------

    def request_started(self, model: str) -> ModelSeries:
        """An API request for ``model`` was admitted; ``record(model=...)`` ends it.

        Returns the model's series, for the recorder's fast path.
        """
        stats = self._models.get(model)
        if stats is None:
            stats = self._models[model] = ModelSeries(DURATION_BUCKETS, TOKEN_COUNT_BUCKETS, INTER_TOKEN_BUCKETS)
        stats.started()
        return stats

    def endpoint_series(self, endpoint: str) -> RequestSeries:
        """The series of ``endpoint`` (created on first use), for the recorder's fast path."""
        series = self._endpoints.get(endpoint)
        if series is None:
            series = self._endpoints[endpoint] = RequestSeries(
                self.window_seconds, self.max_samples, DURATION_BUCKETS, TOKEN_COUNT_BUCKETS
            )
        return series

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
        model: str | None = None,
        finish_reason: str | None = None,
        now: float | None = None,
    ) -> None:
        """Record one finished request.

        Args:
            endpoint: The route path (a bounded set, never the raw URL).
            duration: Seconds from arrival until the last byte was sent.
            status: HTTP status recorded; 400 and above count as errors.
            prompt_tokens: Prompt tokens of the request.
            completion_tokens: Completion tokens sent.
            ttft: Seconds from arrival until the first token was sent, if one was.
            stream_completed: ``None`` for a plain response; for a stream opened with
                ``stream_started``, whether it finished (True) or ended early (False).
            model: The model of a request admitted with ``request_started``.
            finish_reason: Why a successful generation ended (``stop``, ``length``), or
                ``abort`` when the client left.
            now: When it ended, on the registry's clock (``None``: read the clock now).
        """
        if now is None:
            now = self._clock()
        series = self._endpoints.get(endpoint)
        if series is None:
            series = self.endpoint_series(endpoint)
        itl = _NAN
        if ttft is not None:
            self._ttft.record(now, ttft)
            self._ttft_histogram.observe(ttft)
            if completion_tokens > 1:
                itl = (duration - ttft) / (completion_tokens - 1)
                self._itl.record(now, itl)
                self._itl_histogram.observe(itl)
        if stream_completed is not None:
            self._active_streams -= 1
            if stream_completed:
                self._completed_streams += 1
            else:
                self._failed_streams += 1
            if duration > 0.0 and completion_tokens:
                tokens_per_second = completion_tokens / duration
                self._tokens_per_second.record(now, tokens_per_second)
                self._tokens_per_second_sum += tokens_per_second
                self._tokens_per_second_count += 1
        if model is None:
            series.record(now, duration, status, prompt_tokens, completion_tokens)
        else:
            series.record(
                now, duration, status, prompt_tokens, completion_tokens, self._models[model],
                _NAN if ttft is None else ttft, itl, finish_reason,
            )

    def kv_routed(self, worker: int, prompt_tokens: int, cached_tokens: int, oracle_tokens: int) -> None:
        """A request was routed to ``worker``: see ``KVCacheStats.routed``."""
        self.kv_cache.routed(self._clock(), worker, prompt_tokens, cached_tokens, oracle_tokens)

    # -- the scrape path -------------------------------------------------------------------

    def _per_second(self, now: float) -> float:
        """1 / the rate divisor: the window length, or the uptime while shorter (the kernel's rule)."""
        divisor = min(self.window_seconds, now - self.started_at)
        return 1.0 / divisor if divisor > 0.0 else 0.0

    def _stats(self, window: SlidingWindow, now: float, per_second: float) -> WindowStats:
        count, total, low, high, (p50, p90, p99) = window.summary(now, QUANTILES)
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
        per_second = self._per_second(now)
        endpoints = {}
        requests = errors = 0
        latency_total = 0.0
        for path, metrics in sorted(self._endpoints.items()):
            latency = self._stats(metrics.latency, now, per_second)
            failed = self._stats(metrics.errors, now, per_second)
            endpoints[path] = EndpointSnapshot(
                latency=latency,
                errors=failed,
                prompt_tokens=self._stats(metrics.prompt_tokens, now, per_second),
                completion_tokens=self._stats(metrics.completion_tokens, now, per_second),
                requests_total=metrics.requests_total,
                errors_total=dict(sorted(metrics.errors_total.items())),
                prompt_tokens_total=metrics.prompt_tokens_total,
                completion_tokens_total=metrics.completion_tokens_total,
                duration_histogram=histogram_snapshot(metrics.duration_histogram),
                prompt_tokens_histogram=histogram_snapshot(metrics.prompt_tokens_histogram),
                completion_tokens_histogram=histogram_snapshot(metrics.completion_tokens_histogram),
            )
            requests += latency.count
            errors += failed.count
            latency_total += latency.sum
        all_latency = (
            self._stats(union([series.latency for series in self._endpoints.values()], now), now, per_second)
            if self._endpoints
            else self._stats(self._new_window(), now, per_second)
        )
        ended = self._completed_streams + self._failed_streams
        error_rate_percentage = 100.0 * errors / requests if requests else 0.0
        return MetricsSnapshot(
            timestamp=self._wall_clock(),
            uptime_seconds=now - self.started_at,
            window_seconds=self.window_seconds,
            kernel=self.kernel,
            dropped_samples=self._dropped_samples(),
            in_flight=self.in_flight,
            endpoints=endpoints,
            models={name: self._model_snapshot(stats) for name, stats in sorted(self._models.items())},
            streaming=StreamingSnapshot(
                active_streams=self._active_streams,
                completed_streams=self._completed_streams,
                failed_streams=self._failed_streams,
                completion_rate=self._completed_streams / ended if ended else math.nan,
                ttft=self._stats(self._ttft, now, per_second),
                tokens_per_second=self._stats(self._tokens_per_second, now, per_second),
                itl=self._stats(self._itl, now, per_second),
                tokens_per_second_sum=self._tokens_per_second_sum,
                tokens_per_second_count=self._tokens_per_second_count,
                ttft_histogram=histogram_snapshot(self._ttft_histogram),
                itl_histogram=histogram_snapshot(self._itl_histogram),
            ),
            totals=Totals(
                requests_per_second=requests * per_second,
                errors_per_second=errors * per_second,
                error_rate_percentage=error_rate_percentage,
                average_latency_seconds=latency_total / requests if requests else 0.0,
                latency=all_latency,
                health=health_status(error_rate_percentage),
            ),
            kv_cache=self.kv_cache.snapshot(now, lambda window: self._stats(window, now, per_second)),
        )

    @staticmethod
    def _model_snapshot(stats: ModelSeries) -> ModelSnapshot:
        return ModelSnapshot(
            running=stats.running,
            prompt_tokens_total=stats.prompt_tokens_total,
            generation_tokens_total=stats.generation_tokens_total,
            success_total=dict(sorted(stats.success_total.items())),
            ttft_histogram=histogram_snapshot(stats.ttft),
            itl_histogram=histogram_snapshot(stats.itl),
            e2e_histogram=histogram_snapshot(stats.e2e),
            prompt_tokens_histogram=histogram_snapshot(stats.prompt_tokens),
            generation_tokens_histogram=histogram_snapshot(stats.generation_tokens),
        )

    def _dropped_samples(self) -> int:
        windows = [self._ttft, self._tokens_per_second, self._itl, *self.kv_cache.windows()]
        for metrics in self._endpoints.values():
            windows += (metrics.latency, metrics.errors, metrics.prompt_tokens, metrics.completion_tokens)
        return sum(window.dropped for window in windows)
