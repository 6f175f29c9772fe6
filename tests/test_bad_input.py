"""Malformed requests: each gets its 4xx with OpenAI's error body, none a 500, all counted."""

from __future__ import annotations

import json

import pytest
from litestar.testing import TestClient

from fakeai.app import create_app
from fakeai.config import Settings

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
MODEL = "openai/gpt-oss-120b"
USER = [{"role": "user", "content": "hi"}]
INVALID = "invalid_request_error"
ENDPOINTS = {CHAT: CHAT, COMPLETIONS: COMPLETIONS, EMBEDDINGS: EMBEDDINGS, "/v1/models": "/v1/models",
             "/v1/models/x": "/v1/models/{model_id}", "/v1/models/gpt-none": "/v1/models/{model_id}"}
"""The endpoint label each path's requests are recorded under (anything else: ``unmatched``)."""


def chat(**fields):
    return {"model": MODEL, "messages": USER, **fields}


# (id, method, path, body: dict | bytes | None, extra headers, status, type, param)
CASES = [
    ("malformed-json", "POST", CHAT, b'{"model": "x", "messages": [', {}, 400, INVALID, None),
    ("not-json", "POST", CHAT, b"hello", {}, 400, INVALID, None),
    ("empty-body", "POST", CHAT, b"", {}, 400, INVALID, None),
    ("body-is-a-list", "POST", CHAT, b"[]", {}, 400, INVALID, None),
    ("missing-model", "POST", CHAT, {"messages": USER}, {}, 400, INVALID, "model"),
    ("missing-messages", "POST", CHAT, {"model": MODEL}, {}, 400, INVALID, "messages"),
    ("empty-messages", "POST", CHAT, {"model": MODEL, "messages": []}, {}, 400, INVALID, "messages"),
    ("messages-not-a-list", "POST", CHAT, {"model": MODEL, "messages": "hi"}, {}, 400, INVALID, "messages"),
    ("bad-role", "POST", CHAT, {"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, {}, 400, INVALID,
     "messages[0].role"),
    ("missing-role", "POST", CHAT, {"model": MODEL, "messages": [{"content": "x"}]}, {}, 400, INVALID,
     "messages[0].role"),
    ("content-wrong-type", "POST", CHAT, {"model": MODEL, "messages": [{"role": "user", "content": 5}]}, {}, 400,
     INVALID, "messages[0].content"),
    ("unknown-content-part", "POST", CHAT,
     {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]}, {}, 400, INVALID,
     "messages[0].content[0].type"),
    ("model-wrong-type", "POST", CHAT, chat(model=7), {}, 400, INVALID, "model"),
    ("unknown-model", "POST", CHAT, chat(model="gpt-none"), {}, 404, INVALID, "model"),
    ("negative-max-tokens", "POST", CHAT, chat(max_tokens=-1), {}, 400, INVALID, "max_tokens"),
    ("zero-max-tokens", "POST", CHAT, chat(max_tokens=0), {}, 400, INVALID, "max_tokens"),
    ("absurd-max-tokens", "POST", CHAT, chat(max_tokens=10**12), {}, 400, INVALID, "messages"),
    ("max-tokens-string", "POST", CHAT, chat(max_tokens="ten"), {}, 400, INVALID, "max_tokens"),
    ("negative-max-completion-tokens", "POST", CHAT, chat(max_completion_tokens=-5), {}, 400, INVALID,
     "max_completion_tokens"),
    ("n-zero", "POST", CHAT, chat(n=0), {}, 400, INVALID, "n"),
    ("n-huge", "POST", CHAT, chat(n=10_000), {}, 400, INVALID, "n"),
    ("temperature-too-high", "POST", CHAT, chat(temperature=3.5), {}, 400, INVALID, "temperature"),
    ("top-p-negative", "POST", CHAT, chat(top_p=-0.1), {}, 400, INVALID, "top_p"),
    ("stream-not-bool", "POST", CHAT, chat(stream="yes"), {}, 400, INVALID, "stream"),
    ("stop-too-many", "POST", CHAT, chat(stop=["a", "b", "c", "d", "e"]), {}, 400, INVALID, "stop"),
    ("stop-wrong-type", "POST", CHAT, chat(stop=5), {}, 400, INVALID, "stop"),
    ("min-tokens-negative", "POST", CHAT, chat(min_tokens=-1), {}, 400, INVALID, "min_tokens"),
    ("completions-missing-prompt", "POST", COMPLETIONS, {"model": MODEL}, {}, 400, INVALID, "prompt"),
    ("completions-empty-prompt-list", "POST", COMPLETIONS, {"model": MODEL, "prompt": []}, {}, 400, INVALID, "prompt"),
    ("completions-mixed-prompt", "POST", COMPLETIONS, {"model": MODEL, "prompt": ["a", 1]}, {}, 400, INVALID, "prompt"),
    ("completions-negative-token-id", "POST", COMPLETIONS, {"model": MODEL, "prompt": [1, -2]}, {}, 400, INVALID,
     "prompt[1]"),
    ("embeddings-token-id-beyond-64-bits", "POST", EMBEDDINGS, {"model": "text-embedding-3-small", "input": [2**63]},
     {}, 400, INVALID, "input[0]"),
    ("completions-token-id-too-large", "POST", COMPLETIONS, {"model": MODEL, "prompt": [[1, 2**31]]}, {}, 400,
     INVALID, "prompt[0][1]"),
    ("embeddings-missing-input", "POST", EMBEDDINGS, {"model": "text-embedding-3-small"}, {}, 400, INVALID, "input"),
    ("embeddings-bad-format", "POST", EMBEDDINGS,
     {"model": "text-embedding-3-small", "input": "x", "encoding_format": "hex"}, {}, 400, INVALID, "encoding_format"),
    ("embeddings-zero-dimensions", "POST", EMBEDDINGS,
     {"model": "text-embedding-3-small", "input": "x", "dimensions": 0}, {}, 400, INVALID, "dimensions"),
    ("unknown-path", "POST", "/v1/unknown", chat(), {}, 404, INVALID, None),
    ("wrong-method", "GET", CHAT, None, {}, 405, INVALID, None),
    ("wrong-method-models", "DELETE", "/v1/models", None, {}, 405, INVALID, None),
    ("unknown-model-retrieve", "GET", "/v1/models/gpt-none", None, {}, 404, INVALID, "model"),
    ("oversized-body", "POST", CHAT, chat(messages=[{"role": "user", "content": "x" * 70_000}]), {}, 413, INVALID,
     None),
    ("deeply-nested-unknown-field", "POST", CHAT, b'{"model": "%s", "messages": [{"role": "user", "content": "hi"}], "extra": %s%s}' % (
        MODEL.encode(), b"[" * 5000, b"]" * 5000), {}, 400, INVALID, None),
    ("deeply-nested-in-a-message", "POST", CHAT, b'{"model": "%s", "messages": [{"role": "user", "vendor": %s"x"%s}]}'
     % (MODEL.encode(), b'{"a":' * 2000, b"}" * 2000), {}, 400, INVALID, None),
    ("deeply-nested-at-984-levels", "POST", EMBEDDINGS, b'{"model": "text-embedding-3-small", "input": "x", "u": %s1%s}'
     % (b'{"a":' * 984, b"}" * 984), {}, 400, INVALID, None),
    ("wrong-method-model", "DELETE", "/v1/models/x", None, {}, 405, INVALID, None),
    ("prefix-of-models", "GET", "/v1/modelsx", None, {}, 404, INVALID, None),
    ("context-too-long", "POST", COMPLETIONS, {"model": MODEL, "prompt": "x" * 60_000, "max_tokens": 2000}, {}, 400,
     INVALID, "messages"),
]


@pytest.fixture(scope="module")
def client():
    settings = Settings(zero_latency=True, max_request_bytes=65_536, max_context_tokens=16_384)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "error_type", "param"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_bad_request_gets_an_openai_error(client, method, path, body, headers, status, error_type, param) -> None:
    content = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    registry = client.app.state.metrics
    before = registry.snapshot()
    response = client.request(method, path, content=content, headers={"content-type": "application/json", **headers})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == error_type and error["message"]
    assert "Traceback" not in response.text
    assert error["param"] == param
    after = registry.snapshot()
    grown = {
        endpoint: figures.errors_total
        for endpoint, figures in after.endpoints.items()
        if endpoint not in before.endpoints or figures.errors_total != before.endpoints[endpoint].errors_total
    }
    endpoint = ENDPOINTS.get(path, "unmatched")
    assert list(grown) == [endpoint], "counted under the route it was sent to"
    was = before.endpoints[endpoint].errors_total if endpoint in before.endpoints else {}
    assert sum(grown[endpoint].values()) == sum(was.values()) + 1


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 30 and len({case[0] for case in CASES}) == len(CASES)
