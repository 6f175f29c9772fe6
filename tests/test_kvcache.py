"""The prefix-cache and router simulation (groundwork for the KV-cache issue), by hand."""

from __future__ import annotations

import pytest

from fakeai.simulation.kvcache import PrefixCache, Router, block_hashes

SYSTEM = "S" * (64 * 4)  # a 64-token system prompt: exactly 4 blocks of 16 tokens


def prompt(question: str) -> str:
    return SYSTEM + question


def test_blocks_are_full_and_chained_over_the_prefix() -> None:
    first = block_hashes(prompt("What is the capital of France, and why is it there? " * 2))
    second = block_hashes(prompt("How far away is the moon from the earth, on average? " * 2))
    assert len(first) == (256 + 104) // 64 == 5 and len(second) == 5
    assert first[:4] == second[:4], "the shared system prompt gives the same four blocks"
    assert first[4] != second[4]
    # the same text after a different prefix is a different block
    assert block_hashes("A" * 64 + "B" * 64)[1] != block_hashes("C" * 64 + "B" * 64)[1]
    assert block_hashes("x" * 63) == []


def test_shared_prefix_hits_exactly() -> None:
    cache = PrefixCache(capacity_blocks=100)
    cached, pinned = cache.acquire(block_hashes(prompt("q1" * 40)))
    assert cached == 0 and len(pinned) == 5
    cache.release(pinned)
    cached, pinned = cache.acquire(block_hashes(prompt("q2" * 40)))
    assert cached == 4, "the four system-prompt blocks are reused, the question's block is not"
    cache.release(pinned)
    assert len(cache) == 6 and cache.evictions == 0


def test_lru_eviction_never_takes_pinned_blocks_and_respects_capacity() -> None:
    cache = PrefixCache(capacity_blocks=3)
    a = block_hashes("a" * 128)  # 2 blocks
    b = block_hashes("b" * 64)  # 1 block
    _, pinned_a = cache.acquire(a)
    cache.release(pinned_a)
    _, pinned_b = cache.acquire(b)  # b stays pinned (running)
    c = block_hashes("c" * 128)  # needs 2 blocks: evicts a's two, oldest first, never b
    _, pinned_c = cache.acquire(c)
    assert len(cache) == 3 and cache.evictions == 2
    assert b[0] in cache and all(block in cache for block in c) and not any(block in cache for block in a)
    d = block_hashes("d" * 64)  # everything pinned: d is not cached, nothing is evicted
    cached, pinned_d = cache.acquire(d)
    assert (cached, pinned_d) == (0, []) and len(cache) == 3 and cache.evictions == 2
    for pinned in (pinned_b, pinned_c, pinned_d):
        cache.release(pinned)
    assert cache.active_requests == 0


def test_kv_aware_sends_a_repeated_prefix_back_to_its_worker() -> None:
    workers = [PrefixCache(100) for _ in range(4)]
    router = Router(workers, "kv-aware")
    first = block_hashes(prompt("first question " * 8))
    chosen = router.choose(first)
    _, pinned = workers[chosen].acquire(first)
    workers[chosen].release(pinned)
    again = block_hashes(prompt("another question " * 8))
    assert router.choose(again) == chosen
    assert router.best_overlap(again) == 4


def test_round_robin_spreads_evenly_and_least_loaded_picks_the_idlest() -> None:
    workers = [PrefixCache(10) for _ in range(4)]
    router = Router(workers, "round-robin")
    assert [router.choose([]) for _ in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]
    least = Router(workers, "least-loaded")
    workers[0].acquire([])
    workers[1].acquire([])
    assert least.choose([]) == 2


def test_random_is_seeded_and_unknown_policies_are_refused() -> None:
    workers = [PrefixCache(10) for _ in range(4)]
    picks = [Router(workers, "random", seed=3).choose([]) for _ in range(2)]
    assert picks[0] == picks[1]
    with pytest.raises(ValueError, match="unknown routing policy"):
        Router(workers, "fastest")
