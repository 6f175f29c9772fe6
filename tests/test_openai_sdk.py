"""The official openai SDK, sync and async, against a real fakeai server."""

from __future__ import annotations

import asyncio

import openai
import pytest

from fakeai.config import Settings
from tests.real_tokenizers import O200K
from tests.servers import eventually, running_app

MODEL = "openai/gpt-oss-120b"
MESSAGES = [{"role": "user", "content": "Hello!"}]


@pytest.fixture(scope="module")
def server():
    with running_app(Settings(zero_latency=True)) as (base_url, app):
        yield base_url, app


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0)


def test_chat_completion(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=12, extra_body={"ignore_eos": True})
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.model == MODEL
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length"
    assert reply.usage.completion_tokens == 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 12


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=20, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == len(content), "one content chunk per token"
    assert (finish[0] == "length") == (len(content) == 20)


def test_chat_stream_n_choices(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, n=3, max_tokens=5, stream=True))
    assert {c.choices[0].index for c in chunks} == {0, 1, 2}


def test_completions(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=7, extra_body={"ignore_eos": True})
    assert reply.object == "text_completion"
    assert reply.usage.completion_tokens == 7 and len(O200K.encode_ordinary(reply.choices[0].text)) == 7
    streamed = list(client.completions.create(model=MODEL, prompt="Once", max_tokens=4, stream=True))
    assert "".join(c.choices[0].text for c in streamed) != ""


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    as_float = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"], encoding_format="float")
    as_base64 = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])  # the SDK asks base64
    assert len(as_float.data) == 2 and len(as_float.data[0].embedding) == 1536
    assert as_base64.data[0].embedding == pytest.approx(as_float.data[0].embedding, abs=1e-6)
    assert sum(x * x for x in as_float.data[1].embedding) == pytest.approx(1.0)
    short = client.embeddings.create(model="text-embedding-3-small", input="a", dimensions=64, encoding_format="float")
    assert len(short.data[0].embedding) == 64


def test_models(client: openai.OpenAI) -> None:
    assert MODEL in [model.id for model in client.models.list()]
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no/such-model")
    assert caught.value.code == "model_not_found"


def test_async_client_streams_concurrently(server) -> None:
    async def run() -> list[int]:
        client = openai.AsyncOpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0)
        async with client:

            async def one() -> int:
                stream = await client.chat.completions.create(
                    model=MODEL, messages=MESSAGES, max_tokens=8, stream=True, stream_options={"include_usage": True}
                )
                return [chunk async for chunk in stream][-1].usage.completion_tokens  # type: ignore[union-attr]

            return await asyncio.gather(*(one() for _ in range(10)))

    assert all(1 <= tokens <= 8 for tokens in asyncio.run(run()))


def test_wrong_api_key_is_the_sdks_authentication_error() -> None:
    with running_app(Settings(zero_latency=True, api_keys=("sk-right",))) as (base_url, _):
        wrong = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            wrong.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert caught.value.code == "invalid_api_key" and "sk-right" not in str(caught.value.body)
        right = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-right", max_retries=0)
        assert right.chat.completions.create(model=MODEL, messages=MESSAGES).choices


def test_injected_429_is_the_sdks_rate_limit_error() -> None:
    settings = Settings(zero_latency=True, fail_first=1, error_kinds=("rate_limit",), retry_after_seconds=7)
    with running_app(settings) as (base_url, _):
        client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert caught.value.response.headers["retry-after"] == "7"
        assert client.chat.completions.create(model=MODEL, messages=MESSAGES).choices


def test_injected_mid_stream_error_is_raised_by_the_sdk() -> None:
    with running_app(Settings(zero_latency=True, stream_error_rate=1.0)) as (base_url, app):
        client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.APIError):
            list(client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=50, stream=True))
        registry = app.state.metrics
        eventually(lambda: registry.snapshot().streaming.active_streams == 0, "the stream was recorded")
        snapshot = registry.snapshot()
        assert (snapshot.streaming.failed_streams, snapshot.streaming.completed_streams) == (1, 0)
        assert snapshot.endpoints["/v1/chat/completions"].errors_total == {500: 1}


def test_completions_answers_several_prompts_in_one_response(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model=MODEL, prompt=["First", "Second"], n=2, max_tokens=3, echo=True, extra_body={"ignore_eos": True}
    )
    assert [choice.index for choice in reply.choices] == [0, 1, 2, 3]
    assert [choice.text[:5] for choice in reply.choices] == ["First", "First", "Secon", "Secon"]
    assert reply.usage.completion_tokens == 12 and reply.usage.prompt_tokens == 2 + 2
