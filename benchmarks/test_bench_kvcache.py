"""Cost of routing a request and updating its worker's prefix cache (target: <= 50 us for a
2k-token prompt), with the pieces it is made of.

Workloads (4 workers, kv-aware, 16-token blocks, default capacity), each prompt 2048 tokens:

* ``shared``: a 1400-token system prompt then a different question each time (what chat
  traffic looks like: most blocks hit, the question's blocks are inserted);
* ``repeat``: the same prompt again (every block hits);
* ``fresh``: never-seen prompts, with the caches full (every block is inserted and as many
  are evicted).

Each round routes and releases one request, as the server does for each.
"""

from __future__ import annotations

import random

import pytest

from fakeai.simulation.kvcache import KVCacheSimulator, prompt_blocks

PROMPT_CHARS = 2048 * 4
SYSTEM = ("You are a helpful assistant that answers in full sentences. " * 100)[: 1400 * 4]
ROUNDS = 2000


def _questions(count: int, length: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(length)) for _ in range(count)]


@pytest.fixture(scope="module")
def workloads() -> dict[str, list[str]]:
    shared = [SYSTEM + question for question in _questions(ROUNDS, PROMPT_CHARS - len(SYSTEM), 1)]
    return {
        "shared": shared,
        "repeat": [shared[0]] * ROUNDS,
        "fresh": _questions(ROUNDS, PROMPT_CHARS, 2),
    }


@pytest.mark.parametrize("workload", ["shared", "repeat", "fresh"])
def test_route_and_release_2k_token_prompt(benchmark, report, workloads, workload) -> None:
    prompts = workloads[workload]
    # "fresh" runs with caches already full, so every request also evicts
    simulator = KVCacheSimulator(capacity_blocks=512 if workload == "fresh" else 16_384)
    tokens = [2048]
    for prompt in prompts[:200]:
        simulator.release(simulator.route([prompt], tokens))

    def rounds() -> None:
        route, release = simulator.route, simulator.release
        for prompt in prompts:
            release(route([prompt], tokens))

    benchmark.pedantic(rounds, rounds=5, warmup_rounds=1)
    report(f"kv route+release 2k tokens ({workload})", benchmark, ROUNDS)
    assert all(state[2] == 0 for state in simulator.worker_state())


def test_block_hashing_of_a_2k_token_prompt(benchmark, report, workloads) -> None:
    prompt = workloads["shared"][0]
    benchmark.pedantic(lambda: [prompt_blocks(prompt) for _ in range(ROUNDS)], rounds=5, warmup_rounds=1)
    report("kv block hashing 2k tokens", benchmark, ROUNDS)
