"""The admin API through HTTP: off without --admin-key, 401 without the key, changes that take
effect at once (in every worker process), and a prefix-cache reset."""

from __future__ import annotations

import httpx
import pytest

from fakeai.config import Settings
from tests.servers import running_app, running_cli

KEY = "s3cret-admin"
ADMIN = {"Authorization": f"Bearer {KEY}"}
CHAT = {"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def test_without_an_admin_key_there_is_no_admin_api():
    with running_app(Settings(zero_latency=True)) as (base_url, _):
        for method in ("GET", "PATCH"):
            assert httpx.request(method, base_url + "/admin/config", headers=ADMIN, json={}).status_code == 404
        assert httpx.post(base_url + "/admin/reset-prefix-cache", headers=ADMIN).status_code == 404


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}],
                         ids=["none", "wrong", "not-bearer"])
def test_the_admin_api_needs_the_key(headers):
    with running_app(Settings(zero_latency=True, admin_key=KEY)) as (base_url, _):
        for method, path in (("GET", "/admin/config"), ("PATCH", "/admin/config"),
                             ("POST", "/admin/reset-prefix-cache")):
            response = httpx.request(method, base_url + path, headers=headers, json={"error_rate": 1.0})
            assert response.status_code == 401
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"} and KEY not in response.text
        # nothing changed
        assert httpx.post(base_url + "/v1/chat/completions", json=CHAT).status_code == 200


def test_a_change_takes_effect_at_once_is_logged_and_shows_in_health_detailed():
    settings = Settings(zero_latency=True, admin_key=KEY, error_kinds=("server_error",))
    with running_app(settings) as (base_url, _):
        view = httpx.get(base_url + "/admin/config", headers=ADMIN).json()
        assert view["generation"] == 0 and view["settings"]["error_rate"] == 0.0 and view["changes"] == []
        response = httpx.patch(base_url + "/admin/config", headers=ADMIN, json={"error_rate": 1.0, "itl_ms": 25})
        assert response.status_code == 200
        view = response.json()
        assert view["generation"] == 1 and view["settings"]["error_rate"] == 1.0 and view["settings"]["itl_ms"] == 25
        (change,) = view["changes"]
        assert change["changes"] == {"error_rate": [0.0, 1.0], "itl_ms": [10.0, 25.0]}
        failed = httpx.post(base_url + "/v1/chat/completions", json=CHAT)
        assert failed.status_code == 500 and failed.json()["error"]["code"] == "internal_error"
        detailed = httpx.get(base_url + "/health/detailed").json()
        assert detailed["runtime_control"]["generation"] == 1
        assert detailed["runtime_control"]["changes"][0]["changes"]["error_rate"] == [0.0, 1.0]
        httpx.patch(base_url + "/admin/config", headers=ADMIN, json={"error_rate": 0}).raise_for_status()
        assert httpx.post(base_url + "/v1/chat/completions", json=CHAT).status_code == 200
        assert [entry["generation"] for entry in httpx.get(base_url + "/health/detailed").json()
                ["runtime_control"]["changes"]] == [1, 2]


def test_the_latency_and_the_engine_limits_change_at_run_time():
    settings = Settings(admin_key=KEY, ttft_ms=0, ttft_jitter=0, itl_ms=0, itl_jitter=0, prefill_ms_per_token=0,
                        kv_workers=1)
    with running_app(settings) as (base_url, _):
        body = {**CHAT, "max_tokens": 6, "ignore_eos": True}
        fast = httpx.post(base_url + "/v1/chat/completions", json=body)
        assert fast.elapsed.total_seconds() < 0.1
        httpx.patch(base_url + "/admin/config", headers=ADMIN,
                    json={"itl_ms": 40, "max_num_seqs": 1}).raise_for_status()
        slow = httpx.post(base_url + "/v1/chat/completions", json=body)
        assert slow.elapsed.total_seconds() >= 0.2  # 5 decode steps of 40 ms
        detailed = httpx.get(base_url + "/health/detailed").json()
        assert detailed["engine_model"]["enabled"] is True and detailed["engine_model"]["max_num_seqs"] == 1
        assert detailed["engine_model"]["engines_of_this_process"][0]["steps"] == 6


@pytest.mark.parametrize("changes, param", [
    ({"port": 9}, "port"),
    ({"admin_key": "other"}, "admin_key"),
    ({"error_rate": 2.0}, "error_rate"),
    ({"itl_ms": "fast"}, "itl_ms"),
    ({"max_num_seqs": 4, "max_num_batched_tokens": 2}, "max_num_seqs"),
])
def test_a_bad_change_is_a_400_naming_it_and_changes_nothing(changes, param):
    with running_app(Settings(zero_latency=True, admin_key=KEY)) as (base_url, _):
        response = httpx.patch(base_url + "/admin/config", headers=ADMIN, json=changes)
        assert response.status_code == 400
        assert response.json()["error"]["param"] == param
        assert httpx.get(base_url + "/admin/config", headers=ADMIN).json()["generation"] == 0


def test_a_body_that_is_not_an_object_of_settings_is_a_400():
    with running_app(Settings(zero_latency=True, admin_key=KEY)) as (base_url, _):
        for body in (b"[1, 2]", b"{", b"{}", b"[" * 5000 + b"]" * 5000):
            response = httpx.patch(base_url + "/admin/config", headers=ADMIN, content=body)
            assert response.status_code == 400 and set(response.json()["error"]) == {"message", "type", "param",
                                                                                       "code"}
        response = httpx.patch(base_url + "/admin/config", headers=ADMIN, content=b" " * 70_000)
        assert response.status_code == 413
        assert httpx.get(base_url + "/admin/config", headers=ADMIN).json()["generation"] == 0


def test_reset_prefix_cache_drops_what_no_request_uses():
    with running_app(Settings(zero_latency=True, admin_key=KEY, kv_workers=1)) as (base_url, _):
        body = {"model": "openai/gpt-oss-120b", "prompt": "the same long prompt " * 40, "max_tokens": 1}

        def cached() -> int:
            answer = httpx.post(base_url + "/v1/completions", json=body).json()
            return answer["usage"]["prompt_tokens_details"]["cached_tokens"]

        assert cached() == 0 and cached() > 0
        response = httpx.post(base_url + "/admin/reset-prefix-cache", headers=ADMIN)
        assert response.status_code == 200 and response.json()["prefix_cache_resets"] == 1
        assert httpx.get(base_url + "/kv-cache-metrics").json()["kv_cache"]["blocks_used"] == 0
        assert cached() == 0


def test_a_change_reaches_every_worker_process():
    with running_cli("--workers", "2", "--zero-latency", "--admin-key", KEY, "--kv-workers", "2",
                     "--error-kinds", "server_error") as base_url:
        httpx.patch(base_url + "/admin/config", headers=ADMIN, json={"error_rate": 1.0}).raise_for_status()

        def every_worker_control() -> dict[int, dict]:
            seen = {}
            for pid in base_url.each_worker(2):
                with httpx.Client(base_url=base_url) as client:
                    seen[pid] = client.get("/health/detailed").json()["runtime_control"]
            return seen

        seen = every_worker_control()
        assert {control["process"] for control in seen.values()} == set(seen)
        assert all(control["generation"] == 1 and control["settings"]["error_rate"] == 1.0
                   for control in seen.values())
        statuses = set()
        for _ in base_url.each_worker(2):
            with httpx.Client(base_url=base_url) as client:
                statuses.update(client.post("/v1/chat/completions", json=CHAT).status_code for _ in range(5))
        assert statuses == {500}
        httpx.post(base_url + "/admin/reset-prefix-cache", headers=ADMIN).raise_for_status()
        assert all(control["prefix_cache_resets"] == 1 for control in every_worker_control().values())
        pids = set(seen)
    # every change is in the server's log: by the process that made it, and as each process applied it
    assert "runtime settings changed (generation 1, by admin in process" in base_url.output
    assert "'error_rate': '0.0 -> 1.0'" in base_url.output
    applied = {pid for pid in pids if f"runtime settings generation 1 applied in process {pid}:" in base_url.output}
    assert applied == pids
    assert "prefix caches reset (generation 2, by admin in process" in base_url.output
