"""Cross-origin requests: a page on another origin calls the API and reads /metrics, in Chromium;
preflights on every route, refused ones, and what is (not) counted, over HTTP."""

from __future__ import annotations

import httpx
import pytest

from fakeai.config import Settings, SettingsError, settings_from_env
from tests.browser import chromium, serving_page
from tests.servers import running_app

CHAT = "/v1/chat/completions"
MODEL = "openai/gpt-oss-120b"
PAGE = "<!doctype html><title>another origin</title><p>a page that is not fakeai's</p>"

CALL_FAKEAI = """
async ([api, key]) => {
  const ask = async (body) => {
    try {
      const response = await fetch(api + "/v1/chat/completions", {
        method: "POST",  // with JSON and an Authorization header: the browser sends a preflight first
        headers: {"Content-Type": "application/json", "Authorization": "Bearer " + key},
        body: JSON.stringify(body),
      });
      return {status: response.status, retryAfter: response.headers.get("Retry-After"), text: await response.text()};
    } catch (error) {
      return {error: String(error)};
    }
  };
  const read = async (path) => {
    try {
      const response = await fetch(api + path);
      return {status: response.status, json: await response.json()};
    } catch (error) {
      return {error: String(error)};
    }
  };
  const body = {model: "openai/gpt-oss-120b", messages: [{role: "user", content: "Hi from elsewhere"}], max_tokens: 4};
  const first = await ask(body);
  const second = await ask(body);
  const streamed = await ask({...body, stream: true});
  const metrics = await read("/metrics");
  return {first, second, streamed, metrics};
}
"""


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def call_from(browser, page_url: str, api: str, key: str = "unused") -> dict:
    page = browser.new_page()
    try:
        page.goto(page_url)
        return page.evaluate(CALL_FAKEAI, [api, key])
    finally:
        page.close()


def origin_of(url: str) -> str:
    return url.rstrip("/")


def test_a_page_on_another_origin_calls_the_api_and_reads_metrics(browser) -> None:
    settings = Settings(zero_latency=True, api_keys=("browser-key",), fail_first=1, error_kinds=("rate_limit",),
                        retry_after_seconds=7)
    with serving_page(PAGE) as page_url, running_app(settings) as (api, app):
        assert origin_of(page_url) != api
        seen = call_from(browser, page_url, api, "browser-key")
        first, second, streamed, metrics = seen["first"], seen["second"], seen["streamed"], seen["metrics"]
        assert first["status"] == 429 and first["retryAfter"] == "7", first  # Retry-After is readable
        assert '"rate_limit_exceeded"' in first["text"] or "rate_limit" in first["text"]
        assert second["status"] == 200 and '"completion_tokens":4' in second["text"].replace(" ", ""), second
        assert streamed["status"] == 200 and streamed["text"].endswith("data: [DONE]\n\n"), streamed
        assert metrics["status"] == 200, metrics
        # The page read what the server counted: its three calls, and nothing for the preflights.
        assert metrics["json"]["totals"] == {CHAT: {**metrics["json"]["totals"][CHAT], "requests": 3, "errors": 1}}
        assert metrics["json"]["streaming_stats"]["completed_streams"] == 1
        assert set(app.state.metrics.snapshot().endpoints) == {CHAT}


def test_a_locked_down_origin_list_refuses_other_pages(browser) -> None:
    with serving_page(PAGE) as allowed_page, serving_page(PAGE) as other_page:
        settings = Settings(zero_latency=True, cors_origins=(origin_of(allowed_page),))
        with running_app(settings) as (api, app):
            refused = call_from(browser, other_page, api)
            for name in ("first", "second", "streamed", "metrics"):
                assert refused[name] == {"error": "TypeError: Failed to fetch"}, (name, refused[name])
            # The preflight was refused, so the browser never sent the chat requests.
            assert app.state.metrics.snapshot().endpoints == {}

            allowed = call_from(browser, allowed_page, api)
            assert [allowed[name]["status"] for name in ("first", "second", "streamed", "metrics")] == [200] * 4
            assert allowed["metrics"]["json"]["totals"][CHAT]["requests"] == 3


PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,authorization"}


@pytest.mark.parametrize("record_monitoring", [False, True])
def test_every_route_answers_a_preflight_which_is_not_counted(record_monitoring: bool) -> None:
    paths = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/v1/models/x",
             "/metrics", "/metrics/prometheus", "/metrics/csv", "/metrics/history", "/health", "/health/detailed",
             "/kv-cache/metrics", "/dashboard", "/dashboard/dashboard.js"]
    settings = Settings(api_keys=("k",), record_monitoring=record_monitoring)
    with running_app(settings) as (api, app), httpx.Client(base_url=api, timeout=10) as client:
        for path in paths:
            answer = client.options(path, headers={"Origin": "http://page.test", **PREFLIGHT})
            assert answer.status_code == 204, (path, answer.status_code, answer.text)
            assert answer.headers["access-control-allow-origin"] == "*"
            assert "POST" in answer.headers["access-control-allow-methods"]
            assert {"authorization", "content-type"} <= {
                name.strip().lower() for name in answer.headers["access-control-allow-headers"].split(",")}
            assert answer.headers["access-control-max-age"] == "600"
        assert app.state.metrics.snapshot().endpoints == {}, "a preflight is no request of any endpoint"
        # The request itself still needs the key; its answer carries the CORS headers.
        unauthorised = client.get("/v1/models", headers={"Origin": "http://page.test"})
        assert unauthorised.status_code == 401 and unauthorised.headers["access-control-allow-origin"] == "*"


def test_refused_preflights_get_an_openai_error_naming_what_was_not_allowed() -> None:
    settings = Settings(cors_origins=("http://localhost:*", "https://ui.example"), cors_methods=("GET", "POST"),
                        cors_headers=("content-type",))
    with running_app(settings) as (api, app), httpx.Client(base_url=api, timeout=10) as client:
        def preflight(origin: str, method: str = "POST", headers: str = "content-type") -> httpx.Response:
            return client.options(CHAT, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                                 "Access-Control-Request-Headers": headers})

        accepted = preflight("http://localhost:5173")  # `*` matches the port
        assert accepted.status_code == 204
        assert accepted.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert accepted.headers["vary"] == "Origin"
        for answer, what in ((preflight("http://evil.example"), "Origin"), (preflight("https://ui.example", "DELETE"),
                             "method"), (preflight("https://ui.example", headers="authorization"), "headers")):
            assert answer.status_code == 400
            error = answer.json()["error"]
            assert error["code"] == "cors_refused" and error["type"] == "invalid_request_error"
            assert f"Disallowed CORS {what}" in error["message"] and "--cors-origins" in error["message"]
        assert app.state.metrics.snapshot().endpoints == {}

        # Simple requests are served (CORS cannot stop them), but only a listed origin may read them.
        listed = client.get("/metrics", headers={"Origin": "https://ui.example"})
        other = client.get("/metrics", headers={"Origin": "http://evil.example"})
        assert listed.headers["access-control-allow-origin"] == "https://ui.example"
        assert "access-control-allow-origin" not in other.headers
        for answer in (listed, other):  # the answer differs by origin, and by Accept as before
            assert answer.headers["vary"] == "Accept, Origin"


def test_streams_carry_the_headers_once_each() -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True}
    with running_app(Settings(zero_latency=True)) as (api, _), httpx.Client(base_url=api, timeout=10) as client:
        for _ in range(3):
            answer = client.post(CHAT, json=body, headers={"Origin": "http://page.test"})
            assert answer.status_code == 200 and answer.text.endswith("data: [DONE]\n\n")
            assert answer.headers.get_list("access-control-allow-origin") == ["*"]
            assert answer.headers.get_list("access-control-expose-headers") == ["Retry-After"]
        plain = client.post(CHAT, json=body)
        assert not [name for name in plain.headers if name.startswith("access-control-")]


def test_without_origins_there_is_no_cors() -> None:
    settings = settings_from_env({"FAKEAI_CORS_ORIGINS": ""})
    assert settings.cors_origins == ()
    with running_app(settings) as (api, _), httpx.Client(base_url=api, timeout=10) as client:
        answer = client.options(CHAT, headers={"Origin": "http://page.test", **PREFLIGHT})
        assert answer.status_code == 405 and answer.json()["error"]["code"] == "method_not_allowed"
        metrics = client.get("/metrics", headers={"Origin": "http://page.test"})
        assert not [name for name in metrics.headers if name.startswith("access-control-")]


def test_credentials_need_named_origins() -> None:
    with pytest.raises(SettingsError, match="cors_allow_credentials"):
        settings_from_env({"FAKEAI_CORS_ALLOW_CREDENTIALS": "true"})
    settings = settings_from_env({"FAKEAI_CORS_ALLOW_CREDENTIALS": "true", "FAKEAI_CORS_ORIGINS": "https://ui.example"})
    with running_app(settings) as (api, _), httpx.Client(base_url=api, timeout=10) as client:
        answer = client.options(CHAT, headers={"Origin": "https://ui.example", **PREFLIGHT})
        assert answer.headers["access-control-allow-credentials"] == "true"
        assert answer.headers["access-control-allow-origin"] == "https://ui.example"
