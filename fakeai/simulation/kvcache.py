"""Simulated inference workers, each with a block-level prefix cache, and the router between them.

* A prompt is cut into blocks of ``block_tokens`` tokens (fakeai's tokens are 4 characters,
  see ``tokens.py``; a token-id prompt's tokens are its ids); only full blocks are cached, as
  in vLLM. Each block is identified by a hash chained over every earlier block (the
  kernel's ``block_hashes``), so a block matches only together with its whole prefix.
* Each worker's ``PrefixCache`` (the kernel's; its twin in ``fakeai._prefix_py`` says the
  rules) holds at most ``capacity_blocks`` blocks. Blocks a running request uses are pinned;
  when room is needed the least recently released unpinned block is evicted, a prompt's tail
  before its head (vLLM does the same: the head is what other prompts share). A block that
  finds no room (everything pinned) is simply not cached.
* ``KVCacheSimulator.route`` picks a worker per request by the policy: ``kv-aware`` (highest
  ``overlap_weight`` x cached fraction of the prompt - ``load_weight`` x the worker's share of
  the running requests; ties go to the worker holding fewer blocks, then the lower index),
  ``round-robin``, ``random`` (seeded) or ``least-loaded``. ``release`` ends the request.
* Every routing also reports what an oracle would have reused: the most cached tokens any
  worker held for the prompt. ``cached / oracle`` is the router's efficiency.

Costs are O(blocks in the prompt) per worker for the lookup and O(blocks) for the chosen
worker's update; memory is capped at ``workers x capacity_blocks`` blocks.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Sequence

from fakeai.prefix import PrefixCache, block_hashes, least_busy
from fakeai.simulation.scheduler import EngineScheduler
from fakeai.simulation.tokens import CHARS_PER_TOKEN

__all__ = ("POLICIES", "KVCacheSimulator", "PrefixCache", "Prompt", "Routing", "prompt_blocks")

POLICIES = ("kv-aware", "round-robin", "random", "least-loaded")

Prompt = str | Sequence[int]


def prompt_blocks(prompt: Prompt, block_tokens: int = 16) -> list[int]:
    """Chained hashes of the prompt's full blocks (a trailing partial block is not cached)."""
    if isinstance(prompt, str):
        if prompt.isascii():  # one byte per character, CHARS_PER_TOKEN per token
            return block_hashes(prompt.encode(), block_tokens * CHARS_PER_TOKEN)
        return block_hashes(prompt.encode("utf-32-le"), block_tokens * CHARS_PER_TOKEN * 4)
    try:
        ids = array("q", prompt)
    except OverflowError:  # ids beyond 64 bits are never cached
        return []
    return block_hashes(ids.tobytes(), block_tokens * ids.itemsize)


class Routing:
    """Where one request went and what it reused; hand it back to ``KVCacheSimulator.release``."""

    __slots__ = ("_pinned", "cache", "cached_tokens", "cached_total", "index", "oracle_tokens", "prompt_tokens",
                 "worker")

    def __init__(
        self, worker: int, prompt_tokens: int, cached_tokens: list[int], oracle_tokens: int, pinned: list[list[int]],
        cache: PrefixCache, index: int = 0,
    ) -> None:
        self.worker = worker
        self.index = index
        """The worker's position in its simulator (``KVCacheSimulator.state(index)``)."""
        self.cache = cache
        """The worker's prefix cache (``cache.state()``: the plain numbers the metrics publish)."""
        self.prompt_tokens = prompt_tokens
        """Prompt tokens looked up (every prompt of the request)."""
        self.cached_tokens = cached_tokens
        """Cached tokens, per prompt: prefill skips them."""
        self.cached_total = sum(cached_tokens)
        self.oracle_tokens = oracle_tokens
        """The most tokens any worker had cached for these prompts."""
        self._pinned = pinned


class KVCacheSimulator:
    """The simulated workers and the router in front of them."""

    def __init__(
        self,
        *,
        workers: int = 4,
        ids: Sequence[int] | None = None,
        capacity_blocks: int = 16_384,
        block_tokens: int = 16,
        policy: str = "kv-aware",
        overlap_weight: float = 1.0,
        load_weight: float = 0.5,
        seed: int = 0,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown routing policy {policy!r}; known: {', '.join(POLICIES)}")
        if workers < 1:
            raise ValueError("the router needs at least one worker")
        if block_tokens < 1:
            raise ValueError("block_tokens must be at least 1")
        self.workers = [PrefixCache(capacity_blocks) for _ in range(workers)]
        self.ids = list(range(workers)) if ids is None else list(ids)
        """The workers' ids as reported (a server process simulates its share of all workers)."""
        if len(self.ids) != workers:
            raise ValueError("one id per worker")
        self._index = {worker_id: index for index, worker_id in enumerate(self.ids)}
        self.block_tokens = block_tokens
        self.policy = policy
        self.overlap_weight = overlap_weight
        self.load_weight = load_weight
        self._next = 0
        self._rng = random.Random(seed)
        self._no_overlap = [0] * workers
        self.schedulers: Sequence[EngineScheduler] | None = None
        """Each worker's engine scheduler (``fakeai.simulation.scheduler``), when the caller runs
        the engine model."""
        self.scheduled_usage = False
        """Whether ``state`` reports the schedulers' block accounting (the engine model is on)."""

    def route(self, prompts: Sequence[Prompt], prompt_tokens: Sequence[int]) -> Routing:
        """Send a request with these prompts (and their token counts) to a worker."""
        block_tokens = self.block_tokens
        workers = self.workers
        if len(prompts) == 1 and isinstance(prompts[0], str) and len(prompts[0]) < block_tokens * CHARS_PER_TOKEN:
            # shorter than one block: nothing to look up or cache, only a worker to pick
            index = self._choose(self._no_overlap, 0)
            chosen = workers[index]
            chosen.active_requests += 1
            return Routing(self.ids[index], prompt_tokens[0], [0], 0, [], chosen, index)
        hashes = []  # (a loop: a comprehension would make block_tokens a closure cell, for every request)
        for prompt in prompts:
            hashes.append(prompt_blocks(prompt, block_tokens))
        blocks = 0
        for prompt_hashes in hashes:
            blocks += len(prompt_hashes)
        if blocks:
            overlaps = [0] * len(workers)
            for index, worker in enumerate(workers):
                for prompt_hashes in hashes:
                    overlaps[index] += worker.cached_prefix(prompt_hashes)
        else:  # nothing to look up (a prompt shorter than a block)
            overlaps = self._no_overlap
        index = self._choose(overlaps, blocks)
        chosen = workers[index]
        cached_tokens = []
        pinned = []
        for prompt_hashes, tokens in zip(hashes, prompt_tokens):
            cached, held = chosen.acquire(prompt_hashes)
            cached_tokens.append(min(cached * block_tokens, tokens))
            pinned.append(held)
        chosen.active_requests -= len(hashes) - 1  # one request, however many prompts it has
        total = sum(prompt_tokens)
        oracle = min(max(overlaps) * block_tokens, total) if blocks else 0
        return Routing(self.ids[index], total, cached_tokens, oracle, pinned, chosen, index)

    def release(self, routing: Routing) -> tuple[int, int, int, int]:
        """The request routed as ``routing`` ended (by any path); the worker's state after it
        (``state``)."""
        worker = routing.cache
        for pinned in routing._pinned:
            worker.release(pinned)
        worker.active_requests += len(routing._pinned) - 1  # one request, however many prompts
        return self.state(routing.index)

    def state(self, index: int) -> tuple[int, int, int, int]:
        """Worker ``index``'s ``(blocks held, capacity in blocks, running requests, evictions)``:
        ``PrefixCache.state()``, but with the engine model on (``scheduled_usage``) the
        blocks held are its scheduler's, the blocks the requests it runs hold, as vLLM's KV
        usage counts them (cached blocks no request uses are free)."""
        state = self.workers[index].state()
        if self.scheduled_usage:
            scheduler = self.schedulers[index]  # type: ignore[index]
            return scheduler.used_blocks, scheduler.limits.capacity_blocks, state[2], state[3]
        return state

    def worker_state(self) -> list[tuple[int, int, int, int]]:
        """Per worker: ``state(index)``."""
        return [self.state(index) for index in range(len(self.workers))]

    def reset(self) -> int:
        """Drop every cached block no running request uses, in every worker (vLLM's
        ``reset_prefix_cache``); the blocks dropped."""
        return sum(worker.reset() for worker in self.workers)

    def _choose(self, overlaps: list[int], blocks: int) -> int:
        workers = self.workers
        if self.policy == "round-robin":
            index = self._next
            self._next = (index + 1) % len(workers)
            return index
        if self.policy == "random":
            return self._rng.randrange(len(workers))
        if self.policy == "least-loaded":
            loads = [worker.active_requests for worker in workers]
            return loads.index(min(loads))  # the fewest running requests, then the lowest index
        # kv-aware: the highest overlap_weight x cached fraction - load_weight x share of the
        # running requests; ties to the worker holding fewer blocks, then the lower index
        if not blocks:  # no overlap anywhere: the least loaded (when load counts), then the emptiest
            return least_busy(workers, self.load_weight > 0)
        total_active = 0
        for worker in workers:
            total_active += worker.active_requests
        total_active = total_active or 1
        blocks = blocks or 1
        overlap_weight, load_weight = self.overlap_weight, self.load_weight
        best = 0
        best_rank: tuple[float, int] | None = None
        for index, worker in enumerate(workers):
            rank = (overlap_weight * overlaps[index] / blocks - load_weight * worker.active_requests / total_active,
                    -len(worker))
            if best_rank is None or rank > best_rank:
                best, best_rank = index, rank
        return best
