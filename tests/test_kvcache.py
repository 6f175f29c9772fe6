"""The prefix caches and the router, by hand: hits, misses, evictions and routing decisions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakeai import _prefix_py
from fakeai.simulation.kvcache import KVCacheSimulator, prompt_blocks

SYSTEM = "S" * (64 * 4)  # a 64-token system prompt: exactly 4 blocks of 16 tokens


def prompt(question: str) -> str:
    return SYSTEM + question


def question(letter: str) -> str:
    return letter * 80  # 20 tokens: one more full block and 4 tokens that are never cached


def test_blocks_are_full_and_chained_over_the_prefix() -> None:
    first = prompt_blocks(prompt(question("a")))
    second = prompt_blocks(prompt(question("b")))
    assert len(first) == (256 + 80) // 64 == 5 and len(second) == 5
    assert first[:4] == second[:4], "the shared system prompt gives the same four blocks"
    assert first[4] != second[4]
    assert prompt_blocks("A" * 64 + "B" * 64)[1] != prompt_blocks("C" * 64 + "B" * 64)[1], (
        "the same text after a different prefix is a different block"
    )
    assert prompt_blocks("x" * 63) == []
    assert len(prompt_blocks(list(range(40)))) == 2, "token-id prompts: 16 ids a block"
    assert len(prompt_blocks("é" * 64)) == 1, "non-ASCII text: still 4 characters a token"




@pytest.mark.compiled_vs_twin
@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600), words=st.integers(min_value=1, max_value=40))
def test_compiled_block_hashes_equal_the_reference(data: bytes, words: int) -> None:
    from fakeai import _prefix

    assert _prefix.block_hashes(data, words * 4) == _prefix_py.block_hashes(data, words * 4)


def test_block_hashes_refuse_blocks_that_are_not_whole_words(prefix_kernel) -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        prefix_kernel.block_hashes(b"abcdefgh", 6)


def test_a_shared_system_prompt_hits_exactly(prefix_kernel) -> None:
    cache = prefix_kernel.PrefixCache(capacity_blocks=100)
    cached, pinned = cache.acquire(prompt_blocks(prompt(question("a"))))
    assert cached == 0 and len(pinned) == 5
    cache.release(pinned)
    cached, pinned = cache.acquire(prompt_blocks(prompt(question("b"))))
    assert cached == 4, "the four system-prompt blocks are reused, the question's block is not"
    cache.release(pinned)
    assert len(cache) == 6 and cache.evictions == 0 and cache.pinned_blocks() == 0


def test_eviction_is_least_recently_used_tail_first(prefix_kernel) -> None:
    cache = prefix_kernel.PrefixCache(capacity_blocks=6)
    a, b, c = (prompt_blocks(prompt(question(letter))) for letter in "abc")
    for blocks in (a, b):
        cache.release(cache.acquire(blocks)[1])
    assert len(cache) == 6 and cache.evictions == 0
    # c needs one block: the least recently used is a's question block (b's came later, and
    # the shared system prompt was refreshed by b)
    cached, pinned = cache.acquire(c)
    cache.release(pinned)
    assert cached == 4 and cache.evictions == 1
    assert a[4] not in cache and b[4] in cache and c[4] in cache and all(block in cache for block in a[:4])
    # a again: its system prompt is still there, its question block is fetched again, evicting b's
    cached, pinned = cache.acquire(a)
    cache.release(pinned)
    assert cached == 4 and cache.evictions == 2 and b[4] not in cache and len(cache) == 6


def test_eviction_never_takes_pinned_blocks_and_respects_capacity(prefix_kernel) -> None:
    cache = prefix_kernel.PrefixCache(capacity_blocks=3)
    a = prompt_blocks("a" * 128)  # 2 blocks
    b = prompt_blocks("b" * 64)  # 1 block
    cache.release(cache.acquire(a)[1])
    _, pinned_b = cache.acquire(b)  # b stays pinned (running)
    c = prompt_blocks("c" * 128)  # needs 2 blocks: evicts a's two, never b
    _, pinned_c = cache.acquire(c)
    assert len(cache) == 3 and cache.evictions == 2
    assert b[0] in cache and all(block in cache for block in c) and not any(block in cache for block in a)
    d = prompt_blocks("d" * 64)  # everything pinned: d is not cached, nothing is evicted
    cached, pinned_d = cache.acquire(d)
    assert (cached, pinned_d) == (0, []) and len(cache) == 3 and cache.evictions == 2
    assert cache.pinned_blocks() == 3
    for pinned in (pinned_b, pinned_c, pinned_d):
        cache.release(pinned)
    assert cache.active_requests == 0 and cache.pinned_blocks() == 0


def test_reset_drops_every_block_no_running_request_uses(prefix_kernel) -> None:
    cache = prefix_kernel.PrefixCache(capacity_blocks=16)
    a, b = prompt_blocks(prompt(question("a"))), prompt_blocks(prompt(question("b")))
    cache.release(cache.acquire(a)[1])
    _, pinned_b = cache.acquire(b)  # b still runs: its blocks (the system prompt among them) stay
    assert cache.reset() == 1  # a's question block
    assert len(cache) == 5 and cache.evictions == 0 and a[4] not in cache
    assert all(block in cache for block in b)
    cache.release(pinned_b)
    assert cache.reset() == 5 and len(cache) == 0
    cached, pinned = cache.acquire(b)  # everything is fetched again, and cached again
    assert cached == 0 and len(cache) == 5
    cache.release(pinned)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(1, 6), st.booleans()), max_size=40),
       st.integers(1, 12))
def test_capacity_is_never_exceeded_and_pins_balance(prefix_kernel, steps, capacity) -> None:
    """Random prompts from a few shared prefixes, some requests left running a while."""
    cache = prefix_kernel.PrefixCache(capacity_blocks=capacity)
    running = []
    for prefix, length, keep in steps:
        _, pinned = cache.acquire(prompt_blocks(chr(65 + prefix) * 64 * length))
        assert len(cache) <= capacity
        running.append(pinned)
        if not keep:
            cache.release(running.pop(0))
    for pinned in running:
        cache.release(pinned)
    assert cache.pinned_blocks() == 0 and cache.active_requests == 0


def _workers(kernel, shapes: list[tuple[int, int]]) -> list:
    """Prefix caches with ``(running requests, blocks held)`` each."""
    caches = []
    for running, blocks in shapes:
        cache = kernel.PrefixCache(capacity_blocks=16)
        if blocks:
            cache.release(cache.acquire(list(range(1, blocks + 1)))[1])
        cache.active_requests = running
        caches.append(cache)
    return caches


def test_the_least_busy_worker_runs_the_fewest_requests_then_holds_the_fewest_blocks(prefix_kernel) -> None:
    workers = _workers(prefix_kernel, [(2, 0), (1, 5), (1, 3), (1, 3), (3, 0)])
    assert prefix_kernel.least_busy(workers, True) == 2, "fewest running, then fewest blocks, then first"
    assert prefix_kernel.least_busy(workers, False) == 0, "load not counted: the fewest blocks, the first"
    assert prefix_kernel.least_busy(workers[1:2], True) == 0, "one worker: that one"


def test_least_busy_among_no_workers_is_an_error(prefix_kernel) -> None:
    for by_load in (True, False):
        with pytest.raises(ValueError, match="^least_busy needs at least one worker$"):
            prefix_kernel.least_busy([], by_load)


@pytest.mark.compiled_vs_twin
@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=8), st.booleans())
def test_compiled_least_busy_matches_the_reference(shapes, by_load) -> None:
    from fakeai import _prefix

    assert _prefix.least_busy(_workers(_prefix, shapes), by_load) == \
        _prefix_py.least_busy(_workers(_prefix_py, shapes), by_load)


def test_kv_aware_sends_a_repeated_prefix_back_to_the_worker_that_holds_it() -> None:
    sim = KVCacheSimulator(workers=4)
    tokens = [84]
    first = sim.route([prompt(question("a"))], tokens)
    sim.release(first)
    fresh = sim.route(["X" * 256], [64])  # no overlap anywhere: the emptiest worker
    sim.release(fresh)
    assert (first.worker, first.cached_tokens, first.oracle_tokens) == (0, [0], 0)
    assert fresh.worker == 1
    for letter in "bcd":
        again = sim.route([prompt(question(letter))], tokens)
        sim.release(again)
        assert (again.worker, again.cached_tokens, again.oracle_tokens) == (0, [64], 64)


def test_load_outweighs_a_small_overlap() -> None:
    sim = KVCacheSimulator(workers=2, load_weight=0.5)
    held = [sim.route([prompt(question(letter))], [84]) for letter in "ab"]  # both on worker 0, running
    assert [routing.worker for routing in held] == [0, 0]
    # 4 of 5 blocks cached on worker 0 (0.8) minus its full share of the load (0.5) = 0.3 > 0
    assert sim.route([prompt(question("c"))], [84]).worker == 0
    # a 1-in-20-blocks overlap (0.05 - 0.5 x 3/3) loses to the idle worker (0.0)
    long_prompt = SYSTEM[:64] + "z" * 64 * 19
    assert sim.route([long_prompt], [320]).worker == 1


def test_round_robin_spreads_evenly_and_its_efficiency_shows() -> None:
    sim = KVCacheSimulator(workers=4, policy="round-robin")
    routings = [sim.route([prompt(question(letter))], [84]) for letter in "abcdefgh"]
    assert [r.worker for r in routings] == [0, 1, 2, 3, 0, 1, 2, 3]
    # the 5th request goes back to worker 0 (holding the system prompt); the 2nd-4th found
    # nothing where they went although worker 0 had 64 tokens for them
    assert [r.cached_tokens[0] for r in routings] == [0, 0, 0, 0, 64, 64, 64, 64]
    assert [r.oracle_tokens for r in routings] == [0] + [64] * 7
    for routing in routings:
        sim.release(routing)
    assert [state[2] for state in sim.worker_state()] == [0, 0, 0, 0]


def test_least_loaded_and_random_policies() -> None:
    sim = KVCacheSimulator(workers=3, policy="least-loaded")
    running = [sim.route(["q" * 64], [16]) for _ in range(3)]
    assert [r.worker for r in running] == [0, 1, 2]
    sim.release(running[1])
    assert sim.route(["q" * 64], [16]).worker == 1
    sims = [KVCacheSimulator(policy="random", seed=3) for _ in range(2)]
    picks = [[sim.route(["x"], [1]).worker for _ in range(20)] for sim in sims]
    assert picks[0] == picks[1], "seeded"
    assert len(set(picks[0])) > 1, "and random"
    with pytest.raises(ValueError, match="unknown routing policy"):
        KVCacheSimulator(policy="fastest")


def test_several_prompts_are_one_request_on_one_worker() -> None:
    sim = KVCacheSimulator(workers=2)
    sim.release(sim.route([prompt(question("a"))], [84]))
    routing = sim.route([prompt(question("b")), prompt(question("a"))], [84, 84])
    assert routing.worker == 0 and routing.cached_tokens == [64, 80] and routing.prompt_tokens == 168
    assert sim.worker_state()[0][2] == 1, "one running request, however many prompts"
    sim.release(routing)
    assert sim.worker_state()[0][2] == 0 and sim.workers[0].pinned_blocks() == 0


@pytest.mark.compiled_vs_twin
@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 8), st.integers(0, 3)), max_size=60),
       st.integers(1, 16))
def test_compiled_prefix_cache_matches_the_reference(steps, capacity) -> None:
    """The same requests (prompts over a few shared prefixes, left running for a few steps)
    give the same hits, pins, evictions and contents."""
    from fakeai import _prefix

    caches = [_prefix.PrefixCache(capacity), _prefix_py.PrefixCache(capacity)]
    running: list[list] = [[], []]
    universe = set()
    for prefix, length, release_count in steps:
        blocks = prompt_blocks(chr(65 + prefix) * 64 * length)
        universe.update(blocks)
        results = [cache.acquire(blocks) for cache in caches]
        assert results[0] == results[1]
        for held, (_, pinned) in zip(running, results):
            held.append(pinned)
        for cache, held in zip(caches, running):
            for pinned in held[:release_count]:
                cache.release(pinned)
            del held[:release_count]
        compiled, reference = caches
        assert (len(compiled), compiled.evictions, compiled.pinned_blocks(), compiled.active_requests) == (
            len(reference), reference.evictions, reference.pinned_blocks(), reference.active_requests)
        assert compiled.state() == reference.state() == (
            len(reference), reference.capacity, reference.active_requests, reference.evictions)
        assert {b for b in universe if b in compiled} == {b for b in universe if b in reference}
        assert all(compiled.pins(b) == reference.pins(b) for b in universe)


@pytest.mark.compiled_vs_twin
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 6), st.booleans(), st.booleans()), max_size=40),
       st.integers(1, 12))
def test_compiled_reset_matches_the_reference(steps, capacity) -> None:
    """Resets between requests, some left running, drop the same blocks from both kernels and
    leave their eviction order the same."""
    from fakeai import _prefix

    caches = [_prefix.PrefixCache(capacity), _prefix_py.PrefixCache(capacity)]
    running: list[list] = [[], []]
    universe = set()
    for prefix, length, keep, reset in steps:
        blocks = prompt_blocks(chr(65 + prefix) * 64 * length)
        universe.update(blocks)
        results = [cache.acquire(blocks) for cache in caches]
        assert results[0] == results[1]
        for cache, held, (_, pinned) in zip(caches, running, results):
            held.append(pinned)
            if not keep:
                cache.release(held.pop(0))
        if reset:
            assert caches[0].reset() == caches[1].reset()
        compiled, reference = caches
        assert compiled.state() == reference.state()
        assert {b for b in universe if b in compiled} == {b for b in universe if b in reference}
