"""The metric schema: one declaration per metric, and every format derived from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from fakeai.app import create_app
from fakeai.config import Settings
from fakeai.metrics.schema import METRICS, Metric, _check, metrics_table

README = Path(__file__).resolve().parent.parent / "README.md"
MODEL = "openai/gpt-oss-120b"


@pytest.fixture(scope="module")
def scraped() -> dict[str, str]:
    with TestClient(create_app(Settings(zero_latency=True))) as client:
        client.post("/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
        client.post("/v1/chat/completions", json={"model": MODEL, "stream": True,
                                                  "messages": [{"role": "user", "content": "hi"}]})
        text = client.get("/metrics/prometheus").text
        openmetrics = client.get("/metrics/prometheus", headers={"Accept": "application/openmetrics-text"}).text
    return {"text": text, "openmetrics": openmetrics}


def test_the_readme_metrics_reference_is_the_generated_one() -> None:
    assert metrics_table() in README.read_text(), "regenerate it with scripts/update-readme-metrics.py"


def test_the_exposition_has_exactly_the_declared_families_in_their_order(scraped: dict[str, str]) -> None:
    declared = [(metric.name, metric.kind) for metric in METRICS if metric.exported]
    shown = [tuple(line.split()[2:4]) for line in scraped["text"].splitlines() if line.startswith("# TYPE ")]
    assert shown == declared


def test_help_and_unit_come_from_the_declarations(scraped: dict[str, str]) -> None:
    families = {family.name: family for family in text_string_to_metric_families(scraped["openmetrics"])}
    for metric in METRICS:
        if not metric.exported:
            continue
        family = families[metric.name.removesuffix("_total") if metric.kind == "counter" else metric.name]
        assert family.documentation == metric.help
        assert family.type == metric.kind
        expected_unit = metric.unit if family.name.endswith("_" + metric.unit) and metric.unit else ""
        assert family.unit == expected_unit


def test_samples_carry_the_declared_labels(scraped: dict[str, str]) -> None:
    families = {family.name: family for family in text_string_to_metric_families(scraped["openmetrics"])}
    extra = {"histogram": {"le"}, "summary": {"quantile"}}
    for metric in METRICS:
        if not metric.exported:
            continue
        family = families[metric.name.removesuffix("_total") if metric.kind == "counter" else metric.name]
        for sample in family.samples:
            names = set(sample.labels) - (extra.get(metric.kind, set()) if not sample.name.endswith(
                ("_sum", "_count")) else set())
            assert names == set(metric.labels), (metric.name, sample)


def test_histograms_use_their_declared_buckets(scraped: dict[str, str]) -> None:
    families = {family.name: family for family in text_string_to_metric_families(scraped["openmetrics"])}
    for metric in METRICS:
        if metric.kind == "histogram":
            bounds = [float(s.labels["le"]) for s in families[metric.name].samples if s.name.endswith("_bucket")]
            if bounds:
                assert bounds[: len(metric.buckets) + 1] == [*metric.buckets, float("inf")], metric.name


@pytest.mark.parametrize(
    "bad",
    [
        Metric(name="fakeai_requests", kind="counter", help="x", read=lambda s: []),
        Metric(name="fakeai-bad", kind="gauge", help="x", read=lambda s: []),
        Metric(name="fakeai_x_seconds", kind="histogram", help="x", read=lambda s: []),
        Metric(name="fakeai_y", kind="gauge", help="x", labels=("le",), read=lambda s: []),
        Metric(name="fakeai_z_seconds", kind="histogram", help="x", buckets=(2.0, 1.0), read=lambda s: []),
    ],
    ids=["counter-without-_total", "bad-name", "histogram-without-buckets", "reserved-label", "decreasing-buckets"],
)
def test_a_bad_declaration_is_refused_at_import(bad: Metric) -> None:
    with pytest.raises(ValueError):
        _check([bad])


def test_a_name_is_declared_once() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        _check([METRICS[0], METRICS[0]])
