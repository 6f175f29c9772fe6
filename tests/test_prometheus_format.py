"""The Prometheus exposition is valid: promtool, prometheus_client's parsers, and invariants."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from litestar.testing import TestClient
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from fakeai.app import create_app
from fakeai.config import Settings
from fakeai.exporters import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE

MODEL = "openai/gpt-oss-120b"
HOSTILE_MODEL = 'odd "model" \\ with\nnewline'
OPENMETRICS_ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"


@pytest.fixture(scope="module")
def client():
    settings = Settings(zero_latency=True, error_rate=0.3, stream_error_rate=0.3, seed=5, accept_any_model=True)
    with TestClient(create_app(settings)) as test_client:
        chat = {"model": MODEL, "messages": [{"role": "user", "content": 'quote " and \\ and\nnewline'}]}
        for index in range(40):
            test_client.post("/v1/chat/completions", json={**chat, "stream": index % 2 == 0, "max_tokens": 20})
            test_client.post("/v1/completions", json={"model": "openai/gpt-oss-20b", "prompt": "x", "max_tokens": 3})
        test_client.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": ["a", "b"]})
        test_client.get("/v1/nowhere")
        test_client.post("/v1/completions", json={"model": HOSTILE_MODEL, "prompt": "x", "max_tokens": 2})
        yield test_client


@pytest.fixture(scope="module")
def text(client) -> str:
    response = client.get("/metrics/prometheus")
    assert response.headers["content-type"] == TEXT_CONTENT_TYPE
    return response.text


@pytest.fixture(scope="module")
def openmetrics(client) -> str:
    response = client.get("/metrics/prometheus", headers={"Accept": OPENMETRICS_ACCEPT})
    assert response.headers["content-type"] == OPENMETRICS_CONTENT_TYPE
    return response.text


def test_promtool_reports_only_the_vllm_colon_names(text: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/test.sh installs Debian's prometheus package"
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode in (0, 3), problems
    assert problems, "the vllm: families should draw promtool's colon warning"
    assert all(line.startswith("vllm:") and "should not contain ':'" in line for line in problems), problems


def test_openmetrics_parses_and_ends_with_eof(openmetrics: str) -> None:
    assert openmetrics.endswith("# EOF\n")
    families = {family.name: family for family in parse_openmetrics(openmetrics)}
    assert families["fakeai_requests"].type == "counter"
    assert families["fakeai_request_duration_seconds"].type == "histogram"
    assert families["fakeai_latency_seconds"].type == "summary"
    assert families["vllm:request_success"].type == "counter"


@pytest.mark.parametrize("fixture", ["text", "openmetrics"])
def test_no_duplicate_series_and_sound_histograms(fixture: str, request: pytest.FixtureRequest) -> None:
    exposition = request.getfixturevalue(fixture)
    families = list((parse_openmetrics if fixture == "openmetrics" else parse_text)(exposition))
    seen = set()
    for family in families:
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in seen, f"duplicate series {key}"
            seen.add(key)
        if family.type != "histogram":
            continue
        series: dict[tuple, list[tuple[float, float]]] = {}
        counts: dict[tuple, float] = {}
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            if sample.name.endswith("_bucket"):
                series.setdefault(labels, []).append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_count"):
                counts[labels] = sample.value
        for labels, buckets in series.items():
            values = [value for _, value in sorted(buckets)]
            assert values == sorted(values), f"{family.name}{labels}: buckets decrease"
            assert sorted(buckets)[-1][0] == float("inf")
            assert values[-1] == counts[labels], f"{family.name}{labels}: +Inf != _count"
    assert any(name == "fakeai_requests_total" for name, _ in seen)


@pytest.mark.parametrize("fixture", ["text", "openmetrics"])
def test_label_values_are_escaped(fixture: str, request: pytest.FixtureRequest) -> None:
    exposition = request.getfixturevalue(fixture)
    families = (parse_openmetrics if fixture == "openmetrics" else parse_text)(exposition)
    names = {s.labels.get("model_name") for f in families if f.name.startswith("vllm:") for s in f.samples}
    assert HOSTILE_MODEL in names, "a model name with quotes, backslash and newline survives the round trip"
