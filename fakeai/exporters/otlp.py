"""OpenTelemetry metrics (the SDK's ``MetricsData``, which the OTLP exporter encodes), from
one snapshot: the same families, labels and values as the Prometheus exposition.

Needs the extra ``fakeai[otlp]``; nothing imports this module unless ``--otlp-endpoint`` is set.

Why not the SDK's instruments: a ``MeterProvider`` aggregates measurements itself, and its
synchronous ``Histogram`` takes observations one by one, so it cannot be handed histograms
that fakeai has already bucketed in its metrics regions; its observable instruments would each
read the server at its own instant. The SDK (1.45) has no ``MetricProducer`` to plug external
data into a reader either. So the snapshot is the producer: every declaration of
``fakeai.metrics.schema.METRICS`` with a Prometheus family becomes one OTLP metric, read from
one snapshot, at one instant, as the Prometheus exporter reads it (``Metric.reading``):

* a ``counter`` is a monotonic cumulative ``Sum``, a ``gauge`` a ``Gauge``, a ``histogram`` a
  cumulative explicit-bucket ``Histogram`` (the declared bounds; per-bucket counts, which
  Prometheus shows summed up to each ``le``; no min or max, which Prometheus does not keep);
* the name is the Prometheus family's (``fakeai_requests_total``, ``vllm:prompt_tokens_total``:
  what a Prometheus fed by OTLP or a collector's Prometheus exporter shows, so one query works
  on both), labels become attributes, the description is the ``# HELP``, the unit UCUM's
  (``s``, ``{token}``, ``{request}``, ``1``);
* every point of a cumulative metric starts when the server started (``start_time``, fixed
  for the life of the server, so a collector sees one series and no reset) and is stamped with
  the snapshot's time;
* a ``summary`` (``fakeai_latency_seconds``, ``fakeai_ttft_seconds``,
  ``fakeai_stream_tokens_per_second``) is left out: the SDK's data model has no summary point.
  The first two are in the histograms ``fakeai_request_duration_seconds`` and
  ``fakeai_time_to_first_token_seconds``; windowed figures (``window``, ``value``) have no
  Prometheus family either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric as OtelMetric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from fakeai import __version__
from fakeai.metrics import MetricsSnapshot
from fakeai.metrics.schema import METRICS, Metric

__all__ = ("EXPORTED_KINDS", "UCUM_UNITS", "metrics_data", "otlp_resource")

EXPORTED_KINDS = ("counter", "gauge", "histogram")
UCUM_UNITS = {"seconds": "s", "tokens": "{token}", "requests": "{request}", "ratio": "1", "blocks": "{block}",
              "bytes": "By", "percent": "%"}
"""OTLP's units (UCUM, as OpenTelemetry's semantic conventions write them) of the declared ones."""
_CUMULATIVE = AggregationTemporality.CUMULATIVE
_SCOPE = InstrumentationScope("fakeai", __version__)


def otlp_resource(attributes: Mapping[str, str | int]) -> Resource:
    """The resource naming this server: ``attributes``, then what ``OTEL_RESOURCE_ATTRIBUTES``
    and ``OTEL_SERVICE_NAME`` say over them (the SDK's own ``telemetry.sdk.*`` beside)."""
    from_environment = OTELResourceDetector().detect().attributes
    return Resource.create({**attributes, **from_environment})


def _points(metric: Metric, snapshot: MetricsSnapshot, start_ns: int, now_ns: int) -> list:
    points: list = []
    for labels, value in metric.reading(snapshot):
        attributes = dict(labels)
        if metric.kind == "histogram":
            cumulative = value.cumulative
            counts = [cumulative[0], *(high - low for low, high in zip(cumulative, cumulative[1:]))]
            points.append(HistogramDataPoint(
                attributes=attributes, start_time_unix_nano=start_ns, time_unix_nano=now_ns, count=value.count,
                sum=value.sum, bucket_counts=counts, explicit_bounds=value.bounds, min=None, max=None))
        else:
            points.append(NumberDataPoint(
                attributes=attributes, start_time_unix_nano=start_ns, time_unix_nano=now_ns, value=value))
    return points


def metrics_data(
    snapshot: MetricsSnapshot, resource: Resource, start_time_unix_nano: int, metrics: Iterable[Metric] = METRICS
) -> MetricsData:
    """Every counter, gauge and histogram of ``snapshot`` that has a point, for one resource."""
    now_ns = int(snapshot.timestamp * 1e9)
    exported = []
    for metric in metrics:
        if metric.kind not in EXPORTED_KINDS:
            continue
        points = _points(metric, snapshot, start_time_unix_nano, now_ns)
        if not points:
            continue
        if metric.kind == "counter":
            data = Sum(data_points=points, aggregation_temporality=_CUMULATIVE, is_monotonic=True)
        elif metric.kind == "gauge":
            data = Gauge(data_points=points)
        else:
            data = Histogram(data_points=points, aggregation_temporality=_CUMULATIVE)
        exported.append(OtelMetric(name=metric.name, description=metric.help,
                                   unit=UCUM_UNITS.get(metric.unit, metric.unit), data=data))
    return MetricsData(resource_metrics=[ResourceMetrics(
        resource=resource, scope_metrics=[ScopeMetrics(scope=_SCOPE, metrics=exported, schema_url="")],
        schema_url="")])
