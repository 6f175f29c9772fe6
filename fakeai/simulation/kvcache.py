"""Simulated inference workers, each with a block-level prefix cache, and the router between them.

* A prompt is cut into blocks of ``block_tokens`` tokens (fakeai's tokens are 4 characters,
  see ``tokens.py``; a token-id prompt's tokens are its ids); only full blocks are cached, as
  in vLLM. Each block is identified by a hash chained over every earlier block (the
  kernel's ``block_hashes``), so a block matches only together with its whole prefix.
* Each worker holds at most ``capacity_blocks`` blocks. Blocks a running request uses are
  pinned; when room is needed the least recently used unpinned block is evicted. A request
  touches its blocks last-to-first, so of one prompt the tail is evicted before the head
  (vLLM does the same: the head is what other prompts share). A block that finds no room
  (everything pinned) is simply not cached.
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
from collections import OrderedDict, _count_elements, deque  # type: ignore[attr-defined]
from collections.abc import Sequence
from itertools import filterfalse, islice, repeat, takewhile

from fakeai.simulation.tokens import CHARS_PER_TOKEN
from fakeai.window import block_hashes

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


def _consume(iterator: object) -> None:
    deque(iterator, maxlen=0)  # type: ignore[call-overload]


class PrefixCache:
    """One worker's cache of blocks, LRU, with pinning by running requests.

    The LRU order and the pin counts live apart: an ordered dict of blocks, and a block's pins
    as (times acquired - times released), two plain counting dicts that pinning and unpinning
    a prompt's blocks update in one C-level pass each (``collections._count_elements``, what
    ``Counter.update`` runs).
    """

    def __init__(self, capacity_blocks: int) -> None:
        if capacity_blocks < 1:
            raise ValueError("capacity_blocks must be at least 1")
        self.capacity = capacity_blocks
        self._lru: OrderedDict[int, None] = OrderedDict()  # cached blocks, least recent first
        self._acquired: dict[int, int] = {}  # block -> times a request pinned it
        self._released: dict[int, int] = {}  # block -> times a request unpinned it
        self.evictions = 0
        self.active_requests = 0

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, block: int) -> bool:
        return block in self._lru

    def pins(self, block: int) -> int:
        """Running requests using ``block``."""
        return self._acquired.get(block, 0) - self._released.get(block, 0)

    def pinned_blocks(self) -> int:
        """Blocks some running request is using (0 when no request runs)."""
        pins = self.pins
        return sum(1 for block in self._lru if pins(block))

    def cached_prefix(self, hashes: Sequence[int]) -> int:
        """How many leading blocks of ``hashes`` are cached (without touching the LRU order)."""
        return len(list(takewhile(self._lru.__contains__, hashes)))

    def acquire(self, hashes: Sequence[int]) -> tuple[int, list[int]]:
        """Start a request: ``(cached leading blocks, blocks pinned for it)``.

        Cached blocks are pinned and refreshed; missing ones are inserted and pinned while
        room can be made. Pass the pinned list to ``release`` when the request ends.
        """
        lru = self._lru
        cached = self.cached_prefix(hashes)
        tail = hashes[cached:]
        present = list(filter(lru.__contains__, tail))
        acquired = self._acquired
        _count_elements(acquired, hashes[:cached])  # pinned before making room: never evicted for it
        _count_elements(acquired, present)
        missing = len(tail) - len(present)
        if missing and self._make_room(missing) < missing:
            _count_elements(self._released, present)
            tail = self._insert_while_room(tail)
        elif missing:
            new = list(filterfalse(lru.__contains__, tail)) if present else tail
            lru.update(zip(new, repeat(None)))
            _count_elements(acquired, new)
        pinned = [*hashes[:cached], *tail]
        _consume(map(lru.move_to_end, reversed(pinned)))  # the head ends up most recently used
        self.active_requests += 1
        return cached, pinned

    def _insert_while_room(self, tail: Sequence[int]) -> list[int]:
        """The slow path when the cache is full of pinned blocks: insert block by block."""
        inserted = []
        for block in tail:
            if block not in self._lru:
                if not self._make_room(1):
                    break  # no room: this block and the ones after it stay uncached
                self._lru[block] = None
            _count_elements(self._acquired, (block,))
            inserted.append(block)
        return inserted

    def release(self, pinned: Sequence[int]) -> None:
        """End a request started with ``acquire``: unpin its blocks (they stay cached)."""
        _count_elements(self._released, pinned)
        self.active_requests -= 1

    def _make_room(self, blocks: int) -> int:
        """Evict least recently used unpinned blocks until ``blocks`` more fit (or none is left);
        returns how many fit."""
        lru = self._lru
        needed = len(lru) + blocks - self.capacity
        if needed > 0:
            pins = self.pins
            victims = list(islice((block for block in lru if not pins(block)), needed))
            for block in victims:
                del lru[block]
                self._acquired.pop(block, None)
                self._released.pop(block, None)
            self.evictions += len(victims)
        return min(blocks, self.capacity - len(lru))


class Routing:
    """Where one request went and what it reused; hand it back to ``KVCacheSimulator.release``."""

    __slots__ = ("_pinned", "cached_tokens", "oracle_tokens", "prompt_tokens", "worker")

    def __init__(
        self, worker: int, prompt_tokens: int, cached_tokens: list[int], oracle_tokens: int, pinned: list[list[int]]
    ) -> None:
        self.worker = worker
        self.prompt_tokens = prompt_tokens
        """Prompt tokens looked up (every prompt of the request)."""
        self.cached_tokens = cached_tokens
        """Cached tokens, per prompt: prefill skips them."""
        self.oracle_tokens = oracle_tokens
        """The most tokens any worker had cached for these prompts."""
        self._pinned = pinned


class KVCacheSimulator:
    """The simulated workers and the router in front of them."""

    def __init__(
        self,
        *,
        workers: int = 4,
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
        self.block_tokens = block_tokens
        self.policy = policy
        self.overlap_weight = overlap_weight
        self.load_weight = load_weight
        self._next = 0
        self._rng = random.Random(seed)

    def route(self, prompts: Sequence[Prompt], prompt_tokens: Sequence[int]) -> Routing:
        """Send a request with these prompts (and their token counts) to a worker."""
        block_tokens = self.block_tokens
        hashes = [prompt_blocks(prompt, block_tokens) for prompt in prompts]
        workers = self.workers
        overlaps = [sum(worker.cached_prefix(blocks) for blocks in hashes) for worker in workers]
        index = self._choose(overlaps, sum(len(blocks) for blocks in hashes))
        chosen = workers[index]
        cached_tokens = []
        pinned = []
        for blocks, tokens in zip(hashes, prompt_tokens):
            cached, held = chosen.acquire(blocks)
            chosen.active_requests -= 1  # one request, however many prompts it has
            cached_tokens.append(min(cached * block_tokens, tokens))
            pinned.append(held)
        chosen.active_requests += 1
        oracle = min(max(overlaps) * block_tokens, sum(prompt_tokens))
        return Routing(index, sum(prompt_tokens), cached_tokens, oracle, pinned)

    def release(self, routing: Routing) -> None:
        """The request routed as ``routing`` ended (by any path)."""
        worker = self.workers[routing.worker]
        for pinned in routing._pinned:
            worker.release(pinned)
        worker.active_requests += len(routing._pinned) - 1  # one request, however many prompts

    def worker_state(self) -> list[tuple[int, int, int, int]]:
        """Per worker: ``(blocks held, capacity in blocks, running requests, evictions)``."""
        return [(len(w), w.capacity, w.active_requests, w.evictions) for w in self.workers]

    def _choose(self, overlaps: list[int], blocks: int) -> int:
        workers = self.workers
        if self.policy == "round-robin":
            index = self._next
            self._next = (index + 1) % len(workers)
            return index
        if self.policy == "random":
            return self._rng.randrange(len(workers))
        if self.policy == "least-loaded":
            return min(range(len(workers)), key=lambda i: (workers[i].active_requests, i))
        total_active = sum(worker.active_requests for worker in workers) or 1
        blocks = blocks or 1

        def rank(i: int) -> tuple[float, int, int]:
            score = (
                self.overlap_weight * overlaps[i] / blocks
                - self.load_weight * workers[i].active_requests / total_active
            )
            return (score, -len(workers[i]), -i)

        return max(range(len(workers)), key=rank)
