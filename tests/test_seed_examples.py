"""The seed's examples, as written, against a server with the default settings.

The seed's monitor and load test loop forever or for 100 requests; their bodies run here
once or a few times, unchanged but for the base URL.
"""

from __future__ import annotations

import asyncio
import csv
import io

import httpx
import pytest

from fakeai.config import Settings
from tests.servers import running_app


@pytest.fixture(scope="module")
def base_url():
    with running_app(Settings()) as (url, _):  # the defaults, latency included
        yield url


def test_the_python_monitor_reads_what_it_prints(base_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # from "Monitoring with Python", one pass of its loop
    response = httpx.get(f"{base_url}/health/detailed")
    health = response.json()

    print(f"Status: {health['status']}")
    print(f"Requests/sec: {health['metrics_summary']['total_requests_per_second']:.2f}")
    print(f"Error rate: {health['metrics_summary']['error_rate_percentage']:.2f}%")
    print(f"Avg latency: {health['metrics_summary']['average_latency_seconds']*1000:.2f}ms")
    assert "Status: healthy" in capsys.readouterr().out


def test_the_load_test_requests_and_monitor(base_url: str) -> None:
    # from "Load Testing with Metrics": its request and its monitor's reads, three requests
    async def load_test() -> float:
        async with httpx.AsyncClient() as client:
            for _ in range(3):
                response = await client.post(
                    f"{base_url}/v1/chat/completions",
                    json={
                        "model": "openai/gpt-oss-120b",
                        "messages": [{"role": "user", "content": "Hello!"}]
                    }
                )
                assert response.status_code == 200
            response = await client.get(f"{base_url}/health/detailed")
            health = response.json()
            print(f"RPS: {health['metrics_summary']['total_requests_per_second']:.2f}, "
                  f"Latency: {health['metrics_summary']['average_latency_seconds']*1000:.2f}ms")
            return health["metrics_summary"]["total_requests_per_second"]

    assert asyncio.run(load_test()) > 0


@pytest.mark.parametrize("path", ["/health", "/health/detailed", "/metrics", "/metrics/csv", "/metrics/prometheus"])
def test_the_seeds_endpoints_answer(base_url: str, path: str) -> None:
    assert httpx.get(base_url + path).status_code == 200


def test_the_curl_exports(base_url: str) -> None:
    # curl http://localhost:8000/metrics | jq '.responses'
    assert "responses" in httpx.get(f"{base_url}/metrics").json()
    # curl http://localhost:8000/metrics/csv > metrics.csv
    header = next(csv.reader(io.StringIO(httpx.get(f"{base_url}/metrics/csv").text)))
    assert header[:3] == ["metric_type", "endpoint", "rate"]
    # curl http://localhost:8000/metrics/prometheus > metrics.prom
    assert "# TYPE fakeai_requests_per_second gauge" in httpx.get(f"{base_url}/metrics/prometheus").text
