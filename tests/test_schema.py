"""The metric schema: one declaration per metric, and every format derived from it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from fakeai.app import create_app
from fakeai.config import Settings
from fakeai.exporters.csv import render_csv
from fakeai.exporters.json import json_places, json_value, render_json
from fakeai.exporters.prometheus import render_prometheus
from fakeai.metrics import MetricsRegistry
from fakeai.metrics.instruments import DURATION_BUCKETS
from fakeai.metrics.labels import region_need
from fakeai.metrics.schema import DASHBOARD_PATHS, METRICS, Cell, Metric, _check, json_path, metrics_table

METRICS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
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


def test_the_documented_metrics_reference_is_the_generated_one() -> None:
    block = re.search(r"<!-- metrics reference: [^\n]*-->\n(.*?)<!-- end of metrics reference -->\n",
                      METRICS_PAGE.read_text(), re.S)
    assert block, "docs/metrics.md lost its metrics reference markers"
    assert block[1] == metrics_table(), "regenerate it with scripts/update-reference-docs.py"


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


# -- a new declaration appears in every format --------------------------------------------

REQUESTS_SEEN = Metric(
    name="fakeai_test_widgets_total", kind="counter", unit="requests", help="Widgets seen, by endpoint.",
    labels=("endpoint",), cell=Cell("c|test_widgets", "endpoint"), json=("widgets.{endpoint}.seen",),
)
LATENCY_SEEN = Metric(
    name="fakeai_test_gadget_seconds", kind="histogram", unit="seconds", help="Gadget durations.",
    buckets=DURATION_BUCKETS, cell=Cell("h|test_gadget", bounds="duration"), json=("gadgets",),
)


def test_a_new_declaration_appears_in_every_format_without_an_exporter_change() -> None:
    metrics = (*METRICS, REQUESTS_SEEN, LATENCY_SEEN)
    registry = MetricsRegistry(window_seconds=5.0, max_samples=64, metrics=metrics)
    registry.record("/v1/chat/completions", 0.01, 200, 3, 4)
    registry.add("fakeai_test_widgets_total", 2, "/v1/chat/completions")  # the one line that records it
    registry.add("fakeai_test_widgets_total", 5, "/v1/chat/completions")
    registry.observe("fakeai_test_gadget_seconds", 0.003)
    snapshot = registry.snapshot()

    text = render_prometheus(snapshot, metrics=metrics).decode()
    assert "# HELP fakeai_test_widgets_total Widgets seen, by endpoint.\n" in text
    assert "# TYPE fakeai_test_widgets_total counter\n" in text
    assert 'fakeai_test_widgets_total{endpoint="/v1/chat/completions"} 7.0\n' in text
    assert 'fakeai_test_gadget_seconds_bucket{le="0.0025"} 0\n' in text
    assert 'fakeai_test_gadget_seconds_bucket{le="0.005"} 1\n' in text
    openmetrics = {family.name: family for family in text_string_to_metric_families(
        render_prometheus(snapshot, openmetrics=True, metrics=metrics).decode())}
    assert openmetrics["fakeai_test_widgets"].type == "counter"
    assert [s.value for s in openmetrics["fakeai_test_widgets"].samples if s.name.endswith("_total")] == [7.0]
    assert openmetrics["fakeai_test_gadget_seconds"].unit == "seconds"

    document = msgspec.json.decode(render_json(snapshot, metrics=metrics))
    assert document["widgets"] == {"/v1/chat/completions": {"seen": 7.0}}
    assert document["gadgets"] == {"sum": 0.003, "count": 1}
    assert document["requests"]["/v1/chat/completions"]["count"] == 1  # the seed's sections unchanged

    assert metrics_table(metrics).count("fakeai_test_") == 2
    # and the region made room for it: the capacity arithmetic counts the new cells
    assert region_need(1, endpoints=1, kv_workers=0, metrics=metrics) == tuple(
        a + b for a, b in zip(region_need(1, endpoints=1, kv_workers=0), (2, 1 + len(DURATION_BUCKETS) + 3)))


IN_WINDOW = Metric(
    name="fakeai_test_window_requests", kind="gauge", unit="requests", help="Requests in the window, by endpoint.",
    labels=("endpoint",), read=lambda s: [((("endpoint", path),), ep.latency.count) for path, ep in s.endpoints.items()],
    json=("summary.window_requests.{endpoint}",), csv="window_requests",
)
POLICY_AGAIN = Metric(name="test_policy", kind="value", help="The routing policy, again.",
                      read=lambda s: [((), s.kv_cache.policy)], json=("smart_routing.policy_again",))


def test_a_new_declaration_reading_the_snapshot_appears_in_every_format_it_names() -> None:
    """A gauge read from the snapshot (no cell of its own) and a JSON-only value: one
    declaration each, no exporter changed."""
    metrics = (*METRICS, IN_WINDOW, POLICY_AGAIN)
    registry = MetricsRegistry(window_seconds=5.0, max_samples=64, metrics=metrics)
    registry.kv_cache.attach(model_name=MODEL, policy="round-robin", block_tokens=16)
    for _ in range(3):
        registry.record("/v1/chat/completions", 0.01, 200, 3, 4)
    snapshot = registry.snapshot()

    text = render_prometheus(snapshot, metrics=metrics).decode()
    assert ("# HELP fakeai_test_window_requests Requests in the window, by endpoint.\n"
            "# TYPE fakeai_test_window_requests gauge\n"
            'fakeai_test_window_requests{endpoint="/v1/chat/completions"} 3\n') in text
    assert "test_policy" not in text  # a value has no Prometheus family
    openmetrics = {family.name: family for family in text_string_to_metric_families(
        render_prometheus(snapshot, openmetrics=True, metrics=metrics).decode())}
    assert [s.value for s in openmetrics["fakeai_test_window_requests"].samples] == [3.0]

    document = msgspec.json.decode(render_json(snapshot, metrics=metrics))
    assert document["summary"]["window_requests"] == {"/v1/chat/completions": 3}
    assert list(document["summary"])[:-1] == list(msgspec.json.decode(render_json(snapshot))["summary"])
    assert document["smart_routing"]["policy_again"] == "round-robin"

    rows = render_csv(snapshot, metrics=metrics).decode().splitlines()
    assert "window_requests,/v1/chat/completions,3,0.0,0.0,0.0,0.0,0.0,0.0" in rows
    assert metrics_table(metrics).count("test_") == 2


def test_a_declared_csv_row_appears_in_the_csv() -> None:
    """CSV rows are the declarations that name one: a declared window row is rendered from it."""
    row = Metric(name="test_latency_again", kind="window", unit="seconds", help="Latency again.",
                 labels=("endpoint",), read=lambda s: [((("endpoint", p),), ep.latency) for p, ep in
                                                        s.endpoints.items()], csv="latency_again")
    registry = MetricsRegistry(window_seconds=5.0, max_samples=64)
    registry.record("/e", 0.25, 200, 1, 1)
    lines = render_csv(registry.snapshot(), metrics=(*METRICS, row)).decode().splitlines()
    assert lines[1].startswith("requests,/e,") and lines[5].startswith("latency_again,/e,")
    assert lines[5].split(",")[3:] == ["0.25"] * 6


# -- the JSON paths: declared ones exist, the dashboard binds only real ones --------------

DASHBOARD = Path(__file__).resolve().parent.parent / "fakeai" / "dashboard"


def _resolve(document: object, path: list) -> object:
    for part in path:
        if isinstance(document, list):
            document = document[int(part)]
        else:
            assert isinstance(document, dict) and str(part) in document, path
            document = document[str(part)]
    return document


@pytest.fixture(scope="module")
def metrics_document() -> dict:
    with TestClient(create_app(Settings(zero_latency=True, kv_workers=2))) as client:
        client.post("/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
        client.post("/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]})
        return client.get("/metrics").json()


def _concrete(path: str, document: dict) -> list[list[str]]:
    """Every concrete path of a declared one (each ``{label}`` part: every key there)."""
    paths: list[list] = [[]]
    for part in json_path(path)[0]:
        if "{" in part:  # every key there that the part's template matches
            template = re.compile(re.sub(r"\\\{\w+\\\}", ".+", re.escape(part)) + r"\Z")
            nodes = [(p, _resolve(document, p)) for p in paths]
            paths = [[*p, key] for p, node in nodes for key in (range(len(node)) if isinstance(node, list) else node)
                     if template.match(str(key))]
        else:
            paths = [[*p, part] for p in paths]
    return paths


def test_every_declared_json_path_exists_in_a_real_metrics_document(metrics_document: dict) -> None:
    for metric in METRICS:
        for path in metric.json:
            if "{status}" in path or "{finished_reason}" in path:
                path = path.rsplit(".", 1)[0]  # a map that is empty until such a request ends
            concrete = _concrete(path, metrics_document)
            assert concrete, (metric.name, path)
            for parts in concrete:
                _resolve(metrics_document, parts)


def test_every_dashboard_binding_exists_in_a_real_metrics_document(metrics_document: dict) -> None:
    html = (DASHBOARD / "index.html").read_text()
    script = (DASHBOARD / "dashboard.js").read_text()
    bound = [json.loads(match) for match in re.findall(r"data-metric='(\[[^']*\])'", html)]
    endpoint = next(iter(metrics_document["responses"]))
    for match in re.findall(r"\[(\"[a-z_]+\", (?:endpoint|index)[^\]]*)\]", script):
        parts = [part.strip() for part in match.split(",")]
        path = [json.loads(p) if p.startswith('"') else {"endpoint": endpoint, "index": 0}.get(p, p) for p in parts]
        if "field" in path:  # the loop over the distribution fields
            path = [*path[:-1], "p99"]
        bound.append(path)
    for field in re.findall(r'path\("([a-z_]+)"\)', script):
        bound.append(["smart_routing", "workers", 0, field])
    assert len(bound) > 30
    assert {tuple(map(str, path)) for path in bound} >= {tuple(map(str, path)) for path in map(list, DASHBOARD_PATHS)}
    for path in bound:
        _resolve(metrics_document, path)


# -- at every declared JSON path, the document holds the declaration's reading -------------


@pytest.fixture(scope="module")
def busy_snapshot():
    """A snapshot with every kind of label value: endpoints, statuses, models, finish reasons,
    streams completed and failed, KV workers."""
    clock = [1000.0]
    registry = MetricsRegistry(window_seconds=60.0, max_samples=256, clock=lambda: clock[0], started_at=900.0)
    registry.kv_cache.attach(model_name=MODEL, policy="kv-aware", block_tokens=16)
    for index, (endpoint, status, reason, stream) in enumerate([
        ("/v1/chat/completions", 200, "stop", True), ("/v1/chat/completions", 500, None, False),
        ("/v1/completions", 200, "length", None), ("/v1/completions", 429, None, None),
        ("/v1/chat/completions", 200, "abort", False),
    ]):
        clock[0] += 1.0
        registry.request_started(MODEL if index % 2 else "other/model")
        if stream is not None:
            registry.stream_started()
        registry.record(endpoint, 0.05 * (index + 1), status, 20 + index, 3 + index,
                        ttft=0.01 if stream is not None else None, stream_completed=stream,
                        model=MODEL if index % 2 else "other/model", finish_reason=reason,
                        kv=(index % 2, 32, 16 * (index % 2), 16, (4 + index, 100, 0, index)))
    return registry.snapshot()


def _at(document: object, parts) -> object:
    for part in parts:
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


def test_at_every_declared_json_path_the_document_holds_the_declarations_reading(busy_snapshot) -> None:
    """The seed's hand-built sections and the declarations cannot disagree: wherever a
    declaration says it is shown, the document shows its reading (a distribution's fields
    within the seed's section, which adds ``rate``)."""
    document = msgspec.json.decode(render_json(busy_snapshot))
    checked = set()
    for metric in METRICS:
        for labels, value in metric.reading(busy_snapshot):
            for path in metric.json:
                parts = json_places(path, labels)
                if parts is None:
                    continue
                shown = _at(document, parts)
                expected = json_value(value)
                if isinstance(expected, dict):
                    assert {key: shown[key] for key in expected} == expected, (metric.name, parts)
                else:
                    assert shown == expected, (metric.name, parts, shown, expected)
                checked.add((metric.name, path))
    assert checked == {(metric.name, path) for metric in METRICS for path in metric.json}, "a path never checked"


def test_the_dashboard_shows_only_declared_figures(metrics_document: dict) -> None:
    """Every path the dashboard binds is a declared JSON path (or a field of a declared
    distribution), so what it shows is a declaration's reading."""
    declared = [(json_path(path)[0], metric.kind) for metric in METRICS for path in metric.json]

    def is_declared(path: tuple[str, ...]) -> bool:
        for parts, kind in declared:
            fields = len(path) - len(parts)
            if fields in (0, 1) if kind in ("summary", "window") else fields == 0:
                head = path[: len(parts)]
                if all(p == h or "{" in p for p, h in zip(parts, head)):
                    return True
        return False

    assert all(is_declared(path) for path in DASHBOARD_PATHS), [p for p in DASHBOARD_PATHS if not is_declared(p)]
