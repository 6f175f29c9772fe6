"""Hypothesis-generated requests to every endpoint: never a 5xx, never a traceback, always
OpenAI's error shape, and every request counted under its endpoint with the status it got.

Bodies are built field by field from each endpoint's schema, every field either missing, a
plausible value, a boundary (0, -1, the limits and one past them), a value of the wrong type
or arbitrary JSON, with unknown fields beside them; raw bytes and wrong content types too.
The CI profile runs a few hundred examples per endpoint; the dedicated slow run is
``pytest tests/test_fuzz.py --hypothesis-profile=fuzz`` (10,000 examples per endpoint).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from fakeai.app import create_app
from fakeai.config import Settings

CHAT, COMPLETIONS, EMBEDDINGS = "/v1/chat/completions", "/v1/completions", "/v1/embeddings"
MODELS = ("openai/gpt-oss-120b", "meta-llama/Llama-3.1-8B-Instruct", "text-embedding-3-small")
ERROR_KEYS = {"message", "type", "param", "code"}

CI_EXAMPLES = 250


def fuzz_settings() -> settings:
    """250 examples a test, or the loaded profile's count if larger (``fuzz``: 10,000; see conftest)."""
    return settings(max_examples=max(CI_EXAMPLES, settings.default.max_examples), deadline=None,
                    suppress_health_check=list(HealthCheck))

# -- values -------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
any_json = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
texts = st.text(max_size=200) | st.sampled_from(["", " ", "\x00", "é" * 50, "<|endoftext|>", "x" * 5000])
counts = st.sampled_from([0, 1, 2, 4, 8, 16, 100, 128, 129, 4096, 16_384, 16_385, 131_072, 131_073, 10**9, 2**63, -1, -(2**63)])
floats = st.one_of(st.floats(min_value=0, max_value=1), st.floats(min_value=0, max_value=1),
                   st.sampled_from([0.0, 1.0, 2.0, 2.01, -0.1, 1e308]), st.floats(allow_nan=False))
token_ids = st.lists(st.integers(min_value=-2, max_value=300_000) | st.sampled_from([2**31, 2**63, 2**64]), max_size=50)


small = st.integers(min_value=1, max_value=64)
numbers = st.one_of(small, small, small, counts)


def body_of(required: dict[str, st.SearchStrategy], optional: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """A body with the required fields and any of the optional ones, all plausible (values
    of the right type, boundaries included); in one body of three, one field is then replaced
    by arbitrary JSON or dropped; unknown fields ride along."""
    plausible = st.fixed_dictionaries(required, optional=optional)
    extra = st.dictionaries(st.text(max_size=12), any_json, max_size=2)

    def mutated(body: dict) -> st.SearchStrategy[dict]:
        names = sorted({*body, *optional})
        return st.tuples(st.sampled_from(names), st.booleans(), any_json).map(
            lambda change: {k: v for k, v in body.items() if k != change[0]} | ({} if change[1] else
                                                                               {change[0]: change[2]})
        )

    bodies = st.one_of(plausible, plausible, plausible.flatmap(mutated))
    return st.tuples(extra, bodies).map(lambda pair: {**pair[0], **pair[1]})


content_parts = st.lists(
    st.fixed_dictionaries({"type": st.sampled_from(["text", "text", "image_url", "video"])},
                          optional={"text": texts, "image_url": st.fixed_dictionaries({"url": texts})}),
    max_size=3,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "developer", "user", "user", "assistant", "tool", "function", "robot"])},
        optional={"content": texts | content_parts, "name": texts, "tool_call_id": texts,
                  "tool_calls": st.lists(st.fixed_dictionaries(
                      {"id": texts, "type": st.sampled_from(["function", "custom"]),
                       "function": st.fixed_dictionaries({"name": texts, "arguments": texts})}), max_size=2)},
    ),
    min_size=1, max_size=4,
)
messages = st.one_of(messages, messages, messages, st.lists(any_json, max_size=2))
generation = {
    "max_tokens": numbers,
    "n": numbers,
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans(),
                                                         "continuous_usage_stats": st.booleans()}),
    "stop": texts | st.lists(texts, max_size=6),
    "seed": counts,
    "temperature": floats,
    "top_p": floats,
    "ignore_eos": st.booleans(),
    "min_tokens": numbers,
}
schemas = st.one_of(
    any_json,
    st.sampled_from([{"type": "object", "properties": {"a": {"type": "integer", "minimum": 3}}, "required": ["a"]},
                     {"type": "array", "items": {"$ref": "#"}, "minItems": 1}, {"type": "string", "pattern": "x"},
                     {"type": "number", "multipleOf": 1e-320}, {"format": ["date"]}, {"type": [[]]}]),
    st.dictionaries(st.sampled_from(["type", "properties", "items", "required", "enum", "minimum", "maxLength",
                                     "minItems", "anyOf", "oneOf", "$ref", "additionalProperties", "const"]),
                    any_json, max_size=4),
)
tools = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["function", "function", "custom"]),
         "function": st.fixed_dictionaries({"name": st.sampled_from(["f", "g", "bad name", ""])},
                                           optional={"parameters": schemas, "strict": st.booleans()})},
    ),
    max_size=3,
)
chat_features = {
    "reasoning_effort": st.sampled_from(["low", "medium", "high", "minimal"]),
    "tools": tools,
    "tool_choice": st.sampled_from(["auto", "none", "required", "any", {"type": "function", "function": {"name": "f"}}]),
    "parallel_tool_calls": st.booleans(),
    "response_format": st.one_of(
        st.sampled_from([{"type": "text"}, {"type": "json_object"}, {"type": "grammar"}]),
        st.fixed_dictionaries({"type": st.just("json_schema"),
                               "json_schema": st.fixed_dictionaries({"name": st.just("x")},
                                                                    optional={"schema": schemas})}),
    ),
    "logprobs": st.booleans(),
    "top_logprobs": numbers,
    "functions": any_json,
}
models = st.one_of(st.sampled_from(MODELS), st.sampled_from(MODELS), texts)
prompts = texts | st.lists(texts, max_size=4) | token_ids | st.lists(token_ids, max_size=4)
ENDPOINT_BODIES = {
    CHAT: body_of({"model": models, "messages": messages},
                  {**generation, "max_completion_tokens": numbers, **chat_features}),
    COMPLETIONS: body_of({"model": models, "prompt": prompts},
                         {**generation, "echo": st.booleans(), "logprobs": numbers}),
    EMBEDDINGS: body_of({"model": models, "input": prompts},
                        {"dimensions": numbers, "encoding_format": st.sampled_from(["float", "base64", "hex"]),
                         "user": texts}),
}
raw_bodies = st.binary(max_size=300) | st.sampled_from([b"", b"{", b"[]", b"null", b'{"model": 1e999}', b"\xff\xfe"])
content_types = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""])

# -- the properties -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(Settings(zero_latency=True, accept_any_model=False))) as test_client:
        yield test_client


def check_answer(endpoint: str, body: object, response) -> None:
    """What every client may rely on, whatever it sent."""
    assert response.status_code < 500, (body, response.text[:500])
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json")
        error = response.json()["error"]
        assert set(error) == ERROR_KEYS and isinstance(error["message"], str) and error["message"]
        return
    if response.headers["content-type"].startswith("text/event-stream"):
        events = [line for line in response.text.split("\n\n") if line]
        assert events[-1] == "data: [DONE]"
        for event in events[:-1]:
            json.loads(event.removeprefix("data: "))
        return
    document = response.json()
    assert document["object"] == {CHAT: "chat.completion", COMPLETIONS: "text_completion", EMBEDDINGS: "list"}[endpoint]
    assert document["usage"]["prompt_tokens"] >= 0


def run_and_count(client: TestClient, endpoint: str, send) -> None:
    """Run the examples ``send`` makes, then check the server counted each of them exactly."""
    sent: Counter[int] = Counter()
    registry = client.app.state.metrics
    before = registry.snapshot().endpoints.get(endpoint)
    send(sent)
    after = registry.snapshot().endpoints[endpoint]
    assert after.requests_total - (before.requests_total if before else 0) == sum(sent.values())
    errors_before = before.errors_total if before else {}
    for status, count in sent.items():
        if status >= 400:
            assert after.errors_total.get(status, 0) - errors_before.get(status, 0) == count, status


@pytest.mark.parametrize("endpoint", [CHAT, COMPLETIONS, EMBEDDINGS])
def test_generated_bodies_get_an_answer_or_an_openai_error(client: TestClient, endpoint: str) -> None:
    def send(sent: Counter[int]) -> None:
        @fuzz_settings()
        @given(body=ENDPOINT_BODIES[endpoint])
        def one(body: dict) -> None:
            response = client.post(endpoint, content=json.dumps(body), headers={"content-type": "application/json"})
            sent[response.status_code] += 1
            check_answer(endpoint, body, response)

        one()

    run_and_count(client, endpoint, send)


@pytest.mark.parametrize("endpoint", [CHAT, COMPLETIONS, EMBEDDINGS])
def test_raw_bytes_get_an_openai_error(client: TestClient, endpoint: str) -> None:
    def send(sent: Counter[int]) -> None:
        @fuzz_settings()
        @given(raw=raw_bodies, content_type=content_types)
        def one(raw: bytes, content_type: str) -> None:
            response = client.post(endpoint, content=raw, headers={"content-type": content_type} if content_type else {})
            sent[response.status_code] += 1
            check_answer(endpoint, raw, response)

        one()

    run_and_count(client, endpoint, send)
