"""Prometheus text exposition 0.0.4 and OpenMetrics 1.0, from one snapshot.

The families are the declarations of ``fakeai.metrics.schema`` with a Prometheus name, in
their order: the seed's, computed over the sliding window (``fakeai_*_per_second`` gauges,
``fakeai_latency_seconds`` and ``fakeai_ttft_seconds`` summaries whose quantiles describe the
window and whose ``_sum``/``_count`` are cumulative, as Prometheus' Go client does);
Prometheus-native ``_total`` counters and histograms with buckets down to 100 us; vLLM's
drop-in names (``vllm:*``, labelled ``model_name``). This module only formats: a new
declaration appears here without a change.

The two formats differ only where the standards do: OpenMetrics names a counter family
without ``_total`` in ``# HELP``/``# TYPE``, adds ``# UNIT`` where the family's name ends in
its declared unit, and ends with ``# EOF``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from fakeai.metrics import QUANTILES, HistogramSnapshot, MetricsSnapshot
from fakeai.metrics.schema import METRICS, Metric, SummaryValue

__all__ = ("OPENMETRICS_CONTENT_TYPE", "TEXT_CONTENT_TYPE", "render_prometheus")

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

Labels = tuple[tuple[str, str], ...]
Sample = tuple[str, Labels, float]  # (suffix, labels, value)


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{_escape_label(value)}"' for name, value in labels) + "}"


class _Exposition:
    def __init__(self, openmetrics: bool) -> None:
        self.openmetrics = openmetrics
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[Sample], unit: str = "") -> None:
        """One family: HELP, TYPE (and in OpenMetrics UNIT, when the name ends in its unit, as
        OpenMetrics requires), then its samples (``name + suffix``)."""
        shown_name = name.removesuffix("_total") if (kind == "counter" and self.openmetrics) else name
        help_text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
        self.lines.append(f"# HELP {shown_name} {help_text}")
        self.lines.append(f"# TYPE {shown_name} {kind}")
        if self.openmetrics and unit and shown_name.endswith("_" + unit):
            self.lines.append(f"# UNIT {shown_name} {unit}")
        for suffix, labels, value in samples:
            self.lines.append(f"{name}{suffix}{_labels(labels)} {_number(value)}")

    def text(self) -> bytes:
        if self.openmetrics:
            self.lines.append("# EOF")
        return ("\n".join(self.lines) + "\n").encode()


def _histogram(histogram: HistogramSnapshot, labels: Labels) -> list[Sample]:
    samples: list[Sample] = [
        ("_bucket", (*labels, ("le", _number(float(bound)))), count)
        for bound, count in zip(histogram.bounds, histogram.cumulative)
    ]
    samples.append(("_bucket", (*labels, ("le", "+Inf")), histogram.cumulative[-1]))
    samples.append(("_sum", labels, histogram.sum))
    samples.append(("_count", labels, histogram.count))
    return samples


def _summary(value: SummaryValue, labels: Labels) -> list[Sample]:
    stats = value.window
    samples: list[Sample] = [
        ("", (*labels, ("quantile", repr(q))), quantile)
        for q, quantile in zip(QUANTILES, (stats.p50, stats.p90, stats.p99))
    ]
    samples.append(("_sum", labels, value.sum))
    samples.append(("_count", labels, value.count))
    return samples


def _samples(metric: Metric, snapshot: MetricsSnapshot) -> list[Sample]:
    """A declaration's reading as exposition samples (histograms and summaries expanded)."""
    reading = metric.reading(snapshot)
    if metric.kind == "histogram":
        return [sample for labels, histogram in reading for sample in _histogram(histogram, labels)]
    if metric.kind == "summary":
        return [sample for labels, value in reading for sample in _summary(value, labels)]
    return [("", labels, value) for labels, value in reading]


def render_prometheus(
    snapshot: MetricsSnapshot, *, openmetrics: bool = False, metrics: Iterable[Metric] = METRICS
) -> bytes:
    """Every declared family with a Prometheus name, in declaration order."""
    out = _Exposition(openmetrics)
    for metric in metrics:
        if metric.exported:
            out.family(metric.name, metric.kind, metric.help, _samples(metric, snapshot), metric.unit)
    return out.text()
