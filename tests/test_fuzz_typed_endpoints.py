"""Hypothesis-generated requests to the Responses API, Anthropic's Messages, /tokenize and
/detokenize: never a 5xx, never a traceback, always the endpoint's error shape (Anthropic's on
/v1/messages), a stream of well-formed events, and every request counted under its endpoint.

Bodies are built as ``test_fuzz.py`` builds them (plausible values, boundaries, wrong types,
arbitrary JSON, unknown fields), with each API's own fields: input items, tools and their
schemas, tool choices, reasoning and thinking settings, formats.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar.testing import TestClient

from fakeai.app import create_app
from fakeai.config import Settings
from tests.test_fuzz import (
    ERROR_KEYS,
    any_json,
    body_of,
    content_types,
    counts,
    floats,
    fuzz_settings,
    messages,
    models,
    numbers,
    raw_bodies,
    run_and_count,
    texts,
    token_ids,
)

RESPONSES, MESSAGES, TOKENIZE, DETOKENIZE = "/v1/responses", "/v1/messages", "/tokenize", "/detokenize"

schemas = st.one_of(
    st.just({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    st.just({"type": "object", "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 2}}}),
    st.just({"type": "object", "properties": {"x": {"$ref": "#/$defs/missing"}}}),
    st.just({"type": "string", "pattern": "^a$"}),
    any_json,
)
efforts = st.sampled_from(["low", "medium", "high", "minimal", "", None])
response_parts = st.lists(
    st.fixed_dictionaries({"type": st.sampled_from(["input_text", "output_text", "refusal", "input_image",
                                                    "input_file", "summary_text"])},
                          optional={"text": texts, "refusal": texts, "image_url": texts}),
    max_size=3,
)
response_items = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["message", "function_call", "function_call_output", "reasoning",
                                     "item_reference", "web_search_call"]),
            "role": st.sampled_from(["user", "assistant", "system", "developer", "tool"]),
            "content": texts | response_parts,
            "call_id": texts, "name": texts, "arguments": texts, "output": texts | response_parts,
            "summary": response_parts, "encrypted_content": texts, "id": texts,
        },
    ),
    min_size=1, max_size=4,
)
function_tools = st.lists(
    st.fixed_dictionaries({"type": st.sampled_from(["function", "function", "web_search"]),
                           "name": st.sampled_from(["weather", "time", "bad name", ""])},
                          optional={"parameters": schemas, "description": texts, "strict": st.booleans()}),
    max_size=3,
)
RESPONSES_BODY = body_of(
    {"model": models, "input": texts | response_items},
    {
        "instructions": texts, "max_output_tokens": numbers, "stream": st.booleans(), "temperature": floats,
        "top_p": floats, "reasoning": st.fixed_dictionaries({}, optional={"effort": efforts}),
        "tools": function_tools,
        "tool_choice": st.sampled_from(["auto", "none", "required", {"type": "function", "name": "weather"},
                                        {"type": "file_search"}]),
        "parallel_tool_calls": st.booleans(),
        "text": st.fixed_dictionaries({"format": st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "json_object", "json_schema", "xml"])},
            optional={"name": texts, "schema": schemas})}),
        "store": st.booleans(), "include": st.lists(st.sampled_from(["reasoning.encrypted_content",
                                                                     "message.output_text.logprobs", "x"])),
        "previous_response_id": texts, "background": st.booleans(), "truncation": st.sampled_from(["auto", "disabled"]),
        "metadata": st.dictionaries(texts, texts, max_size=2), "ignore_eos": st.booleans(), "min_tokens": numbers,
        "seed": counts,
    },
)
blocks = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking",
                                  "document"])},
        optional={"text": texts, "source": any_json, "id": texts, "name": texts, "input": any_json,
                  "tool_use_id": texts, "content": texts | st.lists(st.fixed_dictionaries({"type": st.just("text"),
                                                                                           "text": texts})),
                  "thinking": texts, "signature": texts, "data": texts},
    ),
    max_size=3,
)
anthropic_messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]), "content": texts | blocks}),
    min_size=0, max_size=4,
)
MESSAGES_BODY = body_of(
    {"model": models, "max_tokens": numbers, "messages": anthropic_messages},
    {
        "system": texts | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": texts}), max_size=2),
        "stop_sequences": st.lists(texts, max_size=5), "stream": st.booleans(), "temperature": floats,
        "top_k": numbers, "metadata": st.fixed_dictionaries({}, optional={"user_id": texts}),
        "thinking": st.fixed_dictionaries({"type": st.sampled_from(["enabled", "disabled", "adaptive", "on"])},
                                          optional={"budget_tokens": numbers}),
        "tools": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["weather", "time", "a b"])},
                                                optional={"input_schema": schemas, "type": st.sampled_from(
                                                    ["custom", "bash_20250124"])}), max_size=3),
        "tool_choice": st.fixed_dictionaries({"type": st.sampled_from(["auto", "any", "tool", "none", "all"])},
                                             optional={"name": st.sampled_from(["weather", "x"]),
                                                       "disable_parallel_tool_use": st.booleans()}),
        "output_config": st.fixed_dictionaries({}, optional={"effort": efforts, "format": st.fixed_dictionaries(
            {"type": st.just("json_schema"), "schema": schemas})}),
        "ignore_eos": st.booleans(), "min_tokens": numbers, "seed": counts,
    },
)
TOKENIZE_BODY = body_of(
    {},
    {"model": models, "prompt": texts, "messages": messages, "tools": any_json, "add_generation_prompt": st.booleans(),
     "continue_final_message": st.booleans(), "return_token_strs": st.booleans(), "add_special_tokens": st.booleans(),
     "chat_template": texts},
)
DETOKENIZE_BODY = body_of({"tokens": token_ids}, {"model": models})
BODIES = {RESPONSES: RESPONSES_BODY, MESSAGES: MESSAGES_BODY, TOKENIZE: TOKENIZE_BODY, DETOKENIZE: DETOKENIZE_BODY}
LAST_EVENTS = {RESPONSES: {"response.completed", "response.incomplete"}, MESSAGES: {"message_stop"}}


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(Settings(zero_latency=True, reasoning_tokens_high=64.0))) as test_client:
        yield test_client


def check_answer(endpoint: str, body: object, response) -> None:
    """What every client may rely on, whatever it sent."""
    assert response.status_code < 500, (body, response.text[:500])
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json")
        document = response.json()
        if endpoint == MESSAGES:
            assert document["type"] == "error" and set(document["error"]) == {"type", "message"}
            assert document["error"]["message"]
        else:
            assert set(document["error"]) == ERROR_KEYS and document["error"]["message"]
        return
    if response.headers["content-type"].startswith("text/event-stream"):
        events = [block.split("\n") for block in response.text.split("\n\n") if block]
        for name, data in events:
            assert json.loads(data.removeprefix("data: "))["type"] == name.removeprefix("event: ")
        assert events[-1][0].removeprefix("event: ") in LAST_EVENTS[endpoint]
        return
    document = response.json()
    if endpoint == RESPONSES:
        assert document["object"] == "response" and document["usage"]["input_tokens"] >= 0
    elif endpoint == MESSAGES:
        assert document["type"] == "message" and document["usage"]["output_tokens"] >= 0
    elif endpoint == TOKENIZE:
        assert document["count"] == len(document["tokens"])
    else:
        assert isinstance(document["prompt"], str)


@pytest.mark.parametrize("endpoint", list(BODIES))
def test_generated_bodies_get_an_answer_or_the_endpoints_error(client: TestClient, endpoint: str) -> None:
    def send(sent: Counter[int]) -> None:
        @fuzz_settings()
        @given(body=BODIES[endpoint])
        def one(body: dict) -> None:
            response = client.post(endpoint, content=json.dumps(body), headers={"content-type": "application/json"})
            sent[response.status_code] += 1
            check_answer(endpoint, body, response)

        one()

    run_and_count(client, endpoint, send)


@pytest.mark.parametrize("endpoint", list(BODIES))
def test_raw_bytes_get_the_endpoints_error(client: TestClient, endpoint: str) -> None:
    def send(sent: Counter[int]) -> None:
        @fuzz_settings()
        @given(raw=raw_bodies, content_type=content_types)
        def one(raw: bytes, content_type: str) -> None:
            response = client.post(endpoint, content=raw, headers={"content-type": content_type} if content_type else {})
            sent[response.status_code] += 1
            check_answer(endpoint, raw, response)

        one()

    run_and_count(client, endpoint, send)
