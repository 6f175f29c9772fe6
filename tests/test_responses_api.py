"""``POST /v1/responses`` through the official openai SDK, plain and streamed, against a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Literal

import httpx
import msgspec
import openai
import pytest
from openai.types.responses import Response, ResponseOutputMessage

from fakeai.config import Settings
from tests.real_tokenizers import O200K
from tests.servers import eventually, running_app

MODEL = "openai/gpt-oss-120b"
ENDPOINT = "/v1/responses"
EVENT_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]


@pytest.fixture(scope="module")
def server():
    with running_app(Settings(ttft_ms=2, itl_ms=0.2, ttft_jitter=0, itl_jitter=0)) as (base_url, app):
        yield base_url, app


@pytest.fixture
def client(server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def _endpoint(app):
    return app.state.metrics.snapshot().endpoints[ENDPOINT]


def test_plain_response_is_the_sdks_response(client: openai.OpenAI) -> None:
    reply = client.responses.create(model=MODEL, input="Hello!", instructions="Answer briefly.", max_output_tokens=12,
                                    extra_body={"ignore_eos": True})
    assert isinstance(reply, Response) and reply.object == "response" and reply.model == MODEL
    assert reply.status == "incomplete" and reply.incomplete_details.reason == "max_output_tokens"
    [message] = reply.output
    assert isinstance(message, ResponseOutputMessage) and message.role == "assistant"
    assert message.status == "incomplete" and message.content[0].type == "output_text"
    assert len(O200K.encode_ordinary(reply.output_text)) == 12, "the answer is 12 real tokens"
    assert reply.usage.output_tokens == 12 and reply.usage.output_tokens_details.reasoning_tokens == 0
    assert reply.usage.total_tokens == reply.usage.input_tokens + 12
    assert reply.instructions == "Answer briefly." and reply.max_output_tokens == 12
    assert reply.id.startswith("resp_") and message.id.startswith("msg_")


def test_a_natural_end_is_completed(client: openai.OpenAI) -> None:
    reply = client.responses.create(model=MODEL, input="Hello!")
    assert reply.status == "completed" and reply.incomplete_details is None and reply.completed_at
    assert reply.output[0].status == "completed"
    assert reply.usage.output_tokens == len(O200K.encode_ordinary(reply.output_text)) >= 1


def test_input_tokens_are_the_chat_prompts_tokens(client: openai.OpenAI) -> None:
    """The same conversation costs the same prompt tokens on both APIs (one chat template)."""
    history = [
        {"role": "developer", "content": "You are terse."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another one, please."},
    ]
    chat = client.chat.completions.create(model=MODEL, messages=history, max_tokens=1)
    as_items = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are terse."}]},
        {"role": "user", "content": "Name a colour."},
        {"type": "message", "role": "assistant", "status": "completed", "id": "msg_1",
         "content": [{"type": "output_text", "text": "Blue.", "annotations": []}]},
        {"role": "user", "content": [{"type": "input_text", "text": "Another one, please."}]},
    ]
    reply = client.responses.create(model=MODEL, input=as_items, max_output_tokens=1)
    assert reply.usage.input_tokens == chat.usage.prompt_tokens
    system = client.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "You are terse."}, *history[1:]], max_tokens=1)
    instructed = client.responses.create(model=MODEL, instructions="You are terse.", input=as_items[1:],
                                         max_output_tokens=1)
    assert instructed.usage.input_tokens == system.usage.prompt_tokens, "instructions are a system message"


def test_an_agents_history_is_accepted(client: openai.OpenAI) -> None:
    """What an agent sends back: its function calls, their outputs, reasoning items, images."""
    history = [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"},
                                     {"type": "input_image", "image_url": "https://example.com/a.png"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": "Look up."}]},
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": '{"celsius": 21}'},
    ]
    reply = client.responses.create(model=MODEL, input=history, max_output_tokens=5)
    shorter = client.responses.create(model=MODEL, input=history[:1], max_output_tokens=5)
    assert reply.usage.input_tokens > shorter.usage.input_tokens > 85, "the image counts 85 tokens"


def test_stream_events_follow_the_sdks_order_and_numbering(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL, input="Hello!", max_output_tokens=30,
                                 extra_body={"ignore_eos": True}) as stream:
        events = list(stream)
        final = stream.get_final_response() if events[-1].type == "response.completed" else None
    kinds = [event.type for event in events]
    assert kinds[-1] == "response.incomplete", "max_output_tokens ended it"
    order = [kind for index, kind in enumerate(kinds[:-1]) if index == 0 or kind != kinds[index - 1]]
    assert order == EVENT_ORDER
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) == 30, "one delta per token"
    done = events[-1].response
    assert done.status == "incomplete" and done.usage.output_tokens == 30
    assert done.output[0].content[0].text == "".join(deltas) == events[kinds.index("response.output_text.done")].text
    assert final is None


def test_stream_helper_gives_the_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL, input=[{"role": "user", "content": "Hi"}]) as stream:
        text = "".join(event.delta for event in stream if event.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text == text
    assert final.usage.output_tokens == len(O200K.encode_ordinary(text))


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"background": True}, "background"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"truncation": "auto"}, "truncation"),
        ({"include": ["message.output_text.logprobs"]}, "include[0]"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].id"),
        ({"input": [{"type": "computer_call_output", "call_id": "c"}]}, "input[0].type"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input[0].content[0].type"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
    ],
)
def test_what_fakeai_does_not_do_is_a_400_naming_the_field(client: openai.OpenAI, extra: dict, param: str) -> None:
    body = {"input": "Hello!", **extra}
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, **body)  # type: ignore[call-overload]
    assert caught.value.param == param and caught.value.status_code == 400


def test_store_is_accepted_and_nothing_is_stored(client: openai.OpenAI) -> None:
    """The API stores by default and clients send ``store: true`` without reading the response
    back: accepted, and the response says it was not stored; asking for it back is a 404."""
    reply = client.responses.create(model=MODEL, input="Hello!", store=True, max_output_tokens=3)
    assert reply.model_extra["store"] is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(reply.id)


def test_requests_tokens_and_errors_are_counted_under_the_endpoint(server, request) -> None:
    base_url, app = server
    before = _endpoint(app) if ENDPOINT in app.state.metrics.snapshot().endpoints else None
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)
    request.addfinalizer(client.close)
    plain = client.responses.create(model=MODEL, input="Hi", max_output_tokens=7, extra_body={"ignore_eos": True})
    streamed = list(client.responses.create(model=MODEL, input="Hi", max_output_tokens=9, stream=True,
                                            extra_body={"ignore_eos": True}))[-1].response
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=MODEL, input="Hi", background=True)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no/such-model", input="Hi")
    requests = (before.requests_total if before else 0) + 4
    eventually(lambda: _endpoint(app).requests_total == requests, "the four requests were recorded")
    after = _endpoint(app)
    errors = before.errors_total if before else {}
    assert after.errors_total == {400: errors.get(400, 0) + 1, 404: errors.get(404, 0) + 1, **{
        status: count for status, count in errors.items() if status not in (400, 404)}}
    prompt = plain.usage.input_tokens + streamed.usage.input_tokens
    assert after.prompt_tokens_total - (before.prompt_tokens_total if before else 0) == prompt
    assert after.completion_tokens_total - (before.completion_tokens_total if before else 0) == 7 + 9
    metrics = httpx.get(base_url + "/metrics/prometheus").text
    assert f'fakeai_requests_total{{endpoint="{ENDPOINT}"}}' in metrics


def test_a_stream_broken_by_an_injected_error_ends_with_error_and_response_failed() -> None:
    with running_app(Settings(zero_latency=True, stream_error_rate=1.0)) as (base_url, app):
        body = {"model": MODEL, "input": "hi", "max_output_tokens": 50, "ignore_eos": True, "stream": True}
        text = httpx.post(base_url + ENDPOINT, json=body, timeout=10).text
        events = [msgspec.json.decode(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
        assert [event["type"] for event in events[-2:]] == ["error", "response.failed"]
        failed = events[-1]["response"]
        assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
        assert [event["sequence_number"] for event in events] == list(range(len(events)))
        eventually(lambda: app.state.metrics.snapshot().streaming.failed_streams == 1, "the stream was recorded")
        assert app.state.metrics.snapshot().endpoints[ENDPOINT].errors_total == {500: 1}


WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 14},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "name": "weather", "description": "The forecast.", "parameters": WEATHER},
    {"type": "function", "name": "time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}},
                                                        "required": ["zone"]}},
]


def test_a_reasoning_model_reasons_first(client: openai.OpenAI) -> None:
    reply = client.responses.create(model=MODEL, input="Why?", reasoning={"effort": "low"})
    reasoning, message = reply.output
    assert reasoning.type == "reasoning" and reasoning.summary == [] and reasoning.id.startswith("rs_")
    [part] = reasoning.content
    thought = reply.usage.output_tokens_details.reasoning_tokens
    assert part.type == "reasoning_text" and len(O200K.encode_ordinary(part.text)) == thought >= 1
    assert message.type == "message" and reply.usage.output_tokens == thought + len(
        O200K.encode_ordinary(reply.output_text))
    assert reasoning.encrypted_content is None


def test_reasoning_counts_against_max_output_tokens(client: openai.OpenAI) -> None:
    reply = client.responses.create(model=MODEL, input="Why?", reasoning={"effort": "high"}, max_output_tokens=20)
    assert reply.status == "incomplete" and [item.type for item in reply.output] == ["reasoning"]
    assert reply.usage.output_tokens == reply.usage.output_tokens_details.reasoning_tokens == 20


def test_a_model_that_does_not_reason_refuses_an_effort(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="meta-llama/Llama-3.1-8B-Instruct", input="Why?", reasoning={"effort": "low"})
    assert caught.value.param == "reasoning.effort"


def test_a_reasoning_stream_streams_the_reasoning_then_the_answer(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL, input="Why?", reasoning={"effort": "low"}) as stream:
        events = list(stream)
        final = stream.get_final_response()
    thought = [event.delta for event in events if event.type == "response.reasoning_text.delta"]
    said = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(thought) == final.usage.output_tokens_details.reasoning_tokens
    assert len(thought) + len(said) == final.usage.output_tokens
    assert "".join(thought) == final.output[0].content[0].text and "".join(said) == final.output_text
    added = [event.item.type for event in events if event.type == "response.output_item.added"]
    assert added == ["reasoning", "message"]
    assert [event.sequence_number for event in events] == list(range(len(events)))


def test_encrypted_reasoning_is_included_and_accepted_back(client: openai.OpenAI) -> None:
    reply = client.responses.create(model=MODEL, input="Why?", reasoning={"effort": "low"}, store=False,
                                    include=["reasoning.encrypted_content"])
    assert reply.output[0].encrypted_content
    history = [{"role": "user", "content": "Why?"}, *[item.model_dump(exclude_none=True) for item in reply.output],
               {"role": "user", "content": "And then?"}]
    assert client.responses.create(model=MODEL, input=history, max_output_tokens=5).output


def _valid_calls(reply, names: set[str]) -> list:
    import jsonschema

    schemas = {tool["name"]: tool["parameters"] for tool in TOOLS}
    calls = [item for item in reply.output if item.type == "function_call"]
    for call in calls:
        assert call.name in names and call.call_id.startswith("call_") and call.status == "completed"
        jsonschema.validate(json.loads(call.arguments), schemas[call.name])
    return calls


def test_required_tool_calls_are_function_call_items_valid_against_their_schemas(client: openai.OpenAI) -> None:
    for seed in range(5):
        reply = client.responses.create(model=MODEL, input="Weather?", tools=TOOLS, tool_choice="required",
                                        extra_body={"seed": seed})
        calls = _valid_calls(reply, {"weather", "time"})
        assert 1 <= len(calls) == len(reply.output) and reply.status == "completed"
    single = client.responses.create(model=MODEL, input="Weather?", tools=TOOLS, tool_choice="required",
                                     parallel_tool_calls=False)
    assert len(_valid_calls(single, {"weather", "time"})) == 1
    named = client.responses.create(model=MODEL, input="Weather?", tools=TOOLS,
                                    tool_choice={"type": "function", "name": "weather"})
    assert [call.name for call in _valid_calls(named, {"weather"})] == ["weather"]
    none = client.responses.create(model=MODEL, input="Weather?", tools=TOOLS, tool_choice="none")
    assert [item.type for item in none.output] == ["message"]


def test_tool_calls_stream_as_argument_deltas(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL, input="Weather?", tools=TOOLS,
                                 tool_choice={"type": "function", "name": "weather"}) as stream:
        events = list(stream)
        final = stream.get_final_response()
    [call] = _valid_calls(final, {"weather"})
    added = next(event for event in events if event.type == "response.output_item.added")
    assert added.item.type == "function_call" and added.item.name == "weather" and added.item.arguments == ""
    deltas = [event.delta for event in events if event.type == "response.function_call_arguments.delta"]
    assert "".join(deltas) == call.arguments
    assert final.usage.output_tokens == 1 + len(deltas), "the name is a token, each piece one more"
    done = next(event for event in events if event.type == "response.function_call_arguments.done")
    assert done.arguments == call.arguments


def test_tools_cost_the_prompt_tokens_chat_charges(client: openai.OpenAI) -> None:
    chat_tools = [{"type": "function", "function": {key: value for key, value in tool.items() if key != "type"}}
                  for tool in TOOLS]
    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Weather?"}],
                                          tools=chat_tools, tool_choice="none", max_tokens=1)
    reply = client.responses.create(model=MODEL, input="Weather?", tools=TOOLS, tool_choice="none",
                                    max_output_tokens=1)
    assert reply.usage.input_tokens == chat.usage.prompt_tokens


def test_a_json_schema_format_answers_a_valid_instance(client: openai.OpenAI) -> None:
    import jsonschema

    for seed in range(3):
        reply = client.responses.create(
            model=MODEL, input="Forecast?", extra_body={"seed": seed},
            text={"format": {"type": "json_schema", "name": "forecast", "schema": WEATHER, "strict": True}})
        jsonschema.validate(json.loads(reply.output_text), WEATHER)
    anything = client.responses.create(model=MODEL, input="Forecast?", text={"format": {"type": "json_object"}})
    assert isinstance(json.loads(anything.output_text), dict)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": {"type": "allowed_tools", "tools": []}}, "tool_choice"),
        ({"tools": [TOOLS[0], TOOLS[0]]}, "tools[1].parameters"),
        ({"tools": [{"type": "function", "name": "f", "parameters": {"type": "string", "pattern": "x"}}]},
         "tools[0].parameters"),
        ({"tools": TOOLS, "tool_choice": "required", "extra_body": {"ignore_eos": True}}, "ignore_eos"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ],
)
def test_tool_and_format_mistakes_are_400s(client: openai.OpenAI, extra: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="Hi", **extra)  # type: ignore[call-overload]
    assert caught.value.param == param


def test_the_sdks_parse_helpers_read_structured_output_and_tool_calls(client: openai.OpenAI) -> None:
    """``client.responses.parse`` with a pydantic model as the text format, and with a strict
    pydantic function tool: the SDK validates what fakeai sends."""
    import pydantic

    class Forecast(pydantic.BaseModel):
        city: str
        days: int
        unit: Literal["celsius", "fahrenheit"]

    parsed = client.responses.parse(model=MODEL, input="Forecast?", text_format=Forecast)
    assert isinstance(parsed.output_parsed, Forecast)
    tool = openai.pydantic_function_tool(Forecast, name="forecast")
    tools = [{"type": "function", "name": "forecast", "parameters": tool["function"]["parameters"], "strict": True}]
    called = client.responses.parse(model=MODEL, input="Forecast?", tools=tools, tool_choice="required")
    [call] = [item for item in called.output if item.type == "function_call"]
    Forecast.model_validate_json(call.arguments)


def test_an_api_key_is_needed_as_on_every_v1_endpoint() -> None:
    with running_app(Settings(zero_latency=True, api_keys=("sk-right",))) as (base_url, _):
        with openai.OpenAI(base_url=base_url + "/v1", api_key="sk-wrong", max_retries=0) as wrong:
            with pytest.raises(openai.AuthenticationError) as caught:
                wrong.responses.create(model=MODEL, input="Hi")
            assert caught.value.code == "invalid_api_key"
        with openai.OpenAI(base_url=base_url + "/v1", api_key="sk-right", max_retries=0) as right:
            assert right.responses.create(model=MODEL, input="Hi", max_output_tokens=3).output_text
