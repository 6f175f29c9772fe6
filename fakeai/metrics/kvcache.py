"""Prefix-cache reuse and routing, read into a ``KVCacheSnapshot``.

A routed request's figures (its simulated worker, prompt tokens looked up, tokens found
cached, tokens an oracle would have found) are recorded with the request when it ends (see
``MetricsRegistry.record``); the workers' state (blocks held, capacity, running requests,
evictions) is recorded by ``MetricsRegistry.kv_publish`` whenever it changes. This module turns
the summed cells and the windows into the snapshot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from fakeai.metrics.schema import CELLS, cell
from fakeai.metrics.snapshot import KVCacheSnapshot, KVReuse, KVWorkerSnapshot, WindowStats

__all__ = ("KVCacheStats",)

_WORKER = tuple(declared for declared in CELLS if declared.scope == "kv_worker")
"""A KV worker's cells: routed, prompt, cached, blocks, capacity, active, evictions."""


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
    """The configuration the snapshot names (policy, block size, model label)."""

    def __init__(self) -> None:
        self.policy = "none"
        self.model_name = ""
        self.block_tokens = 0

    def attach(self, *, model_name: str, policy: str, block_tokens: int) -> None:
        self.model_name = model_name
        self.policy = policy
        self.block_tokens = block_tokens

    def snapshot(
        self,
        values: Mapping[str, float],
        windows: tuple[WindowStats, WindowStats, WindowStats, WindowStats],
        engines: Mapping[int, tuple[int, int, int]] | None = None,
    ) -> KVCacheSnapshot:
        """From the summed cells, the windows of (prompt, cached, oracle, hit) tokens per request
        and each engine's (running, waiting, preemptions), every model together."""
        engines = engines or {}

        def count(name: str) -> int:
            return int(values.get(name, 0.0))

        routed, prompt_cell, cached_cell, blocks, capacity_cell, active, evictions = _WORKER
        prefixes = (routed.name(""), capacity_cell.name(""))
        ids = sorted({int(name.rsplit("|", 1)[1]) for name in values if name.startswith(prefixes)})
        workers = []
        for worker_id in ids:
            worker = str(worker_id)
            used, capacity = count(blocks.name(worker)), count(capacity_cell.name(worker))
            running, waiting, preemptions = engines.get(worker_id, (0, 0, 0))
            workers.append(
                KVWorkerSnapshot(
                    id=worker_id,
                    blocks_used=used,
                    capacity_blocks=capacity,
                    usage=_ratio(used, capacity) if capacity else 0.0,
                    active_requests=count(active.name(worker)),
                    requests_routed=count(routed.name(worker)),
                    prompt_tokens=count(prompt_cell.name(worker)),
                    cached_tokens=count(cached_cell.name(worker)),
                    evictions=count(evictions.name(worker)),
                    requests_running=running,
                    requests_waiting=waiting,
                    preemptions=preemptions,
                )
            )
        prompt, cached, oracle, hits = windows
        window = _reuse(prompt.count, hits.count, int(prompt.sum), int(cached.sum), int(oracle.sum))
        total = _reuse(
            sum(worker.requests_routed for worker in workers),
            count(cell("c|kv_hit_requests").name()),
            sum(worker.prompt_tokens for worker in workers),
            sum(worker.cached_tokens for worker in workers),
            count(cell("c|kv_oracle_cached_tokens").name()),
        )
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
            requests_running=sum(worker.requests_running for worker in workers),
            requests_waiting=sum(worker.requests_waiting for worker in workers),
            preemptions=sum(worker.preemptions for worker in workers),
        )
