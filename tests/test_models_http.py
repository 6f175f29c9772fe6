"""``/v1/models`` and ``/v1/models/{model}`` as clients meet them: GET, HEAD, and what is counted."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from fakeai.app import create_app
from fakeai.config import Settings

MODELS = ("openai/gpt-oss-120b", "meta-llama/Llama-3.1-8B-Instruct")


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(Settings(models=MODELS))) as test_client:
        yield test_client


def test_the_list_and_each_model() -> None:
    with TestClient(create_app(Settings(models=MODELS))) as client:
        listing = client.get("/v1/models").json()
        assert [model["id"] for model in listing["data"]] == list(MODELS)
        for model_id in MODELS:
            assert client.get(f"/v1/models/{model_id}").json() == {
                "object": "model", "id": model_id, "created": listing["data"][0]["created"],
                "owned_by": model_id.split("/")[0]}
        assert client.get("/v1/models/gpt-none").status_code == 404
        totals = client.get("/metrics").json()["totals"]
        assert totals["/v1/models"]["requests"] == 1
        assert totals["/v1/models/{model_id}"]["requests"] == 3


@pytest.mark.parametrize("path", ["/v1/models", f"/v1/models/{MODELS[1]}"])
def test_head_gets_the_headers_of_get_and_no_body(client: TestClient, path: str) -> None:
    get, head = client.get(path), client.head(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))
    assert head.headers["content-type"] == get.headers["content-type"] == "application/json"


@pytest.mark.parametrize(("method", "path", "endpoint"), [
    ("POST", "/v1/models", "/v1/models"),
    ("DELETE", f"/v1/models/{MODELS[0]}", "/v1/models/{model_id}"),
    ("PUT", "/v1/models/anything", "/v1/models/{model_id}"),
])
def test_a_wrong_method_is_a_405_counted_under_its_route(client: TestClient, method: str, path: str,
                                                           endpoint: str) -> None:
    before = client.get("/metrics").json()["errors_by_status"].get(endpoint, {}).get("405", 0)
    response = client.request(method, path)
    assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD"
    assert response.json()["error"]["message"] == f"Method {method} is not allowed for {path}"
    assert client.get("/metrics").json()["errors_by_status"][endpoint]["405"] == before + 1
