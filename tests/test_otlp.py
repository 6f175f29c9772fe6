"""The OTLP export: what a collector decodes (with the official ``opentelemetry-proto``
messages) is what the Prometheus exposition says, for the instance the resource names."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import httpx
import pytest
from litestar.testing import TestClient
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from prometheus_client.parser import text_string_to_metric_families

from fakeai import __version__
from fakeai.app import create_app
from fakeai.config import Settings
from fakeai.exporters import render_prometheus
from fakeai.exporters.otlp import metrics_data, otlp_resource
from fakeai.metrics.schema import METRICS
from tests.receivers import Receiver
from tests.servers import eventually, free_port, running_app, running_cli

MODEL = "openai/gpt-oss-120b"
CUMULATIVE = 2  # AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE in the protobuf
SUMMARIES = {metric.name for metric in METRICS if metric.kind == "summary"}
CHANGES_WITH_TIME = {"fakeai_uptime_seconds", "fakeai_requests_per_second", "fakeai_errors_per_second",
                     "fakeai_tokens_per_second"}
"""Gauges that move while nothing happens (the uptime, and rates while the uptime is shorter
than the window): equal only when read from one snapshot."""
_CLIENT = httpx.Client(timeout=30)


@pytest.fixture(scope="module", autouse=True)
def _close_the_client():
    yield
    _CLIENT.close()


def drive(client: httpx.Client | TestClient, base_url: str = "") -> int:
    """Known traffic: plain and streamed chat answers, completions, embeddings and a 404; the
    number of requests."""
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "tell me a story"}], "max_tokens": 6}
    for body in (chat, {**chat, "stream": True}, {**chat, "n": 2}, {**chat, "stream": True, "max_tokens": 3}):
        client.post(base_url + "/v1/chat/completions", json=body).raise_for_status()
    completion = {"model": MODEL, "prompt": "once", "max_tokens": 4}
    client.post(base_url + "/v1/completions", json=completion).raise_for_status()
    embedding = {"model": "text-embedding-3-small", "input": ["a", "b"]}
    client.post(base_url + "/v1/embeddings", json=embedding).raise_for_status()
    assert client.post(base_url + "/v1/chat/completions", json={**chat, "model": "nope"}).status_code == 404
    return 7


def _number(value: float) -> float | str:
    return "NaN" if math.isnan(value) else float(value)


def prometheus_series(text: str) -> dict[tuple[str, str], dict]:
    """``(kind, name) -> {labels: value}`` of every counter, gauge and histogram sample (a
    histogram's value: its cumulative buckets, sum and count)."""
    series: dict[tuple[str, str], dict] = {}
    for family in text_string_to_metric_families(text):
        if family.type == "histogram":
            by_labels: dict = {}
            for sample in family.samples:
                labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
                entry = by_labels.setdefault(labels, {"buckets": [], "sum": None, "count": None})
                if sample.name.endswith("_bucket"):
                    entry["buckets"].append((float(sample.labels["le"]), sample.value))
                else:
                    entry[sample.name.rsplit("_", 1)[1]] = sample.value
            series[("histogram", family.name)] = by_labels
        elif family.type in ("counter", "gauge"):
            for sample in family.samples:
                values = series.setdefault((family.type, sample.name), {})
                values[tuple(sorted(sample.labels.items()))] = _number(sample.value)
    return series


def otlp_series(request: ExportMetricsServiceRequest) -> dict[tuple[str, str], dict]:
    """The same, from what a collector decodes; checks the OTLP shape of each kind on the way."""
    [resource_metrics] = request.resource_metrics
    [scope_metrics] = resource_metrics.scope_metrics
    assert (scope_metrics.scope.name, scope_metrics.scope.version) == ("fakeai", __version__)
    series: dict[tuple[str, str], dict] = {}
    for metric in scope_metrics.metrics:
        kind = metric.WhichOneof("data")
        values: dict = {}
        for point in getattr(metric, kind).data_points:
            labels = tuple(sorted((a.key, a.value.string_value) for a in point.attributes))
            if kind == "histogram":
                running, buckets = 0, []
                for bound, count in zip([*point.explicit_bounds, math.inf], point.bucket_counts, strict=True):
                    running += count
                    buckets.append((bound, float(running)))
                values[labels] = {"buckets": buckets, "sum": point.sum, "count": float(point.count)}
                assert not point.HasField("min") and not point.HasField("max")
            else:
                values[labels] = _number(getattr(point, point.WhichOneof("value")))
        if kind == "sum":
            assert metric.sum.is_monotonic and metric.sum.aggregation_temporality == CUMULATIVE
        if kind == "histogram":
            assert metric.histogram.aggregation_temporality == CUMULATIVE
        series[({"sum": "counter"}.get(kind, kind), metric.name)] = values
    return series


def decoded(body: bytes) -> ExportMetricsServiceRequest:
    return ExportMetricsServiceRequest.FromString(body)


def resource_attributes(request: ExportMetricsServiceRequest) -> dict[str, object]:
    [resource_metrics] = request.resource_metrics
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in resource_metrics.resource.attributes}


def requests_total(request: ExportMetricsServiceRequest) -> float:
    return sum(otlp_series(request).get(("counter", "fakeai_requests_total"), {}).values())  # none before traffic


def test_the_otlp_metrics_of_a_snapshot_are_its_prometheus_exposition() -> None:
    """From one snapshot: every counter, gauge and histogram family with a sample is an OTLP
    metric with the same name, labels and values (histograms bucket for bucket), the uptime
    and the rates included; only the summaries are left out."""
    with TestClient(create_app(Settings(zero_latency=True))) as client:
        drive(client)
        snapshot = client.app.state.metrics.snapshot()
    prometheus = prometheus_series(render_prometheus(snapshot).decode())
    request = decoded(encode_metrics(metrics_data(snapshot, otlp_resource({}), 1_000)).SerializeToString())
    exported = otlp_series(request)
    assert exported == {key: values for key, values in prometheus.items() if values}
    assert {name for _, name in prometheus} & SUMMARIES == set()  # not parsed as counters or gauges either
    assert ("counter", "vllm:request_success_total") in exported  # vLLM's names as they are
    histogram = exported[("histogram", "fakeai_request_duration_seconds")]
    assert sum(values["count"] for values in histogram.values()) == 7
    units = {metric.name: metric.unit for metric in request.resource_metrics[0].scope_metrics[0].metrics}
    assert (units["fakeai_request_duration_seconds"], units["fakeai_tokens_total"], units["fakeai_error_ratio"]) == (
        "s", "{token}", "1")


def test_an_export_reaches_the_collector_with_what_prometheus_shows() -> None:
    """`fakeai serve --workers 2` exporting every 0.2 s: once the traffic has stopped, an export
    holds every counter and histogram (and every gauge but those that move with time) as the
    server's exposition shows them, for the resource naming the server."""
    answer = ExportMetricsServiceResponse().SerializeToString()
    with Receiver(body=answer).running() as collector:
        with running_cli("--workers", "2", "--otlp-endpoint", collector.url + "/v1/metrics",
                         "--otlp-interval-seconds", "0.2", "--window-seconds", "600", "--zero-latency") as base_url:
            sent = drive(_CLIENT, base_url)
            eventually(lambda: any(requests_total(decoded(body)) == sent for body in collector.bodies()),
                       "an export with every request", seconds=20)
            text = _CLIENT.get(base_url + "/metrics/prometheus").text
            exports = [decoded(body) for body in collector.bodies("/v1/metrics")]
    latest = exports[-1]
    assert requests_total(latest) == sent
    prometheus = {key: values for key, values in prometheus_series(text).items()
                  if values and not key[1].startswith("fakeai_otlp_") and key[1] not in CHANGES_WITH_TIME}
    exported = {key: values for key, values in otlp_series(latest).items()
                if not key[1].startswith("fakeai_otlp_") and key[1] not in CHANGES_WITH_TIME}
    assert exported == prometheus
    assert exported[("gauge", "fakeai_processes")] == {(): 2.0}  # one export for the whole server

    port = base_url.rsplit(":", 1)[1]
    attributes = resource_attributes(latest)
    assert {key: attributes[key] for key in ("service.name", "service.version", "service.instance.id",
                                              "server.address", "server.port")} == {
        "service.name": "fakeai", "service.version": __version__, "service.instance.id": f"127.0.0.1:{port}",
        "server.address": "127.0.0.1", "server.port": int(port)}
    assert attributes["host.name"] and attributes["telemetry.sdk.name"] == "opentelemetry"
    _, headers, _ = collector.posts[-1]
    assert headers["content-type"] == "application/x-protobuf"
    # cumulative series: one start for every export, times that move on
    sums = [metric for export in exports for metric in export.resource_metrics[0].scope_metrics[0].metrics
            if metric.name == "fakeai_requests_total"]
    assert len({point.start_time_unix_nano for metric in sums for point in metric.sum.data_points}) == 1
    times = [metric.sum.data_points[0].time_unix_nano for metric in sums]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_the_last_export_is_made_when_the_server_stops() -> None:
    """With an interval longer than the test, the only export is the one made at shutdown: it
    carries everything served."""
    with Receiver(body=ExportMetricsServiceResponse().SerializeToString()).running() as collector:
        settings = Settings(otlp_endpoint=collector.url + "/v1/metrics", otlp_interval_seconds=3600,
                            zero_latency=True, instance_name="replica-7")
        with running_app(settings) as (base_url, _):
            sent = drive(_CLIENT, base_url)
            assert collector.bodies() == []
    [export] = [decoded(body) for body in collector.bodies()]
    assert requests_total(export) == sent
    assert resource_attributes(export)["service.instance.id"] == "replica-7"


def test_a_collector_that_is_down_is_counted_and_serving_goes_on() -> None:
    down = f"http://127.0.0.1:{free_port()}/v1/metrics"  # nothing listens: connections are refused
    settings = Settings(otlp_endpoint=down, otlp_interval_seconds=0.05, otlp_timeout_seconds=0.5, zero_latency=True)
    with running_app(settings) as (base_url, _):

        def failed() -> float:
            text = _CLIENT.get(base_url + "/metrics/prometheus").text
            return prometheus_series(text)[("counter", "fakeai_otlp_exports_failed_total")][()]

        eventually(lambda: failed() >= 2, "failed exports are counted")
        assert drive(_CLIENT, base_url) == 7  # served meanwhile
        text = _CLIENT.get(base_url + "/metrics/prometheus").text
        assert prometheus_series(text)[("counter", "fakeai_otlp_exports_sent_total")] == {(): 0.0}


def test_serve_refuses_to_start_without_the_otlp_extra() -> None:
    """`fakeai serve --otlp-endpoint URL` where OpenTelemetry is not installed: one line naming
    the extra, exit status 2, no traceback (the packages are hidden from the child's imports)."""
    hide = ("import sys; sys.modules['opentelemetry.sdk.metrics.export'] = None; "
            "sys.modules['opentelemetry.exporter.otlp.proto.http.metric_exporter'] = None; "
            "from fakeai.cli import main; raise SystemExit(main(['serve', '--otlp-endpoint', "
            "'http://127.0.0.1:4318/v1/metrics', '--port', '0']))")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FAKEAI_")}
    result = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=60,
                            env=environment)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "fakeai[otlp]" in result.stderr and "--otlp-endpoint" in result.stderr
