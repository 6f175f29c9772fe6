"""Prefix-cache reuse and routing: recorded per routed request, read into a ``KVCacheSnapshot``.

The counts (requests, prompt and cached tokens, by worker) are recorded here, once per
routed request. What only the simulated workers know at scrape time (blocks held, running
requests, evictions) is read from the ``WorkerState`` callable the app attaches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from fakeai.metrics.snapshot import KVCacheSnapshot, KVReuse, KVWorkerSnapshot, WindowStats
from fakeai.window import SlidingWindow

__all__ = ("KVCacheStats", "WorkerState")

WorkerState = Callable[[], Sequence[tuple[int, int, int, int]]]
"""Per worker, now: ``(blocks_used, capacity_blocks, active_requests, evictions)``."""


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else math.nan


def _reuse(requests: int, hit_requests: int, prompt: int, cached: int, oracle: int) -> KVReuse:
    hit_rate = _ratio(cached, prompt)
    if oracle:
        efficiency = cached / oracle
    else:
        efficiency = 1.0 if requests else math.nan
    return KVReuse(
        requests=requests,
        hit_requests=hit_requests,
        prompt_tokens=prompt,
        cached_tokens=cached,
        oracle_cached_tokens=oracle,
        hit_rate=hit_rate,
        miss_rate=1.0 - hit_rate,
        request_hit_rate=_ratio(hit_requests, requests),
        average_token_reduction=_ratio(cached, requests),
        router_efficiency=efficiency,
    )


class KVCacheStats:
    """Counters by worker and sliding windows of reuse, for one registry."""

    def __init__(self, window_seconds: float, max_samples: int) -> None:
        self.policy = "none"
        self.model_name = ""
        self.block_tokens = 0
        self._workers: WorkerState = tuple
        self._routed: list[int] = []
        self._prompt: list[int] = []
        self._cached: list[int] = []
        self._hit_requests = 0
        self._oracle = 0
        # per routed request: prompt tokens; cached tokens; oracle tokens; and (hits only) cached tokens
        self._prompt_window = SlidingWindow(window_seconds, max_samples)
        self._cached_window = SlidingWindow(window_seconds, max_samples)
        self._oracle_window = SlidingWindow(window_seconds, max_samples)
        self._hit_window = SlidingWindow(window_seconds, max_samples)

    def attach(self, *, model_name: str, policy: str, block_tokens: int, workers: int, state: WorkerState) -> None:
        """Say what is simulated: the policy, the block size, and how to read the workers' state."""
        self.model_name = model_name
        self.policy = policy
        self.block_tokens = block_tokens
        self._workers = state
        self._routed = [0] * workers
        self._prompt = [0] * workers
        self._cached = [0] * workers

    def routed(self, now: float, worker: int, prompt_tokens: int, cached_tokens: int, oracle_tokens: int) -> None:
        """A request was routed to ``worker`` and found ``cached_tokens`` of its prompt cached."""
        if worker >= len(self._routed):  # workers not attached (a bare registry): count them anyway
            grow = [0] * (worker + 1 - len(self._routed))
            self._routed += grow
            self._prompt += grow
            self._cached += grow
        self._routed[worker] += 1
        self._prompt[worker] += prompt_tokens
        self._cached[worker] += cached_tokens
        self._oracle += oracle_tokens
        self._prompt_window.record(now, prompt_tokens)
        self._cached_window.record(now, cached_tokens)
        self._oracle_window.record(now, oracle_tokens)
        if cached_tokens:
            self._hit_requests += 1
            self._hit_window.record(now, cached_tokens)

    def windows(self) -> tuple[SlidingWindow, ...]:
        return (self._prompt_window, self._cached_window, self._oracle_window, self._hit_window)

    def snapshot(self, now: float, stats: Callable[[SlidingWindow], WindowStats]) -> KVCacheSnapshot:
        """The state at ``now``; ``stats`` reads a window (the registry's, so rates agree)."""
        workers = []
        for index, (used, capacity, active, evictions) in enumerate(self._workers()):
            workers.append(
                KVWorkerSnapshot(
                    blocks_used=used,
                    capacity_blocks=capacity,
                    usage=_ratio(used, capacity),
                    active_requests=active,
                    requests_routed=self._routed[index],
                    prompt_tokens=self._prompt[index],
                    cached_tokens=self._cached[index],
                    evictions=evictions,
                )
            )
        prompt = stats(self._prompt_window)
        cached = stats(self._cached_window)
        window = _reuse(
            prompt.count,
            self._hit_window.count(now),
            int(prompt.sum),
            int(cached.sum),
            int(self._oracle_window.sum(now)),
        )
        total = _reuse(sum(self._routed), self._hit_requests, sum(self._prompt), sum(self._cached), self._oracle)
        used = sum(worker.blocks_used for worker in workers)
        capacity = sum(worker.capacity_blocks for worker in workers)
        return KVCacheSnapshot(
            model_name=self.model_name,
            policy=self.policy,
            block_tokens=self.block_tokens,
            workers=workers,
            prompt_tokens=prompt,
            cached_tokens=cached,
            window=window,
            total=total,
            blocks_used=used,
            capacity_blocks=capacity,
            usage=_ratio(used, capacity) if capacity else 0.0,
            evictions=sum(worker.evictions for worker in workers),
        )
