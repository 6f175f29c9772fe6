"""Bounded work per request: each limit at its value and one beyond, long answers made and sent
in parts, and the small inconsistencies of issue #12 (a client leaving mid-body, usage,
empty stop sequences)."""

from __future__ import annotations

import asyncio
import json

import httpx
import msgspec
import pytest
from litestar.testing import TestClient

from fakeai.api.generation import WHOLE_ANSWER_TOKENS
from fakeai.api.responses import PART_BYTES
from fakeai.api.schemas import ChatCompletion, Completion
from fakeai.api.streaming import BATCH_BYTES
from fakeai.app import create_app
from fakeai.config import Settings
from fakeai.simulation.embeddings import embed
from fakeai.simulation.text import TextSource
from tests.servers import running_app

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
MODEL = "openai/gpt-oss-120b"
EMBEDDING_MODEL = "text-embedding-3-small"
USER = [{"role": "user", "content": "hi"}]

SMALL_LIMITS = Settings(
    zero_latency=True,
    answer_tokens_max=20,
    embedding_dimensions=10,
    max_generated_tokens_per_request=100,
    max_choices_per_request=6,
    max_prompts_per_request=4,
    max_prompt_tokens_per_request=50,
    max_embedding_inputs_per_request=5,
    max_embedding_values_per_request=40,
)


def chat(**fields):
    return {"model": MODEL, "messages": USER, **fields}


def completion(**fields):
    return {"model": MODEL, **fields}


def embedding(**fields):
    return {"model": EMBEDDING_MODEL, **fields}


# (id, path, body at the limit, answers it gets, body one beyond, param, code)
LIMIT_CASES = [
    ("tokens-chat", CHAT, chat(n=2, max_tokens=50), 2, chat(n=2, max_tokens=51), "max_tokens", "too_many_tokens"),
    ("tokens-chat-max-completion-tokens", CHAT, chat(n=4, max_completion_tokens=25), 4,
     chat(n=4, max_completion_tokens=26), "max_completion_tokens", "too_many_tokens"),
    ("tokens-chat-default-length", CHAT, chat(n=5), 5, chat(n=6), "max_tokens", "too_many_tokens"),
    ("tokens-summed-over-prompts", COMPLETIONS, completion(prompt=["a", "b"], n=2, max_tokens=25), 4,
     completion(prompt=["a", "b"], n=2, max_tokens=26), "max_tokens", "too_many_tokens"),
    ("tokens-echo-counts", COMPLETIONS, completion(prompt="abcd" * 10, n=2, max_tokens=40, echo=True), 2,
     completion(prompt="abcd" * 10, n=2, max_tokens=41, echo=True), "max_tokens", "too_many_tokens"),
    ("choices", COMPLETIONS, completion(prompt="a", n=6, max_tokens=1), 6, completion(prompt="a", n=7, max_tokens=1),
     "n", "too_many_choices"),
    ("choices-n-times-prompts", COMPLETIONS, completion(prompt=["a", "b", "c"], n=2, max_tokens=1), 6,
     completion(prompt=["a", "b", "c", "d"], n=2, max_tokens=1), "n", "too_many_choices"),
    ("prompts", COMPLETIONS, completion(prompt=["a"] * 4, max_tokens=1), 4, completion(prompt=["a"] * 5, max_tokens=1),
     "prompt", "array_above_max_length"),
    ("prompt-tokens", COMPLETIONS, completion(prompt=["abcd" * 25] * 2, max_tokens=1), 2,
     completion(prompt=["abcd" * 25, "abcd" * 25 + "e"], max_tokens=1), "prompt", "too_many_prompt_tokens"),
    ("prompt-tokens-ids", COMPLETIONS, completion(prompt=[7] * 50, max_tokens=1), 1,
     completion(prompt=[7] * 51, max_tokens=1), "prompt", "too_many_prompt_tokens"),
    ("embedding-inputs", EMBEDDINGS, embedding(input=["x"] * 5, dimensions=8), 5, embedding(input=["x"] * 6, dimensions=1),
     "input", "array_above_max_length"),
    ("embedding-values", EMBEDDINGS, embedding(input=["x"] * 5, dimensions=8), 5,
     embedding(input=["x"] * 5, dimensions=9), "dimensions", "too_many_embedding_values"),
    ("embedding-values-default-dimensions", EMBEDDINGS, embedding(input=["x"] * 4), 4, embedding(input=["x"] * 5),
     "input", "too_many_embedding_values"),
    ("embedding-input-tokens", EMBEDDINGS, embedding(input=["abcd" * 25] * 2, dimensions=1), 2,
     embedding(input=["abcd" * 25] * 2 + ["e"], dimensions=1), "input", "too_many_prompt_tokens"),
]


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(SMALL_LIMITS)) as test_client:
        yield test_client


def _answers(path: str, answer: dict) -> int:
    return len(answer["data"] if path == EMBEDDINGS else answer["choices"])


def _errors(client, path: str, status: str) -> int:
    return client.get("/metrics").json()["errors_by_status"].get(path, {}).get(status, 0)


@pytest.mark.parametrize(
    ("path", "at_limit", "answers", "beyond", "param", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in LIMIT_CASES],
)
def test_a_limit_allows_its_value_and_refuses_one_more(client, path, at_limit, answers, beyond, param, code) -> None:
    allowed = client.post(path, json=at_limit)
    assert allowed.status_code == 200, allowed.text
    assert _answers(path, allowed.json()) == answers

    refused_before = _errors(client, path, "400")
    refused = client.post(path, json=beyond)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code)
    assert error["message"]
    assert _errors(client, path, "400") == refused_before + 1


def test_the_issues_requests_are_refused_by_the_default_limits() -> None:
    with TestClient(create_app(Settings(zero_latency=True))) as client:
        stream = client.post(CHAT, json=chat(n=128, max_tokens=131_000, ignore_eos=True, stream=True))
        embeddings = client.post(EMBEDDINGS, json=embedding(input=["x"] * 3000, dimensions=16384))
        prompts = client.post(COMPLETIONS, json=completion(prompt=["a"] * 10_000, n=128))
        largest = client.post(EMBEDDINGS, json=embedding(input=["x"] * 2048, dimensions=3072, encoding_format="base64"))
    assert (stream.status_code, stream.json()["error"]["code"]) == (400, "too_many_tokens")
    assert (embeddings.status_code, embeddings.json()["error"]["code"]) == (400, "array_above_max_length")
    assert (prompts.status_code, prompts.json()["error"]["code"]) == (400, "array_above_max_length")
    assert largest.status_code == 200 and len(largest.json()["data"]) == 2048  # OpenAI's largest request


# -- answers made and sent in parts -----------------------------------------------------------


def _asgi_scope(path: str, body: bytes) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _serve_once(app, path: str, body: bytes, *, body_parts: list[bytes] | None = None):
    """One request straight through the ASGI app: ``(status, body writes, loop turns meanwhile)``.

    ``body_parts`` are the request body messages to deliver (then a disconnect); by default the
    whole body. The loop turns are counted by a task that yields at every turn: it runs only
    when the request gives the loop away.
    """
    messages = [{"type": "http.request", "body": part, "more_body": True} for part in (body_parts or [])]
    if body_parts is None:
        messages = [{"type": "http.request", "body": body, "more_body": False}]
    done = asyncio.Event()
    status: list[int] = []
    writes: list[bytes] = []

    async def receive():
        if messages:
            return messages.pop(0)
        if body_parts is not None:
            return {"type": "http.disconnect"}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            writes.append(message.get("body", b""))

    turns = 0

    async def ticker():
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    counting = asyncio.ensure_future(ticker())
    try:
        await app(_asgi_scope(path, body), receive, send)
    finally:
        done.set()
        counting.cancel()
    return status, writes, turns


def test_a_long_zero_latency_stream_is_complete_and_written_in_batches_giving_the_loop_away() -> None:
    app = create_app(Settings(zero_latency=True))
    request = chat(n=8, max_tokens=20_000, ignore_eos=True, stream=True, stream_options={"include_usage": True})
    status, writes, turns = asyncio.run(_serve_once(app, CHAT, json.dumps(request).encode()))
    assert status == [200]
    stream = b"".join(writes).decode()
    events = [line[len("data: "):] for line in stream.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    tokens = [0] * 8
    finish = [None] * 8
    for chunk in chunks[:-1]:
        (choice,) = chunk["choices"]
        tokens[choice["index"]] += bool(choice["delta"].get("content"))  # one token per content chunk
        finish[choice["index"]] = choice.get("finish_reason") or finish[choice["index"]]
    assert tokens == [20_000] * 8
    assert finish == ["length"] * 8
    assert chunks[-1]["usage"]["completion_tokens"] == 160_000
    largest_event = max(len(event) for event in events) + len("data: \n\n")
    assert len(stream) > 20 * BATCH_BYTES
    assert max(len(write) for write in writes) <= BATCH_BYTES + 2 * largest_event
    assert turns >= len(writes) - 2  # the loop ran others between every two batches


def test_a_long_plain_answer_is_sent_in_parts_over_http() -> None:
    with running_app(Settings(zero_latency=True)) as (base_url, _):
        response = httpx.post(base_url + CHAT, json=chat(n=8, max_tokens=100_000, ignore_eos=True), timeout=60)
    assert response.status_code == 200
    assert response.headers.get("transfer-encoding") == "chunked"
    answer = response.json()
    source = TextSource()
    answers = {source.text(start, 100_000) for start in source._starts}  # every answer of 100,000 tokens
    assert all(choice["message"]["content"] in answers for choice in answer["choices"])
    assert [choice["index"] for choice in answer["choices"]] == list(range(8))
    assert answer["usage"]["completion_tokens"] == 800_000


def test_a_short_answer_still_goes_out_whole_with_its_length() -> None:
    with running_app(Settings(zero_latency=True)) as (base_url, _):
        response = httpx.post(base_url + CHAT, json=chat(max_tokens=10), timeout=10)
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)


@pytest.fixture(scope="module")
def default_client():
    with TestClient(create_app(Settings(zero_latency=True))) as test_client:
        yield test_client


@pytest.mark.parametrize(("path", "schema"), [(CHAT, ChatCompletion), (COMPLETIONS, Completion)],
                         ids=["chat", "completions"])
def test_an_answer_in_parts_is_byte_for_byte_the_answer_encoded_whole(default_client, path, schema) -> None:
    body = chat if path == CHAT else (lambda **fields: completion(prompt="hi", **fields))
    # (choices, tokens each): 1023, 1024 and 1025 tokens in all, in one choice and in several
    for n, tokens in [(1, 1023), (1, 1024), (1, 1025), (3, 341), (4, 256), (5, 205)]:
        response = default_client.post(path, json=body(n=n, max_tokens=tokens, ignore_eos=True))
        assert response.status_code == 200
        assert response.json()["usage"]["completion_tokens"] == n * tokens
        way = "encoded whole" if n * tokens <= WHOLE_ANSWER_TOKENS else "in parts"
        assert response.content == msgspec.json.encode(msgspec.json.decode(response.content, type=schema)), (
            f"{n} x {tokens} tokens ({way}): the same bytes as the answer encoded in one piece"
        )
    if path == COMPLETIONS:  # an echoed prompt: in parts however short the answer
        response = default_client.post(path, json=body(n=2, max_tokens=3, echo=True, ignore_eos=True))
        assert response.json()["choices"][1]["text"].startswith("hi")
        assert response.content == msgspec.json.encode(msgspec.json.decode(response.content, type=schema))


def test_many_embeddings_are_made_and_written_in_parts_giving_the_loop_away() -> None:
    app = create_app(Settings())
    inputs = [f"text {i}" for i in range(512)]
    request = embedding(input=inputs, dimensions=1536)
    status, writes, turns = asyncio.run(_serve_once(app, EMBEDDINGS, json.dumps(request).encode()))
    assert status == [200]
    answer = json.loads(b"".join(writes))
    assert [item["index"] for item in answer["data"]] == list(range(512))
    assert all(item["embedding"] == embed(text.encode(), 1536) for item, text in zip(answer["data"], inputs))
    assert answer["usage"] == {"prompt_tokens": sum(-(-len(text) // 4) for text in inputs),
                               "total_tokens": sum(-(-len(text) // 4) for text in inputs)}
    one_embedding = len(json.dumps(answer["data"][0], separators=(",", ":")))
    assert len(writes) > 10
    assert max(len(write) for write in writes) <= PART_BYTES + one_embedding + 1
    assert turns >= len(writes) - 2


# -- the small inconsistencies ---------------------------------------------------------------


def test_a_client_leaving_mid_body_is_recorded_as_499_and_sent_nothing() -> None:
    app = create_app(Settings(zero_latency=True))
    body = json.dumps(chat()).encode()
    status, writes, _ = asyncio.run(_serve_once(app, CHAT, body, body_parts=[body[:10]]))
    assert status == [] and writes == []
    by_status = app.state.metrics.snapshot().endpoints[CHAT].errors_total
    assert dict(by_status) == {499: 1}


def test_completion_tokens_are_sent_when_there_are_none(client) -> None:
    first = client.post(CHAT, json=chat(seed=7, max_tokens=5)).json()["choices"][0]["message"]["content"]
    for path, body in ((CHAT, chat(seed=7, max_tokens=5, stop=first[:3])),
                       (COMPLETIONS, completion(prompt="hi", seed=7, max_tokens=5, stop=[first[:3]]))):
        answer = client.post(path, json=body).json()
        text = answer["choices"][0]["message"]["content"] if path == CHAT else answer["choices"][0]["text"]
        assert text == ""
        assert answer["usage"]["completion_tokens"] == 0
        assert answer["usage"]["total_tokens"] == answer["usage"]["prompt_tokens"]


def test_embeddings_usage_has_openais_two_fields(client) -> None:
    usage = client.post(EMBEDDINGS, json=embedding(input="abcdefgh")).json()["usage"]
    assert usage == {"prompt_tokens": 2, "total_tokens": 2}


@pytest.mark.parametrize(("stop", "param"), [("", "stop"), ([""], "stop[0]"), (["x", ""], "stop[1]")])
def test_an_empty_stop_sequence_is_refused_alone_or_in_a_list(client, stop, param) -> None:
    response = client.post(CHAT, json=chat(stop=stop))
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, "invalid_value")
