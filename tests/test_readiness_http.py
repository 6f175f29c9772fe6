"""--startup-seconds: a model that is "loading", as a Kubernetes probe and a client see it."""

from __future__ import annotations

import time

import httpx

from tests.servers import eventually, running_app, running_cli
from fakeai.config import Settings

CHAT = {"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def test_until_the_model_has_loaded_health_says_so_and_generation_answers_503():
    started = time.monotonic()
    with running_app(Settings(zero_latency=True, startup_seconds=4.0)) as (base_url, _):
        health = httpx.get(base_url + "/health")
        # A start-up that used most of the loading time would leave nothing to check: say so.
        assert time.monotonic() - started < 3.0, "the server took 3 s of its 4 s of loading to start"
        assert health.status_code == 503
        assert health.json()["status"] == "loading" and 0 < health.json()["ready_in_seconds"] <= 4.0
        assert httpx.get(base_url + "/health/live").json() == {"status": "alive"}
        for path, body in (("/v1/chat/completions", CHAT),
                           ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi"})):
            response = httpx.post(base_url + path, json=body)
            assert response.status_code == 503
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}
            assert response.json()["error"]["code"] == "model_loading"
            assert 1 <= int(response.headers["retry-after"]) <= 4
        detailed = httpx.get(base_url + "/health/detailed").json()
        assert detailed["ready"] is False and detailed["readiness"]["startup_seconds"] == 4.0
        eventually(lambda: httpx.get(base_url + "/health").status_code == 200, "the model loaded", seconds=15)
        # loaded: the health level again (the 503s above are errors in its window)
        assert httpx.get(base_url + "/health").json()["status"] == "unhealthy"
        assert httpx.post(base_url + "/v1/chat/completions", json=CHAT).status_code == 200
        assert httpx.get(base_url + "/health/detailed").json()["ready"] is True
        # the refused requests were answered, and counted, as 503s
        errors = httpx.get(base_url + "/metrics", headers={"Accept": "application/json"}).json()["errors_by_status"]
        assert sum(int(by_status.get("503", 0)) for by_status in errors.values()) == 2


def test_every_worker_becomes_ready_at_the_same_moment():
    with running_cli("--workers", "2", "--zero-latency", "--startup-seconds", "2") as base_url:
        # serving (running_cli waits for /health: 200 only once loaded); every new connection,
        # whichever worker takes it, is ready too
        for _ in range(10):
            with httpx.Client(base_url=base_url) as client:
                assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
