"""vLLM's ``/tokenize`` and ``/detokenize`` over HTTP, under every ``--tokenizer``: the count is
the ``usage.prompt_tokens`` the same prompt gets, and ids round trip."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fakeai.config import Settings
from fakeai.simulation.approx_ids import OPAQUE, approx_decode, approx_ids, approx_unknown
from fakeai.simulation.tokens import count_tokens
from tests.real_tokenizers import CL100K, O200K
from tests.servers import eventually, running_app

MODEL = "openai/gpt-oss-120b"
PROMPT = "The quick brown fox jumps over the lazy dog, twice: once, and again."
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the capital of France?"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "Look a city up.",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
REAL = {"o200k_base": O200K, "cl100k_base": CL100K}


@pytest.fixture(scope="module", params=["approx", "o200k_base", "cl100k_base"])
def server(request):
    with running_app(Settings(zero_latency=True, tokenizer=request.param)) as (base_url, app):
        with httpx.Client(base_url=base_url, timeout=10) as client:
            yield request.param, client, app


def test_a_prompts_count_is_its_completions_prompt_tokens(server) -> None:
    name, client, _ = server
    tokenized = client.post("/tokenize", json={"model": MODEL, "prompt": PROMPT}).json()
    usage = client.post("/v1/completions", json={"model": MODEL, "prompt": PROMPT, "max_tokens": 1}).json()["usage"]
    assert tokenized["count"] == usage["prompt_tokens"] == len(tokenized["tokens"])
    assert tokenized["max_model_len"] == 131_072 and tokenized["token_strs"] is None
    if name in REAL:
        assert tokenized["tokens"] == REAL[name].encode_ordinary(PROMPT), "the real encoding's ids"


def test_messages_count_is_their_chat_prompt_tokens(server) -> None:
    _, client, _ = server
    for extra in ({}, {"tools": TOOLS}):
        tokenized = client.post("/tokenize", json={"model": MODEL, "messages": MESSAGES, **extra}).json()
        chat = client.post("/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES, "max_tokens": 1,
                                                         "tool_choice": "none", **extra}).json()
        assert tokenized["count"] == chat["usage"]["prompt_tokens"] == len(tokenized["tokens"])
    without_tools = client.post("/tokenize", json={"messages": MESSAGES}).json()["count"]
    assert client.post("/tokenize", json={"messages": MESSAGES, "tools": TOOLS}).json()["count"] > without_tools


def test_token_strings_are_the_tokens_texts(server) -> None:
    _, client, _ = server
    tokenized = client.post("/tokenize", json={"prompt": PROMPT, "return_token_strs": True}).json()
    assert len(tokenized["token_strs"]) == tokenized["count"] and "".join(tokenized["token_strs"]) == PROMPT


def test_ids_round_trip_whole_and_sliced(server) -> None:
    _, client, _ = server
    ids = client.post("/tokenize", json={"prompt": PROMPT}).json()["tokens"]
    assert client.post("/detokenize", json={"model": MODEL, "tokens": ids}).json() == {"prompt": PROMPT}
    head = client.post("/detokenize", json={"tokens": ids[:5]}).json()["prompt"]
    assert PROMPT.startswith(head) and client.post("/tokenize", json={"prompt": head}).json()["count"] == 5


def test_generation_prompt_and_continued_messages(server) -> None:
    _, client, _ = server
    full = client.post("/tokenize", json={"messages": MESSAGES, "return_token_strs": True}).json()
    bare = client.post("/tokenize", json={"messages": MESSAGES, "add_generation_prompt": False,
                                          "return_token_strs": True}).json()
    full_text, bare_text = "".join(full["token_strs"]), "".join(bare["token_strs"])
    assert full_text == bare_text + "<|assistant|>\n" and bare["count"] < full["count"]
    assert bare_text.endswith("France?\n")
    continued = client.post("/tokenize", json={"messages": MESSAGES, "add_generation_prompt": False,
                                               "continue_final_message": True, "return_token_strs": True}).json()
    assert "".join(continued["token_strs"]).endswith("France?")
    both = client.post("/tokenize", json={"messages": MESSAGES, "continue_final_message": True})
    assert both.status_code == 400 and both.json()["error"]["param"] == "continue_final_message"


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/tokenize", {"model": MODEL}, 400, "prompt"),
        ("/tokenize", {"prompt": "a", "messages": MESSAGES}, 400, "messages"),
        ("/tokenize", {"prompt": "a", "model": "no/such-model"}, 404, "model"),
        ("/tokenize", {"messages": MESSAGES, "chat_template": "{{ x }}"}, 400, "chat_template"),
        ("/tokenize", {"messages": []}, 400, "messages"),
        ("/tokenize", {"prompt": 7}, 400, "prompt"),
        ("/detokenize", {"tokens": [-1]}, 400, "tokens[0]"),
        ("/detokenize", {"tokens": [1, 2, 2**31]}, 400, "tokens[2]"),
        ("/detokenize", {}, 400, "tokens"),
    ],
)
def test_bad_requests_are_400_naming_the_field(server, path: str, body: dict, status: int, param: str) -> None:
    _, client, _ = server
    response = client.post(path, json=body)
    assert response.status_code == status and response.json()["error"]["param"] == param


def test_an_id_the_tokenizer_cannot_decode_is_a_400(server) -> None:
    name, client, _ = server
    if name == "approx":
        ids = client.post("/tokenize", json={"prompt": "abcd déjà"}).json()["tokens"]
        assert len(ids) == 3
        response = client.post("/detokenize", json={"tokens": ids})
        assert response.status_code == 400 and response.json()["error"]["param"] == "tokens[1]"
        assert client.post("/detokenize", json={"tokens": ids[:1]}).json() == {"prompt": "abcd"}
    else:
        vocabulary = {"o200k_base": 199_998, "cl100k_base": 100_256}[name]
        response = client.post("/detokenize", json={"tokens": [1, vocabulary]})
        assert response.status_code == 400 and response.json()["error"]["param"] == "tokens[1]"
        assert client.post("/detokenize", json={"tokens": [vocabulary - 1]}).status_code == 200


@pytest.mark.parametrize("server", ["o200k_base", "cl100k_base"], indirect=True)  # approx ids are whole characters
def test_a_token_that_is_part_of_a_character_decodes_to_the_replacement_character(server) -> None:
    name, client, _ = server
    ids = REAL[name].encode_ordinary("🦊 fox")
    partial = [token for token in ids if "\ufffd" in REAL[name].decode([token])]
    assert partial, "the emoji takes more than one token"
    assert client.post("/detokenize", json={"tokens": ids}).json() == {"prompt": "🦊 fox"}
    alone = client.post("/detokenize", json={"tokens": partial[:1]}).json()["prompt"]
    assert alone == "\ufffd"
    strings = client.post("/tokenize", json={"prompt": "🦊 fox", "return_token_strs": True}).json()["token_strs"]
    assert "\ufffd" in strings and strings[-1] == " fox"


def test_limits_are_400s() -> None:
    with running_app(Settings(zero_latency=True, max_context_tokens=16, max_prompt_tokens_per_request=20)) as (
        base_url, _
    ):
        long = client_post(base_url, "/tokenize", {"prompt": "x" * 68})
        assert long.status_code == 400 and long.json()["error"]["code"] == "context_length_exceeded"
        assert client_post(base_url, "/tokenize", {"prompt": "x" * 84}).json()["error"]["code"] == \
            "too_many_prompt_tokens"
        ids = client_post(base_url, "/detokenize", {"tokens": [1] * 21})
        assert ids.status_code == 400 and ids.json()["error"]["param"] == "tokens"


def client_post(base_url: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(base_url + path, json=body, timeout=10)


def test_recorded_under_their_own_endpoints_without_prompt_tokens() -> None:
    with running_app(Settings(zero_latency=True)) as (base_url, app):
        assert client_post(base_url, "/tokenize", {"prompt": PROMPT}).status_code == 200
        assert client_post(base_url, "/tokenize", {}).status_code == 400
        assert client_post(base_url, "/detokenize", {"tokens": [1, 2]}).status_code == 200
        assert httpx.get(base_url + "/detokenize").status_code == 405
        registry = app.state.metrics
        eventually(lambda: registry.snapshot().endpoints.get("/detokenize") is not None
                   and registry.snapshot().endpoints["/detokenize"].requests_total == 2, "all four were recorded")
        snapshot = registry.snapshot()
        tokenize, detokenize = snapshot.endpoints["/tokenize"], snapshot.endpoints["/detokenize"]
        assert (tokenize.requests_total, tokenize.errors_total) == (2, {400: 1})
        assert (detokenize.requests_total, detokenize.errors_total) == (2, {405: 1})
        assert tokenize.prompt_tokens_total == detokenize.prompt_tokens_total == 0, "no model read them"
        assert MODEL not in snapshot.models, "no model request was started"


@given(text=st.text(max_size=60))
def test_approx_ids_are_one_per_counted_token(text: str) -> None:
    ids = approx_ids(text)
    assert len(ids) == count_tokens(text) and all(0 <= token < 2**31 for token in ids)
    unknown = approx_unknown(ids)
    if text.isascii():
        assert unknown is None and approx_decode(ids) == text
        for cut in range(len(ids) + 1):  # sliced anywhere, the ids decode to a text with the same ids
            assert approx_ids(approx_decode(ids[:cut])) == ids[:cut]
    else:  # the first piece with another character is the first that cannot be decoded
        first = next(i for i in range(0, len(text), 4) if not text[i : i + 4].isascii()) // 4
        assert unknown == first and ids[first] >= OPAQUE


@given(token=st.integers(min_value=0, max_value=OPAQUE - 1))
def test_an_id_no_text_has_is_unknown(token: int) -> None:
    decoded = approx_decode([token]) if approx_unknown([token]) is None else None
    assert decoded is None or approx_ids(decoded) == [token], "every id it decodes is the id of what it decodes to"


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_ids_cut_inside_characters_decode_between_the_cuts(name: str) -> None:
    from fakeai.simulation.tokenizers import PromptTokenizer

    tokenizer, real = PromptTokenizer(name), REAL[name]
    text = "日本語のテキスト 🦊 fox héllo " * 50
    ids = real.encode_ordinary(text)
    partial = [token for token in set(ids) if "\ufffd" in real.decode([token])]
    assert tokenizer.decode(ids) == text
    for cut in range(1, 6):  # a slice that starts or ends inside a character: tiktoken's text between the cuts
        for piece in (ids[cut:], ids[:-cut], ids[cut:-cut]):
            decoded, expected = tokenizer.decode(piece).strip("\ufffd"), real.decode(piece).strip("\ufffd")
            # a token holding a space and part of a character is U+FFFD whole: at most one character each end
            assert decoded in expected and len(decoded) >= len(expected) - 2
    # only tokens that are parts of characters, many of them: U+FFFD, or the characters tiktoken finds
    many = partial * 1000
    assert set(tokenizer.decode(many)) - {"\ufffd"} <= set(real.decode(many)) and "\ufffd" in tokenizer.decode(many)
