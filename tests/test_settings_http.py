"""Every family of settings takes effect, as flags or FAKEAI_* variables, seen through HTTP."""

from __future__ import annotations

import time
from collections import Counter

import httpx
import pytest
from litestar.testing import TestClient

from fakeai.app import create_app
from fakeai.config import Settings
from tests.servers import running_cli

CHAT = "/v1/chat/completions"


def chat_body(model: str = "a/x", content: str = "hi", **fields) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], **fields}


def test_flags_configure_server_models_answers_auth_and_errors() -> None:
    flags = (
        "--models", "a/x,b/y", "--api-keys", "k1,k2", "--max-request-bytes", "2048",
        "--max-context-tokens", "64", "--answer-tokens-mean", "5", "--answer-tokens-stddev", "0",
        "--answer-tokens-max", "9", "--embedding-dimensions", "8", "--zero-latency",
        "--fail-first", "1", "--error-kinds", "service_unavailable", "--retry-after-seconds", "9",
        "--log-level", "warning",
    )
    with running_cli(*flags) as base_url, httpx.Client(base_url=base_url, timeout=10) as client:
        auth = {"Authorization": "Bearer k2"}
        assert client.post(CHAT, json=chat_body()).status_code == 401  # api keys
        first = client.post(CHAT, json=chat_body(), headers=auth)  # fail-first, kinds, retry-after
        assert first.status_code == 503 and first.headers["retry-after"] == "9"
        assert first.json()["error"]["code"] == "service_unavailable"
        models = client.get("/v1/models", headers=auth).json()["data"]
        assert [m["id"] for m in models] == ["a/x", "b/y"]
        assert client.post(CHAT, json=chat_body(model="openai/gpt-oss-120b"), headers=auth).status_code == 404
        natural = client.post(CHAT, json=chat_body(), headers=auth).json()  # answer length knobs
        assert natural["usage"]["completion_tokens"] == 5 and natural["choices"][0]["finish_reason"] == "stop"
        capped = client.post(CHAT, json=chat_body(max_tokens=3), headers=auth).json()
        assert capped["usage"]["completion_tokens"] == 3 and capped["choices"][0]["finish_reason"] == "length"
        too_long = client.post(CHAT, json=chat_body(content="x" * 200, max_tokens=20), headers=auth)
        assert too_long.json()["error"]["code"] == "context_length_exceeded"
        too_big = client.post(CHAT, json=chat_body(content="x" * 3000), headers=auth)
        assert too_big.status_code == 413
        embedding = client.post("/v1/embeddings", json={"model": "b/y", "input": "x"}, headers=auth).json()
        assert len(embedding["data"][0]["embedding"]) == 8


def test_environment_configures_latency_any_model_and_stream_errors() -> None:
    env = {"FAKEAI_ACCEPT_ANY_MODEL": "true", "FAKEAI_STREAM_ERROR_RATE": "1", "FAKEAI_TTFT_MS": "150",
           "FAKEAI_TTFT_JITTER": "0", "FAKEAI_ITL_MS": "0", "FAKEAI_LOG_LEVEL": "warning"}
    with running_cli(env=env) as base_url, httpx.Client(base_url=base_url, timeout=10) as client:
        started = time.perf_counter()
        reply = client.post(CHAT, json=chat_body(model="anything/at-all", max_tokens=2))
        assert reply.status_code == 200 and time.perf_counter() - started >= 0.150
        stream = client.post(CHAT, json=chat_body(model="x", max_tokens=40, stream=True)).text
        assert '"error"' in stream and "[DONE]" not in stream


def test_the_server_seed_makes_answers_repeatable() -> None:
    def first_answer(seed: int) -> str:
        with TestClient(create_app(Settings(zero_latency=True, seed=seed))) as client:
            body = chat_body(model="openai/gpt-oss-120b", max_tokens=30)
            return client.post(CHAT, json=body).json()["choices"][0]["message"]["content"]

    assert first_answer(7) == first_answer(7)
    assert first_answer(7) != first_answer(8)


def test_the_request_seed_makes_one_answer_repeatable() -> None:
    with TestClient(create_app(Settings(zero_latency=True))) as client:
        body = chat_body(model="openai/gpt-oss-120b", seed=1234)
        answers = {client.post(CHAT, json=body).json()["choices"][0]["message"]["content"] for _ in range(3)}
    assert len(answers) == 1


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_error_rate_and_mix(rate: float) -> None:
    settings = Settings(zero_latency=True, error_rate=rate, seed=3)
    with TestClient(create_app(settings)) as client:
        statuses = Counter(
            client.post(CHAT, json=chat_body(model="openai/gpt-oss-120b", max_tokens=1)).status_code
            for _ in range(400)
        )
    failed = 400 - statuses[200]
    assert abs(failed / 400 - rate) < 0.08
    assert set(statuses) == {200, 400, 429, 500, 503}


def test_workers_log_level_and_window_flags_take_effect() -> None:
    with running_cli("--workers", "2", "--log-level", "info", "--window-seconds", "7.5") as server:
        assert len(server.worker_pids()) == 2
        assert httpx.get(server + "/health/detailed").json()["window_seconds"] == 7.5
    assert "Application startup complete" in server.output
    with running_cli("--log-level", "warning") as quiet:
        httpx.get(quiet + "/health")
    assert "Application startup complete" not in quiet.output
