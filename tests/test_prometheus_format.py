"""The Prometheus exposition is valid: promtool, prometheus_client's parsers, and invariants."""

from __future__ import annotations

import math
import shutil
import subprocess

import pytest
from litestar.testing import TestClient
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from fakeai.app import create_app
from fakeai.config import Settings
from fakeai.exporters import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, render_prometheus
from fakeai.metrics import QUANTILES, MetricsRegistry, MetricsSnapshot
from fakeai.metrics.schema import METRICS, Metric

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


# -- what is kept between scrapes never shows a stale figure --------------------------------


def _declared_samples(snapshot: MetricsSnapshot) -> dict[tuple, float]:
    """Every sample the declarations' readings of ``snapshot`` make, by (name, labels)."""
    expected: dict[tuple, float] = {}
    for metric in METRICS:
        if not metric.exported:
            continue
        for labels, value in metric.reading(snapshot):
            key = (metric.name, *labels)
            if metric.kind == "histogram":
                for bound, count in zip((*value.bounds, math.inf), value.cumulative):
                    expected[(f"{metric.name}_bucket", *labels, ("le", bound))] = count
                expected[(f"{metric.name}_sum", *labels)] = value.sum
                expected[(f"{metric.name}_count", *labels)] = value.count
            elif metric.kind == "summary":
                for q, figure in zip(QUANTILES, (value.window.p50, value.window.p90, value.window.p99)):
                    expected[(metric.name, *labels, ("quantile", q))] = figure
                expected[(f"{metric.name}_sum", *labels)] = value.sum
                expected[(f"{metric.name}_count", *labels)] = value.count
            else:
                expected[key] = value
    return expected


def _shown_samples(exposition: str) -> dict[tuple, float]:
    shown = {}
    for family in parse_text(exposition):
        for sample in family.samples:
            labels = tuple((k, float(v) if k in ("le", "quantile") else v) for k, v in sample.labels.items())
            shown[(sample.name, *labels)] = sample.value
    return shown


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def test_scrape_after_scrape_every_sample_is_the_snapshots_reading() -> None:
    """Headers and series prefixes are kept between scrapes: each scrape still shows exactly
    its own snapshot's figures, for new series (endpoint, status, model, finish reason) too."""
    clock = [100.0]
    registry = MetricsRegistry(window_seconds=10.0, max_samples=256, clock=lambda: clock[0], started_at=0.0)
    scrapes = []
    for step, (endpoint, status, model, reason) in enumerate([
        ("/v1/chat/completions", 200, MODEL, "stop"),
        ("/v1/completions", 500, MODEL, "length"),
        ("/v1/chat/completions", 429, HOSTILE_MODEL, "stop"),
        ("/v1/embeddings", 200, "openai/gpt-oss-20b", "abort"),
    ]):
        clock[0] += 4.0  # earlier requests leave the window as later ones arrive
        registry.request_started(model)
        registry.record(endpoint, 0.01 * (step + 1), status, 10 + step, 5 * step, model=model,
                        finish_reason=reason)
        snapshot = registry.snapshot()
        scrapes.append((snapshot, render_prometheus(snapshot).decode()))
    for snapshot, text in scrapes:
        expected, shown = _declared_samples(snapshot), _shown_samples(text)
        assert shown.keys() == expected.keys()
        assert all(_same(shown[key], float(expected[key])) for key in expected), [
            key for key in expected if not _same(shown[key], float(expected[key]))]


def test_a_kept_header_belongs_to_its_own_declaration() -> None:
    """Two declarations of one name (a test's, a reloaded schema's) each render their own help."""
    registry = MetricsRegistry(window_seconds=5.0, max_samples=16)
    snapshot = registry.snapshot()
    for help_text in ("First meaning.", "Second meaning."):
        metric = Metric(name="fakeai_test_meaning", kind="gauge", help=help_text, read=lambda s: [((), 1)])
        text = render_prometheus(snapshot, metrics=(metric,)).decode()
        assert text == (f"# HELP fakeai_test_meaning {help_text}\n"
                        "# TYPE fakeai_test_meaning gauge\nfakeai_test_meaning 1\n")
