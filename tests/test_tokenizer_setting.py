"""``--tokenizer``: prompts counted exactly with a real encoding (or approximately, the default),
the KV cache's cached tokens in the same tokens, the count bounded by the prompt-token limit,
and a clear refusal to start when the extra providing the encodings is missing."""

from __future__ import annotations

import os
import subprocess
import sys

import msgspec
import pytest
from litestar.testing import TestClient

from fakeai.api.schemas import ChatCompletionRequest
from fakeai.app import create_app
from fakeai.config import Settings
from fakeai.simulation.text import PROSE
from fakeai.simulation.tokenizers import PromptTokenizer
from fakeai.simulation.tokens import IMAGE_TOKENS, render_chat
from tests.real_tokenizers import CL100K, O200K

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
MODEL = "openai/gpt-oss-120b"
ENCODINGS = {"o200k_base": O200K, "cl100k_base": CL100K}
MESSAGES = [
    {"role": "system", "content": "You are a careful assistant. Answer in French, s'il vous plaît."},
    {"role": "user", "content": "Summarise this: " + PROSE[:900] + "\n\nThen list 3 facts, 1234567 & <|endoftext|>."},
    {"role": "assistant", "content": "Le gardien du phare… 🌊"},
    {"role": "user", "content": [{"type": "text", "text": "And this picture"},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
]


def _rendered(messages: list[dict]) -> str:
    request = msgspec.convert({"model": MODEL, "messages": messages}, ChatCompletionRequest)
    return render_chat(request.messages)


@pytest.mark.parametrize("name", ENCODINGS)
def test_prompt_tokens_are_the_encodings_count(name: str) -> None:
    encoding = ENCODINGS[name]
    with TestClient(create_app(Settings(zero_latency=True, tokenizer=name))) as client:
        chat = client.post(CHAT, json={"model": MODEL, "messages": MESSAGES, "max_tokens": 3}).json()
        assert chat["usage"]["prompt_tokens"] == len(encoding.encode_ordinary(_rendered(MESSAGES)))
        prompts = ["Once upon a time", PROSE[:2000], "naïve café – 東京 " * 30]
        completion = client.post(COMPLETIONS, json={"model": MODEL, "prompt": prompts, "max_tokens": 2}).json()
        assert completion["usage"]["prompt_tokens"] == sum(len(encoding.encode_ordinary(p)) for p in prompts)
        ids = client.post(COMPLETIONS, json={"model": MODEL, "prompt": [1, 2, 3, 4, 5], "max_tokens": 2}).json()
        assert ids["usage"]["prompt_tokens"] == 5
        embedded = client.post(EMBEDDINGS, json={"model": "text-embedding-3-small", "input": prompts}).json()
        assert embedded["usage"]["prompt_tokens"] == completion["usage"]["prompt_tokens"]
    picture = len(encoding.encode_ordinary(_rendered(MESSAGES))) - len(encoding.encode_ordinary(_rendered(
        MESSAGES[:3] + [{"role": "user", "content": "And this picture"}])))
    assert picture == IMAGE_TOKENS, "an image counts as OpenAI's low-detail cost"


def test_approx_counts_four_characters_a_token() -> None:
    with TestClient(create_app(Settings(zero_latency=True))) as client:
        chat = client.post(CHAT, json={"model": MODEL, "messages": MESSAGES, "max_tokens": 3}).json()
    assert chat["usage"]["prompt_tokens"] == -(-len(_rendered(MESSAGES)) // 4)


@pytest.mark.parametrize("name", ENCODINGS)
def test_cached_tokens_are_whole_blocks_of_real_tokens(name: str) -> None:
    """The KV cache hashes the real token ids: a repeated prompt finds all its full blocks."""
    settings = Settings(zero_latency=True, tokenizer=name, kv_workers=1, kv_block_tokens=16)
    messages = [{"role": "user", "content": PROSE}]
    tokens = len(ENCODINGS[name].encode_ordinary(_rendered(messages)))
    with TestClient(create_app(settings)) as client:
        first, again = (client.post(CHAT, json={"model": MODEL, "messages": messages, "max_tokens": 1}).json()
                        for _ in range(2))
        # a prompt sharing only its first 100 characters shares exactly the blocks of their common tokens
        other = [{"role": "user", "content": PROSE[:100] + " Something else entirely."}]
        shared = client.post(CHAT, json={"model": MODEL, "messages": other, "max_tokens": 1}).json()
    assert first["usage"]["prompt_tokens"] == again["usage"]["prompt_tokens"] == tokens
    assert first["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] == tokens // 16 * 16
    whole, partial = (ENCODINGS[name].encode_ordinary(_rendered(m)) for m in (messages, other))
    common = next(i for i, (a, b) in enumerate(zip(whole, partial)) if a != b)
    assert shared["usage"]["prompt_tokens_details"]["cached_tokens"] == common // 16 * 16


def test_a_prompt_beyond_the_limit_is_refused_without_counting_it_all() -> None:
    settings = Settings(zero_latency=True, tokenizer="o200k_base", max_prompt_tokens_per_request=1000)
    at_limit = " the" * 1000  # 1,000 tokens
    with TestClient(create_app(settings)) as client:
        ok = client.post(COMPLETIONS, json={"model": MODEL, "prompt": at_limit, "max_tokens": 1})
        over = client.post(COMPLETIONS, json={"model": MODEL, "prompt": [at_limit, " the"], "max_tokens": 1})
        huge = client.post(CHAT, json={"model": MODEL, "messages": [{"role": "user", "content": " the" * 2_000_000}]})
        embedded = client.post(EMBEDDINGS, json={"model": "text-embedding-3-small", "input": at_limit + " the"})
    assert ok.status_code == 200 and ok.json()["usage"]["prompt_tokens"] == 1000
    for response, param in ((over, "prompt"), (huge, "messages"), (embedded, "input")):
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("too_many_prompt_tokens", param)
        assert "more than 1000 prompt tokens" in error["message"]


def test_lone_surrogates_are_counted_as_replacement_characters() -> None:
    """(The JSON decoder refuses them in a body; a text from elsewhere is still counted.)"""
    tokens, ids = PromptTokenizer("cl100k_base").tokens("a \ud800 b", 100)
    assert ids == CL100K.encode_ordinary("a \ufffd b") and tokens == len(ids)


def test_serve_refuses_to_start_without_the_extra() -> None:
    """`fakeai serve --tokenizer o200k_base` where bpe-openai is not installed: one line naming the
    extra, exit status 2, no traceback (the package is hidden from the child's imports)."""
    hide = ("import sys; sys.modules['bpe_openai'] = None; from fakeai.cli import main; "
            "raise SystemExit(main(['serve', '--tokenizer', 'o200k_base', '--port', '0']))")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FAKEAI_")}
    result = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=60,
                            env=environment)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "fakeai[tokenizers]" in result.stderr and "o200k_base" in result.stderr
