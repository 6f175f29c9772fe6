"""Cost of counting a chat request's prompt (issue 14), ``--tokenizer approx`` vs a real encoding:
what the handler does before planning an answer, rendering the chat template, counting its
tokens and routing it to a simulated KV worker (whose blocks are hashed from the text under
approx, from the token ids under a real encoding), then releasing the worker.

Prompts of about 1k and 8k o200k_base tokens of English prose (a system prompt and a user
question that differs each time).
"""

from __future__ import annotations

import random

import msgspec
import pytest

from fakeai.api.schemas import ChatCompletionRequest
from fakeai.simulation.kvcache import KVCacheSimulator
from fakeai.simulation.text import PROSE
from fakeai.simulation.tokenizers import PromptTokenizer
from fakeai.simulation.tokens import render_chat

ROUNDS = 200
LIMIT = 300_000


def _requests(prompt_chars: int) -> list[ChatCompletionRequest]:
    rng = random.Random(prompt_chars)
    words = PROSE.split()
    system = "You are a careful assistant. " + " ".join(words) * 2
    requests = []
    for _ in range(ROUNDS):
        question = " ".join(rng.choice(words) for _ in range(prompt_chars // 6))[: prompt_chars - len(system) // 4]
        messages = [{"role": "system", "content": system[: prompt_chars // 2]}, {"role": "user", "content": question}]
        requests.append(msgspec.convert({"model": "m", "messages": messages}, ChatCompletionRequest))
    return requests


@pytest.mark.parametrize("prompt_chars", [5_000, 40_000], ids=["1k-tokens", "8k-tokens"])
@pytest.mark.parametrize("tokenizer", ["approx", "o200k_base"])
def test_count_and_route_a_chat_prompt(benchmark, report, tokenizer: str, prompt_chars: int) -> None:
    requests = _requests(prompt_chars)
    counter = PromptTokenizer(tokenizer)
    simulator = KVCacheSimulator()
    exact = PromptTokenizer("o200k_base")
    tokens = sum(exact.tokens(render_chat(request.messages), LIMIT)[0] for request in requests) / ROUNDS

    def rounds() -> None:
        for request in requests:
            count, prompt = counter.tokens(render_chat(request.messages), LIMIT)
            simulator.release(simulator.route([prompt], [count]))

    benchmark.pedantic(rounds, rounds=5, warmup_rounds=1)
    report(f"chat prompt of {tokens:.0f} tokens, count+route ({tokenizer})", benchmark, ROUNDS)
