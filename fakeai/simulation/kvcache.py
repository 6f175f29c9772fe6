"""A block-level prefix cache per simulated worker, and the router that picks the worker.

Groundwork for the KV-cache issue: pure simulation, not yet wired into the API or metrics.

* A prompt is cut into blocks of ``block_tokens`` tokens (fakeai's tokens are 4 characters,
  see ``tokens.py``); only full blocks are cached, as in vLLM. Each block is identified by a
  hash chained over every earlier block (CRC-32 of the whole prefix, with the block's index
  in the high bits), so a block matches only together with its whole prefix.
* Each worker holds at most ``capacity_blocks`` blocks. Blocks a running request uses are
  pinned; when room is needed the least recently used unpinned block is evicted. A block
  that finds no room (everything pinned) is simply not cached.
* The router picks a worker per request: ``kv-aware`` (best ``overlap_weight`` x cached
  fraction - ``load_weight`` x active-request share, ties to the lower index),
  ``round-robin``, ``random`` (seeded) or ``least-loaded``.
"""

from __future__ import annotations

import random
import zlib
from collections import OrderedDict
from collections.abc import Sequence

from fakeai.simulation.tokens import CHARS_PER_TOKEN

__all__ = ("POLICIES", "PrefixCache", "Router", "block_hashes")

POLICIES = ("kv-aware", "round-robin", "random", "least-loaded")


def block_hashes(prompt: str, block_tokens: int = 16) -> list[int]:
    """Chained hashes of the prompt's full blocks (a trailing partial block is not cached)."""
    size = block_tokens * CHARS_PER_TOKEN
    # Tokens are characters, not bytes: slice ASCII prompts' bytes, others' text.
    ascii_bytes = prompt.encode() if prompt.isascii() else None
    hashes = []
    running = 0
    for index in range(len(prompt) // size):
        start, stop = index * size, (index + 1) * size
        chunk = ascii_bytes[start:stop] if ascii_bytes is not None else prompt[start:stop].encode()
        running = zlib.crc32(chunk, running)
        hashes.append((index << 32) | running)
    return hashes


class PrefixCache:
    """One worker's cache of blocks, LRU, with pinning by running requests."""

    def __init__(self, capacity_blocks: int) -> None:
        if capacity_blocks < 1:
            raise ValueError("capacity_blocks must be at least 1")
        self.capacity = capacity_blocks
        self._blocks: OrderedDict[int, int] = OrderedDict()  # hash -> pins, least recent first
        self.evictions = 0
        self.active_requests = 0
        self.requests_routed = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, block: int) -> bool:
        return block in self._blocks

    def cached_prefix(self, hashes: Sequence[int]) -> int:
        """How many leading blocks of ``hashes`` are cached (without touching the LRU order)."""
        count = 0
        for block in hashes:
            if block not in self._blocks:
                break
            count += 1
        return count

    def acquire(self, hashes: Sequence[int]) -> tuple[int, list[int]]:
        """Start a request: ``(cached leading blocks, blocks pinned for it)``.

        Cached blocks are refreshed and pinned; missing ones are inserted and pinned where
        room can be made. Pass the pinned list to ``release`` when the request ends.
        """
        cached = self.cached_prefix(hashes)
        pinned = []
        for position, block in enumerate(hashes):
            if position >= cached and block not in self._blocks and not self._make_room():
                break  # no room: this block and the ones after it stay uncached
            self._blocks[block] = self._blocks.get(block, 0) + 1
            self._blocks.move_to_end(block)
            pinned.append(block)
        self.active_requests += 1
        self.requests_routed += 1
        return cached, pinned

    def release(self, pinned: Sequence[int]) -> None:
        """End a request started with ``acquire``: unpin its blocks (they stay cached)."""
        for block in pinned:
            pins = self._blocks.get(block)
            if pins:
                self._blocks[block] = pins - 1
        self.active_requests -= 1

    def _make_room(self) -> bool:
        if len(self._blocks) < self.capacity:
            return True
        for block, pins in self._blocks.items():  # least recently used first
            if pins == 0:
                del self._blocks[block]
                self.evictions += 1
                return True
        return False


class Router:
    """Picks a worker for each request by the configured policy."""

    def __init__(
        self,
        workers: Sequence[PrefixCache],
        policy: str = "kv-aware",
        *,
        overlap_weight: float = 1.0,
        load_weight: float = 0.5,
        seed: int = 0,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown routing policy {policy!r}; known: {', '.join(POLICIES)}")
        if not workers:
            raise ValueError("the router needs at least one worker")
        self.workers = list(workers)
        self.policy = policy
        self.overlap_weight = overlap_weight
        self.load_weight = load_weight
        self._next = 0
        self._rng = random.Random(seed)

    def choose(self, hashes: Sequence[int]) -> int:
        """The index of the worker for a request with these block hashes."""
        workers = self.workers
        if self.policy == "round-robin":
            index = self._next
            self._next = (self._next + 1) % len(workers)
            return index
        if self.policy == "random":
            return self._rng.randrange(len(workers))
        if self.policy == "least-loaded":
            return min(range(len(workers)), key=lambda i: (workers[i].active_requests, i))
        total_active = sum(worker.active_requests for worker in workers) or 1
        blocks = len(hashes) or 1

        def score(i: int) -> float:
            overlap = workers[i].cached_prefix(hashes) / blocks
            return self.overlap_weight * overlap - self.load_weight * workers[i].active_requests / total_active

        return max(range(len(workers)), key=lambda i: (score(i), -i))

    def best_overlap(self, hashes: Sequence[int]) -> int:
        """The most leading blocks any worker holds (what an oracle router would reuse)."""
        return max(worker.cached_prefix(hashes) for worker in self.workers)
