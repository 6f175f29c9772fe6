"""Issue 16 on /v1/chat/completions and /v1/completions, through the official openai SDK against a
real server: reasoning, tool calls, structured output, log probabilities, usage on every chunk,
and the 400s for what fakeai does not implement. Tool arguments and JSON content are checked with
a real JSON Schema validator; every token they hold is counted in usage and in the metrics."""

from __future__ import annotations

import json
import time
from typing import Literal

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from fakeai.config import Settings
from tests.servers import eventually, running_app

MODEL = "openai/gpt-oss-120b"
PLAIN_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "minLength": 3, "maxLength": 40},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 14},
        "when": {"type": "object", "properties": {"date": {"type": "string", "format": "date"},
                                                  "hours": {"type": "array", "items": {"type": "integer", "minimum": 0,
                                                                                       "maximum": 23},
                                                            "minItems": 1, "maxItems": 4}},
                 "required": ["date", "hours"], "additionalProperties": False},
    },
    "required": ["location", "unit", "when"],
    "additionalProperties": False,
}
SEARCH = {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"const": 10}},
          "required": ["query", "limit"]}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "search", "parameters": SEARCH}},
    {"type": "function", "function": {"name": "now"}},
]
SCHEMAS = {"get_weather": WEATHER, "search": SEARCH, "now": {"type": "object", "additionalProperties": False}}


def _settings(**overrides) -> Settings:
    return Settings(**{"zero_latency": True, "reasoning_tokens_low": 20.0, "reasoning_tokens_medium": 40.0,
                       "reasoning_tokens_high": 80.0, **overrides})


@pytest.fixture(scope="module")
def server():
    with running_app(_settings()) as (base_url, app):
        yield base_url, app


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0)


def _completion_tokens_recorded(app, endpoint: str) -> int:
    return app.state.metrics.snapshot().endpoints[endpoint].completion_tokens_total


# -- reasoning -----------------------------------------------------------------------------------


def test_reasoning_effort_sets_the_length_of_a_reasoning_part_before_the_answer(client) -> None:
    lengths = {}
    for effort in ("low", "medium", "high"):
        reply = client.chat.completions.create(model=MODEL, messages=ASK, reasoning_effort=effort, seed=3)
        message = reply.choices[0].message
        reasoning = reply.usage.completion_tokens_details.reasoning_tokens
        assert message.reasoning and message.content, "a reasoning part, then the answer"
        assert not hasattr(message, "reasoning_content") or message.reasoning_content is None
        lengths[effort] = reasoning
        assert reply.usage.completion_tokens > reasoning > 0
    assert lengths["low"] < lengths["medium"] < lengths["high"]


def test_streamed_reasoning_comes_first_and_every_token_is_counted(server, client) -> None:
    before = _completion_tokens_recorded(server[1], "/v1/chat/completions")
    stream = client.chat.completions.create(model=MODEL, messages=ASK, reasoning_effort="low", stream=True,
                                            stream_options={"include_usage": True})
    kinds = []
    for chunk in stream:
        if chunk.choices:
            delta = chunk.choices[0].delta
            if getattr(delta, "reasoning", None):
                kinds.append("reasoning")
            if delta.content:
                kinds.append("content")
        else:
            usage = chunk.usage
    reasoning = kinds.count("reasoning")
    assert kinds == ["reasoning"] * reasoning + ["content"] * (len(kinds) - reasoning), "reasoning before content"
    assert usage.completion_tokens == len(kinds) and usage.completion_tokens_details.reasoning_tokens == reasoning
    eventually(lambda: _completion_tokens_recorded(server[1], "/v1/chat/completions") == before + len(kinds),
               "the reasoning tokens are counted in the endpoint's completion tokens")


def test_max_tokens_counts_the_reasoning_tokens(client) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=ASK, reasoning_effort="high", max_tokens=10)
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 10
    assert reply.usage.completion_tokens_details.reasoning_tokens == 10 and not reply.choices[0].message.content


def test_reasoning_effort_is_refused_for_a_model_that_does_not_reason(client) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=PLAIN_MODEL, messages=ASK, reasoning_effort="low")
    assert refused.value.code == "unsupported_parameter" and refused.value.param == "reasoning_effort"
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=MODEL, messages=ASK, reasoning_effort="minimal")
    assert refused.value.param == "reasoning_effort"


def test_a_request_without_reasoning_effort_does_not_reason_unless_a_default_is_set(client) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=ASK)
    assert getattr(reply.choices[0].message, "reasoning", None) is None
    assert reply.usage.completion_tokens_details is None
    with running_app(_settings(reasoning_default_effort="medium", reasoning_field="both")) as (base_url, _):
        other = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)
        message = other.chat.completions.create(model=MODEL, messages=ASK).choices[0].message
        assert message.reasoning and message.reasoning == message.reasoning_content
        plain = other.chat.completions.create(model=PLAIN_MODEL, messages=ASK).choices[0].message
        assert getattr(plain, "reasoning", None) is None


def test_ttft_is_the_first_reasoning_token_and_reasoning_tokens_take_itl() -> None:
    settings = _settings(zero_latency=False, ttft_ms=20.0, ttft_jitter=0.0, itl_ms=20.0, itl_jitter=0.0,
                         reasoning_tokens_low=40.0)
    with running_app(settings) as (base_url, app):
        client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)
        sent = time.monotonic()
        stream = client.chat.completions.create(model=MODEL, messages=ASK, reasoning_effort="low", max_tokens=200,
                                                stream=True, stream_options={"include_usage": True})
        first_content = None
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content and first_content is None:
                first_content = time.monotonic() - sent
            if not chunk.choices:
                reasoning = chunk.usage.completion_tokens_details.reasoning_tokens
        eventually(lambda: app.state.metrics.snapshot().streaming.completed_streams == 1, "the stream was recorded")
        ttft = app.state.metrics.snapshot().streaming.ttft.max
        # the first content token is due `reasoning` inter-token latencies after the first
        # reasoning token (deadlines are never early): TTFT is that first reasoning token (half
        # the gap is asked, so that a late first write on a loaded machine does not matter)
        assert first_content - ttft >= 0.5 * reasoning * 0.020


# -- tool calls ----------------------------------------------------------------------------------


def _check_calls(message, tools: dict[str, dict]) -> None:
    assert message.tool_calls
    for call in message.tool_calls:
        assert call.type == "function" and call.id.startswith("call_") and call.function.name in tools
        jsonschema.validate(json.loads(call.function.arguments), tools[call.function.name])


def test_required_tool_calls_have_arguments_valid_against_their_schema(client) -> None:
    for seed in range(30):
        reply = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required", seed=seed)
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        _check_calls(choice.message, SCHEMAS)
        names = [call.function.name for call in choice.message.tool_calls]
        assert len(names) == len(set(names)) and 1 <= len(names) <= 3


def test_a_named_function_is_the_one_call_and_parallel_false_makes_one(client) -> None:
    named = {"type": "function", "function": {"name": "search"}}
    reply = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice=named)
    assert [call.function.name for call in reply.choices[0].message.tool_calls] == ["search"]
    for seed in range(20):
        reply = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required",
                                               parallel_tool_calls=False, seed=seed)
        assert len(reply.choices[0].message.tool_calls) == 1


def test_tool_choice_none_answers_in_prose(client) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice="none")
    assert reply.choices[0].message.tool_calls is None and reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")


def test_auto_calls_a_tool_for_the_configured_fraction_deterministically() -> None:
    def decisions(base_url: str) -> list[bool]:
        client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)
        return [client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, max_tokens=4)
                .choices[0].message.tool_calls is not None for _ in range(200)]

    with running_app(_settings(tool_call_fraction=0.25, seed=11)) as (base_url, _):
        first = decisions(base_url)
    with running_app(_settings(tool_call_fraction=0.25, seed=11)) as (base_url, _):
        again = decisions(base_url)
    assert first == again, "the same --seed and the same requests: the same calls"
    assert 30 <= sum(first) <= 70, f"{sum(first)} of 200 called a tool at fraction 0.25"


def test_streamed_tool_calls_accumulate_in_the_sdk(client) -> None:
    with client.chat.completions.stream(model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required",
                                        reasoning_effort="low", seed=5) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.done" in events
    _check_calls(final.choices[0].message, SCHEMAS)
    assert final.choices[0].finish_reason == "tool_calls" and final.choices[0].message.reasoning


def test_raw_tool_call_chunks_are_shaped_as_openai_streams_them(server) -> None:
    body = {"model": MODEL, "messages": ASK, "tools": TOOLS, "tool_choice": {"type": "function",
                                                                            "function": {"name": "get_weather"}},
            "stream": True, "stream_options": {"include_usage": True}}
    lines = httpx.post(server[0] + "/v1/chat/completions", json=body).text.split("\n\n")
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"] and "tool_calls" in
              chunk["choices"][0]["delta"]]
    first = deltas[0]["tool_calls"][0]
    assert deltas[0]["role"] == "assistant" and first["index"] == 0 and first["type"] == "function"
    assert first["id"].startswith("call_") and first["function"] == {"name": "get_weather", "arguments": ""}
    rest = [delta["tool_calls"][0] for delta in deltas[1:]]
    assert all(set(part) == {"index", "function"} and set(part["function"]) == {"arguments"} for part in rest)
    jsonschema.validate(json.loads("".join(part["function"]["arguments"] for part in rest)), WEATHER)
    assert chunks[-1]["usage"]["completion_tokens"] == len(deltas), "the name and each piece are a token"
    assert [chunk["choices"][0].get("finish_reason") for chunk in chunks if chunk["choices"]][-1] == "tool_calls"


def test_tool_call_history_is_accepted_and_counted(client) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}}
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"}]
    short = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice="none")
    long = client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS, tool_choice="none")
    extra = len("get_weather" + call["function"]["arguments"] + "Sunny, 21 C")
    assert long.usage.prompt_tokens - short.usage.prompt_tokens >= extra // 4
    bare = client.chat.completions.create(model=MODEL, messages=ASK)
    assert short.usage.prompt_tokens > bare.usage.prompt_tokens, "the tool definitions are prompt tokens"


class Weather(BaseModel):
    location: str
    unit: Literal["celsius", "fahrenheit"]
    days: int = Field(ge=1, le=14)


def test_parse_with_a_strict_pydantic_tool(client) -> None:
    reply = client.chat.completions.parse(model=MODEL, messages=ASK, tools=[openai.pydantic_function_tool(Weather)],
                                          tool_choice="required")
    parsed = reply.choices[0].message.tool_calls[0].function.parsed_arguments
    assert isinstance(parsed, Weather) and 1 <= parsed.days <= 14


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"tool_choice": "required"}, "tool_choice", "invalid_value"),
        ({"parallel_tool_calls": True}, "parallel_tool_calls", "invalid_value"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "missing"}}}, "tool_choice",
         "invalid_value"),
        ({"tools": [TOOLS[1], TOOLS[1]]}, "tools[1].function.name", "invalid_value"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string", "pattern": "x"}}}]},
         "tools[0].function.parameters", "invalid_schema"),
        ({"tools": TOOLS, "ignore_eos": True}, "ignore_eos", "unsupported_parameter"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type", "invalid_value"),
        ({"functions": [{"name": "f"}]}, "functions", "unsupported_parameter"),
        ({"function_call": "auto"}, "function_call", "unsupported_parameter"),
        ({"guided_json": {"type": "object"}}, "guided_json", "unsupported_parameter"),
        ({"audio": {"voice": "alloy", "format": "mp3"}}, "audio", "unsupported_parameter"),
        ({"modalities": ["text", "audio"]}, "modalities[1]", "invalid_value"),
        ({"top_logprobs": 2}, "top_logprobs", "invalid_value"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", "invalid_value"),
        ({"stream_options": {"include_usage": True}}, "stream_options", "invalid_value"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"not": {}}}}},
         "response_format.json_schema.schema", "invalid_schema"),
        ({"response_format": {"type": "grammar"}}, "response_format.type", "invalid_value"),
    ],
)
def test_what_fakeai_does_not_implement_is_a_clear_400(server, body: dict, param: str, code: str) -> None:
    response = httpx.post(server[0] + "/v1/chat/completions", json={"model": MODEL, "messages": ASK, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error"), error
    assert error["message"]


def test_refusals_are_counted_as_errors_of_the_endpoint(server) -> None:
    registry = server[1].state.metrics
    before = registry.snapshot().endpoints["/v1/chat/completions"].errors_total.get(400, 0)
    httpx.post(server[0] + "/v1/chat/completions", json={"model": MODEL, "messages": ASK, "functions": []})
    eventually(lambda: registry.snapshot().endpoints["/v1/chat/completions"].errors_total.get(400, 0) == before + 1,
               "the 400 is counted")


# -- structured output ---------------------------------------------------------------------------


class Step(BaseModel):
    explanation: str
    output: str


class MathAnswer(BaseModel):
    steps: list[Step]
    final_answer: str
    confidence: float = Field(ge=0, le=1)
    kind: Literal["exact", "estimate"]


def test_parse_with_a_pydantic_response_format(client) -> None:
    for parse in (client.chat.completions.parse, client.beta.chat.completions.parse):
        reply = parse(model=MODEL, messages=ASK, response_format=MathAnswer)
        parsed = reply.choices[0].message.parsed
        assert isinstance(parsed, MathAnswer) and 0 <= parsed.confidence <= 1
        assert reply.usage.completion_tokens > 5


def test_streamed_structured_output_parses_and_counts_its_pieces(client) -> None:
    with client.chat.completions.stream(model=MODEL, messages=ASK, response_format=MathAnswer,
                                        stream_options={"include_usage": True}) as stream:
        pieces = sum(1 for event in stream if event.type == "content.delta")
        final = stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, MathAnswer)
    assert final.usage.completion_tokens == pieces


@pytest.mark.parametrize("strict", [True, False, None])
def test_json_schema_content_is_valid_against_the_schema(client, strict: bool | None) -> None:
    spec = {"name": "weather", "schema": WEATHER} | ({} if strict is None else {"strict": strict})
    for seed in range(20):
        reply = client.chat.completions.create(model=MODEL, messages=ASK, seed=seed,
                                               response_format={"type": "json_schema", "json_schema": spec})
        jsonschema.validate(json.loads(reply.choices[0].message.content), WEATHER)


def test_json_object_is_a_json_object_and_reasoning_comes_before_it(client) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=ASK, response_format={"type": "json_object"},
                                           reasoning_effort="low")
    assert isinstance(json.loads(reply.choices[0].message.content), dict) and reply.choices[0].message.reasoning


def test_a_cut_json_answer_ends_with_length(client) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=3,
                                           response_format={"type": "json_schema",
                                                            "json_schema": {"name": "w", "schema": WEATHER}})
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 3
    with pytest.raises(openai.LengthFinishReasonError):
        client.chat.completions.parse(model=MODEL, messages=ASK, response_format=MathAnswer, max_tokens=3)


# -- log probabilities ---------------------------------------------------------------------------


def test_chat_logprobs_one_entry_per_token_whole_and_streamed_alike(client) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=ASK, logprobs=True, top_logprobs=3, max_tokens=15,
                                           seed=9)
    entries = reply.choices[0].logprobs.content
    assert len(entries) == reply.usage.completion_tokens == 15
    assert "".join(entry.token for entry in entries) == reply.choices[0].message.content
    for entry in entries:
        assert entry.bytes == list(entry.token.encode()) and entry.logprob <= 0
        assert len(entry.top_logprobs) == 3 and entry.top_logprobs[0].token == entry.token
        values = [top.logprob for top in entry.top_logprobs]
        assert values == sorted(values, reverse=True) and len({top.token for top in entry.top_logprobs}) == 3
    streamed = client.chat.completions.create(model=MODEL, messages=ASK, logprobs=True, top_logprobs=3,
                                              max_tokens=15, seed=9, stream=True)
    chunks = [chunk.choices[0] for chunk in streamed if chunk.choices and chunk.choices[0].logprobs]
    assert [c.logprobs.content[0].model_dump() for c in chunks] == [entry.model_dump() for entry in entries]
    assert all(c.logprobs.content[0].token == c.delta.content for c in chunks)


def test_chat_logprobs_cover_json_content_and_not_the_reasoning(client) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=ASK, logprobs=True, reasoning_effort="low",
                                           response_format={"type": "json_object"})
    entries = reply.choices[0].logprobs.content
    assert "".join(entry.token for entry in entries) == reply.choices[0].message.content
    details = reply.usage.completion_tokens_details
    assert len(entries) == reply.usage.completion_tokens - details.reasoning_tokens
    assert all(entry.top_logprobs == [] for entry in entries), "top_logprobs not asked: empty lists"


def test_completions_echo_scores_a_prompt_as_lm_eval_does(client) -> None:
    prompt = "The capital of France is Paris"
    reply = client.completions.create(model=MODEL, prompt=prompt, echo=True, logprobs=1, max_tokens=0)
    logprobs = reply.choices[0].logprobs
    assert reply.choices[0].text == prompt and reply.usage.completion_tokens == 0
    assert len(logprobs.tokens) == reply.usage.prompt_tokens == len(logprobs.token_logprobs)
    assert "".join(logprobs.tokens) == prompt
    assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
    assert all(value <= 0 for value in logprobs.token_logprobs[1:])
    assert logprobs.text_offset == [sum(map(len, logprobs.tokens[:i])) for i in range(len(logprobs.tokens))]
    for token, value, top in zip(logprobs.tokens[1:], logprobs.token_logprobs[1:], logprobs.top_logprobs[1:]):
        assert top == {token: value}, "lm-eval's is_greedy: the sampled token is the most likely"
    # token ids, as lm-eval sends them, and one generated token after the prompt
    ids = [791, 6864, 315, 9822, 374, 12366]
    reply = client.completions.create(model=MODEL, prompt=ids, echo=True, logprobs=5, max_tokens=1)
    logprobs = reply.choices[0].logprobs
    assert len(logprobs.token_logprobs) == len(ids) + 1 == reply.usage.prompt_tokens + 1
    assert logprobs.tokens[: len(ids)] == [f"token_id:{token}" for token in ids]
    assert all(len(top) == 5 for top in logprobs.top_logprobs[1:])


def test_completions_echo_with_the_real_tokenizer_decodes_token_ids() -> None:
    with running_app(_settings(tokenizer="o200k_base")) as (base_url, _):
        client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)
        reply = client.completions.create(model=MODEL, prompt="Hello world", echo=True, logprobs=0, max_tokens=0)
        assert reply.choices[0].logprobs.tokens == ["Hello", " world"]
        reply = client.completions.create(model=MODEL, prompt=[13225, 2375, 10**6], echo=True, max_tokens=0)
        assert reply.choices[0].text == "Hello worldtoken_id:1000000"


def test_streamed_completions_echo_and_logprobs(client) -> None:
    chunks = list(client.completions.create(model=MODEL, prompt="Score this", echo=True, logprobs=2, max_tokens=3,
                                            stream=True, extra_body={"ignore_eos": True}))
    texts = [chunk.choices[0].text for chunk in chunks]
    assert texts[0].startswith("Score this") and len(chunks) == 4 and chunks[-1].choices[0].finish_reason == "length"
    tokens = [token for chunk in chunks[:3] for token in chunk.choices[0].logprobs.tokens]
    assert "".join(tokens) == "".join(texts)
    offsets = [offset for chunk in chunks[:3] for offset in chunk.choices[0].logprobs.text_offset]
    assert offsets == [sum(map(len, tokens[:i])) for i in range(len(tokens))]


def test_completions_max_tokens_zero_needs_echo(client) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model=MODEL, prompt="x", max_tokens=0)
    assert refused.value.param == "max_tokens"
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model=MODEL, prompt="x", suffix="y")
    assert refused.value.code == "unsupported_parameter"


# -- usage on every chunk ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_continuous_usage_stats_puts_usage_on_every_chunk(server, path: str) -> None:
    body = {"model": MODEL, "max_tokens": 6, "n": 2, "stream": True, "ignore_eos": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True}}
    body |= {"messages": ASK} if path.endswith("chat/completions") else {"prompt": "Tell me"}
    lines = httpx.post(server[0] + path, json=body).text.split("\n\n")
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert all("usage" in chunk for chunk in chunks)
    counts = [chunk["usage"]["completion_tokens"] for chunk in chunks]
    assert counts == sorted(counts) and counts[-1] == 12 and counts[0] == 1
    prompt = chunks[0]["usage"]["prompt_tokens"]
    assert all(chunk["usage"]["total_tokens"] == prompt + chunk["usage"]["completion_tokens"] for chunk in chunks)


# -- metrics -------------------------------------------------------------------------------------


def test_reasoning_and_tool_call_tokens_are_in_every_metrics_format() -> None:
    with running_app(_settings()) as (base_url, app):
        client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)
        total = 0
        for tool_choice in ("required", "none"):
            reply = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice=tool_choice,
                                                   reasoning_effort="medium")
            total += reply.usage.completion_tokens
        stream = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required",
                                                reasoning_effort="low", stream=True,
                                                stream_options={"include_usage": True})
        total += [chunk for chunk in stream][-1].usage.completion_tokens
        registry = app.state.metrics
        eventually(lambda: registry.snapshot().endpoints["/v1/chat/completions"].completion_tokens_total == total,
                   "every token recorded")
        as_json = httpx.get(base_url + "/metrics", headers={"Accept": "application/json"}).json()
        assert as_json["totals"]["/v1/chat/completions"]["completion_tokens"] == total
        prometheus = httpx.get(base_url + "/metrics/prometheus").text
        line = 'fakeai_tokens_total{endpoint="/v1/chat/completions",kind="completion"} '
        assert f"{line}{total}" in prometheus
        assert "vllm:generation_tokens_total" in prometheus
