"""Pure-Python block hashing and prefix cache: the reference implementation of ``fakeai._prefix``.

This module is the specification. The compiled kernel ``fakeai/_prefix.pyx`` must give
exactly the same results (the equivalence tests feed both the same operations). It is the
simulation's kernel (``fakeai.simulation.kvcache``) and knows nothing of the metrics: what
they show of a cache is the plain numbers ``PrefixCache.state()`` returns.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

__all__ = ("PrefixCache", "block_hashes", "least_busy")

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

    def state(self) -> tuple[int, int, int, int]:
        """``(blocks held, capacity in blocks, running requests, evictions so far)``."""
        return len(self._pins), self.capacity, self.active_requests, self.evictions

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

    def reset(self) -> int:
        """Drop every cached block no running request uses, as vLLM's ``reset_prefix_cache``
        does (not counted as evictions); the blocks dropped. Pinned blocks stay."""
        free = self._free
        for block in free:
            del self._pins[block]
        dropped = len(free)
        free.clear()
        return dropped

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


# -- choosing among workers ------------------------------------------------------------------


def least_busy(workers: Sequence[PrefixCache], by_load: bool) -> int:
    """The position in ``workers`` (at least one) of the least busy: the fewest running
    requests (when ``by_load``), of those the one holding the fewest blocks, of those the
    first. The router's choice for a request nothing is cached for (every request, when
    prompts are shorter than a block)."""
    if not workers:
        raise ValueError("least_busy needs at least one worker")
    best, best_worker = 0, workers[0]
    for index in range(1, len(workers)):
        worker = workers[index]
        if by_load and worker.active_requests != best_worker.active_requests:
            better = worker.active_requests < best_worker.active_requests
        else:
            better = len(worker) < len(best_worker)
        if better:
            best, best_worker = index, worker
    return best
