"""``POST /v1/messages`` through the official anthropic SDK, plain and streamed, against a real server."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import msgspec
import openai
import pytest
from anthropic.types import Message, TextBlock

from fakeai.config import Settings
from tests.real_tokenizers import O200K
from tests.servers import eventually, running_app

MODEL = "openai/gpt-oss-120b"
ENDPOINT = "/v1/messages"
HELLO = [{"role": "user", "content": "Hello!"}]


@pytest.fixture(scope="module")
def server():
    with running_app(Settings(ttft_ms=2, itl_ms=0.2, ttft_jitter=0, itl_jitter=0)) as (base_url, app):
        yield base_url, app


def _client(base_url: str, api_key: str | None = "unused", **options: str) -> anthropic.Anthropic:
    """A client that is closed with its ``with`` block (its connections too)."""
    return anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0, **options)


@pytest.fixture
def client(server) -> Iterator[anthropic.Anthropic]:
    with _client(server[0]) as client:
        yield client


def _events(text: str) -> list[tuple[str, dict]]:
    """``(event name, data)`` of each server-sent event of a stream's body."""
    events = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        if lines:
            events.append((lines["event"], msgspec.json.decode(lines["data"])))
    return events


def test_plain_message_is_the_sdks_message(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(model=MODEL, max_tokens=12, messages=HELLO, extra_body={"ignore_eos": True})
    assert isinstance(reply, Message) and reply.role == "assistant" and reply.model == MODEL
    [block] = reply.content
    assert isinstance(block, TextBlock) and len(O200K.encode_ordinary(block.text)) == 12
    assert reply.stop_reason == "max_tokens" and reply.stop_sequence is None
    assert reply.usage.output_tokens == 12 and reply.id.startswith("msg_")


def test_input_tokens_are_the_chat_prompts_tokens(server, client: anthropic.Anthropic) -> None:
    """The same conversation costs the same prompt tokens on both APIs; Anthropic splits them into
    ``input_tokens`` and the ``cache_read_input_tokens`` found in the (simulated) prefix cache."""
    system = "You are terse."
    history = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."},
               {"role": "user", "content": [{"type": "text", "text": "Another one, "},
                                            {"type": "text", "text": "please."}]}]
    as_chat = [{"role": "system", "content": system}, *history[:2], {"role": "user", "content": "Another one, please."}]
    with openai.OpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0) as chat_client:
        chat = chat_client.chat.completions.create(model=MODEL, messages=as_chat, max_tokens=1)
    for _ in range(2):  # the second time, some of it is in the prefix cache
        reply = client.messages.create(model=MODEL, max_tokens=1, system=[{"type": "text", "text": system}],
                                       messages=history)
        usage = reply.usage
        assert usage.input_tokens + usage.cache_read_input_tokens == chat.usage.prompt_tokens
        assert usage.cache_creation_input_tokens == 0
    assert usage.cache_read_input_tokens > 0


def test_a_stop_sequence_ends_the_answer_before_it(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(model=MODEL, max_tokens=200, messages=HELLO, stop_sequences=["zzz", "."],
                                   extra_body={"seed": 3})
    assert reply.stop_reason == "stop_sequence" and reply.stop_sequence == "."
    assert "." not in reply.content[0].text
    assert reply.usage.output_tokens == len(O200K.encode_ordinary(reply.content[0].text))


def test_tool_use_history_and_images_are_accepted(client: anthropic.Anthropic) -> None:
    history = [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"},
                                     {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Look it up.", "signature": "sig"},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "21 C"}]},
    ]
    reply = client.messages.create(model=MODEL, max_tokens=5, messages=history)
    shorter = client.messages.create(model=MODEL, max_tokens=5, messages=history[:1])
    total = reply.usage.input_tokens + reply.usage.cache_read_input_tokens
    assert total > shorter.usage.input_tokens + shorter.usage.cache_read_input_tokens > 85, "an image counts 85"


def test_stream_has_the_messages_event_sequence(server) -> None:
    body = {"model": MODEL, "max_tokens": 15, "messages": HELLO, "stream": True, "ignore_eos": True}
    response = httpx.post(server[0] + ENDPOINT, json=body, headers={"anthropic-version": "2023-06-01"}, timeout=10)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    names = [name for name, _ in events]
    assert all(data["type"] == name for name, data in events)
    assert names == ["message_start", "content_block_start", "ping", *["content_block_delta"] * 15,
                     "content_block_stop", "message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["output_tokens"] == 0
    assert events[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    assert all(delta["type"] == "text_delta" for delta in deltas)
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 15
    assert delta["usage"]["input_tokens"] == start["usage"]["input_tokens"]


def test_stream_helper_gives_the_final_message(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=40, messages=HELLO, stop_sequences=[";"]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.content[0].text == text
    assert final.usage.output_tokens == len(O200K.encode_ordinary(text))
    assert final.stop_reason in ("end_turn", "max_tokens", "stop_sequence")


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"messages": HELLO}, 400, "invalid_request_error"),  # max_tokens is required
        ({"max_tokens": 0, "messages": HELLO}, 400, "invalid_request_error"),
        ({"max_tokens": 5, "messages": []}, 400, "invalid_request_error"),
        ({"max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, 400, "invalid_request_error"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}, 400,
         "invalid_request_error"),
        ({"max_tokens": 5, "messages": HELLO, "temperature": 1.5}, 400, "invalid_request_error"),
        ({"max_tokens": 5, "messages": HELLO, "stop_sequences": [""]}, 400, "invalid_request_error"),
        ({"max_tokens": 5, "messages": HELLO, "model": "no/such-model"}, 404, "not_found_error"),
        ({"max_tokens": 5, "messages": HELLO, "tools": [{"name": "f"}]}, 400, "invalid_request_error"),
        ({"max_tokens": 500_000, "messages": HELLO}, 400, "invalid_request_error"),
    ],
)
def test_errors_have_anthropics_shape(server, body: dict, status: int, kind: str) -> None:
    response = httpx.post(server[0] + ENDPOINT, json={"model": MODEL, **body}, timeout=10)
    assert response.status_code == status
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == kind and error["error"]["message"]
    assert set(error) == {"type", "error"} and set(error["error"]) == {"type", "message"}


def test_errors_are_the_sdks_exceptions(server, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="no/such-model", max_tokens=5, messages=HELLO)
    assert caught.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=MODEL, max_tokens=5, messages=HELLO, extra_body={"temperature": 3})
    wrong_method = httpx.get(server[0] + ENDPOINT)
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("kind", "status", "error_type", "exception"),
    [
        ("rate_limit", 429, "rate_limit_error", anthropic.RateLimitError),
        ("server_error", 500, "api_error", anthropic.InternalServerError),
        ("service_unavailable", 503, "overloaded_error", anthropic.InternalServerError),
    ],
)
def test_injected_errors_have_anthropics_types(kind: str, status: int, error_type: str, exception: type) -> None:
    settings = Settings(zero_latency=True, fail_first=1, error_kinds=(kind,), retry_after_seconds=7)
    with running_app(settings) as (base_url, app), _client(base_url) as client:
        with pytest.raises(exception) as caught:
            client.messages.create(model=MODEL, max_tokens=5, messages=HELLO)
        assert caught.value.status_code == status and caught.value.body["error"]["type"] == error_type
        if status != 500:
            assert caught.value.response.headers["retry-after"] == "7"
        assert client.messages.create(model=MODEL, max_tokens=5, messages=HELLO).content
        eventually(lambda: app.state.metrics.snapshot().endpoints[ENDPOINT].requests_total == 2, "both recorded")
        assert app.state.metrics.snapshot().endpoints[ENDPOINT].errors_total == {status: 1}


def test_a_stream_broken_midway_raises_the_sdks_error() -> None:
    settings = Settings(zero_latency=True, stream_error_rate=1.0)
    with running_app(settings) as (base_url, app), _client(base_url) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            with client.messages.stream(model=MODEL, max_tokens=50, messages=HELLO,
                                        extra_body={"ignore_eos": True}) as stream:
                for _ in stream:
                    pass
        assert caught.value.body["error"]["type"] == "api_error"
        eventually(lambda: app.state.metrics.snapshot().streaming.failed_streams == 1, "the stream was recorded")
        assert app.state.metrics.snapshot().endpoints[ENDPOINT].errors_total == {500: 1}


def test_api_keys_are_read_as_the_sdk_sends_them() -> None:
    with running_app(Settings(zero_latency=True, api_keys=("sk-right",))) as (base_url, _), \
            _client(base_url, api_key="sk-right") as right, \
            _client(base_url, api_key=None, auth_token="sk-right") as bearer, \
            _client(base_url, api_key="sk-wrong") as wrong:
        assert right.messages.create(model=MODEL, max_tokens=3, messages=HELLO).content
        assert bearer.messages.create(model=MODEL, max_tokens=3, messages=HELLO).content
        with pytest.raises(anthropic.AuthenticationError) as caught:
            wrong.messages.create(model=MODEL, max_tokens=3, messages=HELLO)
        assert caught.value.body["error"]["type"] == "authentication_error"
        assert "sk-right" not in caught.value.response.text
        missing = httpx.post(base_url + ENDPOINT, json={"model": MODEL, "max_tokens": 3, "messages": HELLO})
        assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"


def test_requests_tokens_and_errors_are_counted_under_the_endpoint(server, client: anthropic.Anthropic) -> None:
    _, app = server
    registry = app.state.metrics
    before = registry.snapshot().endpoints.get(ENDPOINT)
    plain = client.messages.create(model=MODEL, max_tokens=7, messages=HELLO, extra_body={"ignore_eos": True})
    with client.messages.stream(model=MODEL, max_tokens=9, messages=HELLO, extra_body={"ignore_eos": True}) as stream:
        streamed = stream.get_final_message()
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=MODEL, max_tokens=5, messages=HELLO, extra_body={"temperature": 2})
    requests = (before.requests_total if before else 0) + 3
    eventually(lambda: registry.snapshot().endpoints[ENDPOINT].requests_total == requests, "the three were recorded")
    after = registry.snapshot().endpoints[ENDPOINT]
    prompt = sum(r.usage.input_tokens + r.usage.cache_read_input_tokens for r in (plain, streamed))
    assert after.prompt_tokens_total - (before.prompt_tokens_total if before else 0) == prompt
    assert after.completion_tokens_total - (before.completion_tokens_total if before else 0) == 7 + 9
    assert after.errors_total.get(400, 0) - (before.errors_total.get(400, 0) if before else 0) == 1


WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "minLength": 2}, "unit": {"enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
}
TOOLS = [{"name": "weather", "description": "The forecast.", "input_schema": WEATHER},
         {"name": "time", "input_schema": {"type": "object", "properties": {"zone": {"type": "string"}}}}]


def test_thinking_comes_first_within_its_budget(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(model=MODEL, max_tokens=3000, messages=HELLO,
                                   thinking={"type": "enabled", "budget_tokens": 1024})
    thinking, text = reply.content
    assert thinking.type == "thinking" and thinking.signature and text.type == "text"
    thought = len(O200K.encode_ordinary(thinking.thinking))
    assert 1 <= thought <= 1024 and reply.usage.output_tokens_details.thinking_tokens == thought
    assert reply.usage.output_tokens == thought + len(O200K.encode_ordinary(text.text))
    plain = client.messages.create(model=MODEL, max_tokens=30, messages=HELLO, thinking={"type": "disabled"})
    assert [block.type for block in plain.content] == ["text"] and plain.usage.output_tokens_details is None


def test_thinking_streams_with_its_signature(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=2000, messages=HELLO,
                                thinking={"type": "adaptive"}, output_config={"effort": "low"}) as stream:
        events = list(stream)
        final = stream.get_final_message()
    kinds = [event.delta.type for event in events if event.type == "content_block_delta"]
    thought = kinds.count("thinking_delta")
    assert thought == final.usage.output_tokens_details.thinking_tokens >= 1
    assert kinds[:thought] == ["thinking_delta"] * thought and kinds[thought] == "signature_delta"
    assert final.content[0].type == "thinking" and final.content[0].signature
    assert final.content[1].type == "text" and final.usage.output_tokens == thought + kinds.count("text_delta")


def test_thinking_needs_a_reasoning_model_and_a_budget_below_max_tokens(server) -> None:
    cases = [
        ({"model": "meta-llama/Llama-3.1-8B-Instruct", "thinking": {"type": "enabled", "budget_tokens": 1024},
          "max_tokens": 2000}, "thinking"),
        ({"thinking": {"type": "enabled", "budget_tokens": 512}, "max_tokens": 2000}, "budget_tokens"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2000}, "max_tokens": 2000}, "max_tokens"),
    ]
    for extra, named in cases:
        response = httpx.post(server[0] + ENDPOINT, json={"model": MODEL, "messages": HELLO, **extra}, timeout=10)
        assert response.status_code == 400 and named in response.json()["error"]["message"]


def _valid_uses(reply: Message, names: set[str]) -> list:
    import jsonschema

    schemas = {tool["name"]: tool["input_schema"] for tool in TOOLS}
    uses = [block for block in reply.content if block.type == "tool_use"]
    for use in uses:
        assert use.name in names and use.id.startswith("toolu_")
        jsonschema.validate(use.input, schemas[use.name])
    return uses


def test_tool_use_blocks_are_valid_against_their_schemas(client: anthropic.Anthropic) -> None:
    for seed in range(5):
        reply = client.messages.create(model=MODEL, max_tokens=500, messages=HELLO, tools=TOOLS,
                                       tool_choice={"type": "any"}, extra_body={"seed": seed})
        assert reply.stop_reason == "tool_use" and 1 <= len(_valid_uses(reply, {"weather", "time"}))
    one = client.messages.create(model=MODEL, max_tokens=500, messages=HELLO, tools=TOOLS,
                                 tool_choice={"type": "any", "disable_parallel_tool_use": True})
    assert len(_valid_uses(one, {"weather", "time"})) == 1
    named = client.messages.create(model=MODEL, max_tokens=500, messages=HELLO, tools=TOOLS,
                                   tool_choice={"type": "tool", "name": "weather"})
    assert [use.name for use in _valid_uses(named, {"weather"})] == ["weather"]
    none = client.messages.create(model=MODEL, max_tokens=30, messages=HELLO, tools=TOOLS,
                                  tool_choice={"type": "none"})
    assert [block.type for block in none.content] == ["text"]


def test_tool_use_streams_as_input_json_deltas(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=500, messages=HELLO, tools=TOOLS,
                                tool_choice={"type": "tool", "name": "weather"}) as stream:
        events = list(stream)
        final = stream.get_final_message()
    [use] = _valid_uses(final, {"weather"})
    start = next(event for event in events if event.type == "content_block_start")
    assert start.content_block.type == "tool_use" and start.content_block.name == "weather"
    pieces = [event.delta.partial_json for event in events
              if event.type == "content_block_delta" and event.delta.type == "input_json_delta"]
    assert msgspec.json.decode("".join(pieces)) == use.input
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 1 + len(pieces)


def test_a_json_output_format_answers_a_valid_instance(client: anthropic.Anthropic) -> None:
    import jsonschema

    reply = client.messages.create(model=MODEL, max_tokens=500, messages=HELLO,
                                   output_config={"format": {"type": "json_schema", "schema": WEATHER}})
    jsonschema.validate(msgspec.json.decode(reply.content[0].text), WEATHER)


def test_server_tools_and_unknown_tool_choices_are_400s(server) -> None:
    for extra in ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
                  {"tools": TOOLS, "tool_choice": {"type": "tool", "name": "nope"}},
                  {"tool_choice": {"type": "any"}}):
        response = httpx.post(server[0] + ENDPOINT, json={"model": MODEL, "max_tokens": 50, "messages": HELLO,
                                                          **extra}, timeout=10)
        assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


def test_the_sdks_parse_helper_reads_structured_output(client: anthropic.Anthropic) -> None:
    import pydantic

    class Forecast(pydantic.BaseModel):
        city: str
        days: int

    parsed = client.messages.parse(model=MODEL, max_tokens=500, messages=HELLO, output_format=Forecast)
    assert isinstance(parsed.parsed_output, Forecast)
