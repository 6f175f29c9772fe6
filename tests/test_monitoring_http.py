"""The monitoring endpoints as clients meet them: negotiation, HEAD, downloads, health levels."""

from __future__ import annotations

import csv
import io

import msgspec
import pytest
from litestar.testing import TestClient

from fakeai.api.monitoring import choose_format
from fakeai.app import create_app
from fakeai.config import Settings
from fakeai.exporters import CSV_COLUMNS
from fakeai.metrics import MetricsSnapshot, health_status

MODEL = "openai/gpt-oss-120b"
MONITORING = ["/metrics", "/metrics/prometheus", "/prometheus/metrics", "/metrics/csv", "/metrics/snapshot", "/health",
              "/health/detailed"]
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(Settings(zero_latency=True))) as test_client:
        test_client.post("/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
        yield test_client


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        (BROWSER_ACCEPT, "application/json"),
        ("application/json", "application/json"),
        (PROMETHEUS_ACCEPT, "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        ("text/plain", "text/plain; version=0.0.4; charset=utf-8"),
        ("text/plain;version=0.0.4;q=0.5,*/*;q=0.1", "text/plain; version=0.0.4; charset=utf-8"),
        ("application/json;q=0.9,text/plain;q=0.2", "application/json"),
    ],
)
def test_metrics_negotiates_its_format(client, accept: str | None, content_type: str) -> None:
    headers = {"Accept": accept} if accept is not None else {}
    response = client.get("/metrics", headers=headers)
    if accept is None:  # httpx sends */* when told nothing; check the negotiation itself too
        assert choose_format(None, "json") == "json"
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["vary"] == "Accept"


def test_prometheus_can_be_the_default_at_metrics() -> None:
    with TestClient(create_app(Settings(metrics_format="prometheus"))) as client:
        assert client.get("/metrics").headers["content-type"].startswith("text/plain; version=0.0.4")
        assert client.get("/metrics", headers={"Accept": "application/json"}).json()["requests"] == {}


@pytest.mark.parametrize("path", ["/metrics/prometheus", "/prometheus/metrics"])
def test_prometheus_paths_always_send_text(client, path: str) -> None:
    assert client.get(path).headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert client.get(path, headers={"Accept": "application/json"}).text.startswith("# HELP")
    assert client.get(path, headers={"Accept": PROMETHEUS_ACCEPT}).text.endswith("# EOF\n")


@pytest.mark.parametrize("path", MONITORING)
def test_head_answers_like_get_without_a_body(client, path: str) -> None:
    get = client.get(path)
    head = client.head(path)
    assert head.status_code == 200 and head.content == b""
    for header in ("content-type", "content-disposition", "vary", "cache-control"):
        assert head.headers.get(header) == get.headers.get(header)
    assert int(head.headers["content-length"]) > 0


def test_the_snapshot_endpoint_sends_the_snapshot_itself(client) -> None:
    response = client.get("/metrics/snapshot")
    assert response.headers["content-type"] == "application/vnd.msgpack"
    snapshot = msgspec.msgpack.decode(response.content, type=MetricsSnapshot)
    chat = snapshot.endpoints["/v1/chat/completions"]
    assert chat.requests_total == 1 and chat.errors_total == {}
    document = client.get("/metrics").json()  # the same numbers the JSON renders
    assert document["totals"]["/v1/chat/completions"]["completion_tokens"] == chat.completion_tokens_total
    assert document["totals"]["/v1/chat/completions"]["prompt_tokens"] == chat.prompt_tokens_total


def test_csv_downloads_as_a_file_with_the_seeds_columns(client) -> None:
    response = client.get("/metrics/csv")
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="fakeai-metrics.csv"'
    rows = list(csv.reader(io.StringIO(response.text)))
    assert tuple(rows[0]) == CSV_COLUMNS == (
        "metric_type", "endpoint", "rate", "avg_latency", "min_latency", "max_latency",
        "p50_latency", "p90_latency", "p99_latency",
    )
    assert {row[0] for row in rows[1:]} == {"requests", "responses", "tokens", "errors", "ttft",
                                            "tokens_per_second", "itl", "kv_prompt_tokens", "kv_cached_tokens"}
    assert all(len(row) == len(CSV_COLUMNS) for row in rows)
    assert response.text.endswith("\r\n")


def test_monitoring_is_counted_when_asked() -> None:
    with TestClient(create_app(Settings(record_monitoring=True))) as client:
        client.get("/health")
        assert client.get("/metrics").json()["totals"]["/health"]["requests"] == 1


@pytest.mark.parametrize(
    ("percentage", "status"),
    [(0.0, "healthy"), (4.999, "healthy"), (5.0, "degraded"), (7.5, "degraded"), (10.0, "degraded"),
     (10.001, "unhealthy"), (100.0, "unhealthy")],
)
def test_health_boundaries(percentage: float, status: str) -> None:
    assert health_status(percentage) == status


@pytest.mark.parametrize(
    ("requests", "failed", "status"),
    [(21, 1, "healthy"), (20, 1, "degraded"), (20, 2, "degraded"), (20, 3, "unhealthy")],
)
def test_health_through_http(requests: int, failed: int, status: str) -> None:
    settings = Settings(zero_latency=True, fail_first=failed, error_kinds=("server_error",), window_seconds=60)
    with TestClient(create_app(settings)) as client:
        for _ in range(requests):
            client.post("/v1/completions", json={"model": MODEL, "prompt": "x", "max_tokens": 1})
        detailed = client.get("/health/detailed").json()
        assert detailed["metrics_summary"]["error_rate_percentage"] == pytest.approx(100 * failed / requests)
        assert detailed["status"] == client.get("/health").json()["status"] == status
