"""The new endpoints (Responses, Messages, /tokenize, /detokenize) in every metric format and on
the dashboard's endpoint table: the same counts everywhere, as sent."""

from __future__ import annotations

import csv
import io

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakeai.config import Settings
from tests.servers import eventually, running_app

MODEL = "openai/gpt-oss-120b"
HELLO = [{"role": "user", "content": "Hello!"}]
TRAFFIC = [
    # (endpoint, body, status)
    ("/v1/responses", {"model": MODEL, "input": "Hi", "max_output_tokens": 5, "ignore_eos": True}, 200),
    ("/v1/responses", {"model": MODEL, "input": "Hi", "max_output_tokens": 6, "ignore_eos": True, "stream": True},
     200),
    ("/v1/responses", {"model": MODEL, "input": "Hi", "previous_response_id": "resp_1"}, 400),
    ("/v1/messages", {"model": MODEL, "messages": HELLO, "max_tokens": 7, "ignore_eos": True}, 200),
    ("/v1/messages", {"model": MODEL, "messages": HELLO, "max_tokens": 8, "ignore_eos": True, "stream": True}, 200),
    ("/v1/messages", {"model": "no/such-model", "messages": HELLO, "max_tokens": 8}, 404),
    ("/tokenize", {"prompt": "Hello there"}, 200),
    ("/tokenize", {}, 400),
    ("/detokenize", {"tokens": [1, 2, 3]}, 200),
]
SENT = {
    "/v1/responses": {"requests": 3, "errors": {"400": 1}, "completion_tokens": 11},
    "/v1/messages": {"requests": 3, "errors": {"404": 1}, "completion_tokens": 15},
    "/tokenize": {"requests": 2, "errors": {"400": 1}, "completion_tokens": 0},
    "/detokenize": {"requests": 1, "errors": {}, "completion_tokens": 0},
}


@pytest.fixture(scope="module")
def served():
    settings = Settings(ttft_ms=2, itl_ms=1, ttft_jitter=0, itl_jitter=0, window_seconds=3600)
    with running_app(settings) as (base_url, app), httpx.Client(base_url=base_url, timeout=10) as client:
        for path, body, status in TRAFFIC:
            assert client.post(path, json=body).status_code == status, (path, body)
        registry = app.state.metrics
        eventually(lambda: sum(ep.requests_total for ep in registry.snapshot().endpoints.values()) == len(TRAFFIC),
                   "every request was recorded")
        yield client


def test_json_metrics_count_each_endpoint(served: httpx.Client) -> None:
    document = served.get("/metrics", headers={"Accept": "application/json"}).json()
    for endpoint, sent in SENT.items():
        assert document["responses"][endpoint]["count"] == sent["requests"]
        assert document["totals"][endpoint]["requests"] == sent["requests"]
        assert document["totals"][endpoint]["completion_tokens"] == sent["completion_tokens"]
        assert document["errors_by_status"].get(endpoint, {}) == sent["errors"]
        assert document["errors"][endpoint]["count"] == sum(sent["errors"].values())
    assert document["streaming_stats"]["completed_streams"] == 2 and document["streaming_stats"]["ttft"]["count"] == 2


def test_prometheus_counts_each_endpoint(served: httpx.Client) -> None:
    families = {family.name: family for family in text_string_to_metric_families(served.get("/metrics/prometheus").text)}
    for endpoint, sent in SENT.items():
        assert [s.value for s in families["fakeai_requests"].samples
                if s.labels.get("endpoint") == endpoint] == [sent["requests"]]
        errors = {s.labels["status"]: s.value for s in families["fakeai_errors"].samples
                  if s.labels.get("endpoint") == endpoint}
        assert errors == sent["errors"]
        completion = [s.value for s in families["fakeai_tokens"].samples
                      if s.labels.get("endpoint") == endpoint and s.labels["kind"] == "completion"]
        assert completion == [sent["completion_tokens"]]


def test_csv_has_a_row_for_each_endpoint(served: httpx.Client) -> None:
    rows = list(csv.DictReader(io.StringIO(served.get("/metrics/csv").text)))
    for endpoint in SENT:
        assert {row["metric_type"] for row in rows if row["endpoint"] == endpoint} >= {"responses", "tokens", "errors"}


def test_the_dashboards_endpoint_table_lists_each_endpoint(served: httpx.Client) -> None:
    from tests.browser import chromium

    with chromium() as browser:
        page = browser.new_page()
        page.goto(str(served.base_url) + "/dashboard?refresh=0")
        page.wait_for_function("Number(document.body.dataset.refreshes) >= 1")
        for endpoint, sent in SENT.items():
            row = page.locator(f'tr[data-endpoint="{endpoint}"]')
            assert row.count() == 1, f"{endpoint} has no row"
            assert row.locator(".badge").text_content() == str(sum(sent["errors"].values()))
        page.close()
