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

A scrape formats only numbers: each family's header and each series' ``name{labels} ``
prefix (a histogram's one per ``le`` bound, a summary's one per quantile) are rendered the
first time they are seen and kept (``_Family``), and so are a histogram's or a summary's
lines with the value they show, for the next scrape to take as they are if the value has
not changed (an idle engine's, endpoint's or status's: most of them, between two scrapes).
Their number is bounded by the label space: endpoints are route templates, models at most
``--max-model-labels``, workers ``--kv-workers``, statuses and finish reasons a few.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from operator import add

from fakeai.metrics import QUANTILES, MetricsSnapshot
from fakeai.metrics.schema import METRICS, Metric

__all__ = ("OPENMETRICS_CONTENT_TYPE", "TEXT_CONTENT_TYPE", "prometheus_steps", "render_prometheus")

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

Labels = tuple[tuple[str, str], ...]

_SPECIAL = {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}
_MAX_SERIES = 1 << 16
"""Prefixes kept per family (and families kept) before the cache starts over: far above what
the bounded label space makes, so a scrape never renders them twice in practice."""


def _number(value: float) -> str:
    """A sample's value: an integer as is, a float as ``repr`` (shortest round trip), NaN and
    infinities spelled as the exposition formats spell them."""
    text = repr(value)
    return _SPECIAL.get(text, text)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{_escape_label(value)}"' for name, value in labels) + "}"


def _header(metric: Metric, openmetrics: bool) -> str:
    """HELP, TYPE (and in OpenMetrics UNIT, when the name ends in its unit, as OpenMetrics
    requires)."""
    name = metric.name.removesuffix("_total") if (metric.kind == "counter" and openmetrics) else metric.name
    help_text = metric.help.replace("\\", "\\\\").replace("\n", "\\n")
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {metric.kind}"]
    if openmetrics and metric.unit and name.endswith("_" + metric.unit):
        lines.append(f"# UNIT {name} {metric.unit}")
    return "\n".join(lines)


class _Family:
    """One declaration's text that no scrape changes: its headers, and per series the
    prefixes its samples' values follow."""

    __slots__ = ("headers", "metric", "prefixes", "samples")

    def __init__(self, metric: Metric) -> None:
        self.metric = metric  # held, so the id that keys it is not reused while it is kept
        self.headers = (_header(metric, False), _header(metric, True))
        self.prefixes: dict[Labels, tuple[object, tuple[str, ...]]] = {}
        self.samples: dict[Labels, tuple[object, list[str]]] = {}
        """A histogram's or summary's series: the value last rendered and its lines."""

    def series(self, labels: Labels, bounds: tuple[float, ...] | None = None) -> tuple[str, ...]:
        """The prefixes of one series: ``name{labels} ``; a summary's quantiles then ``_sum``
        and ``_count``; a histogram's buckets (``bounds``, then ``+Inf``), ``_sum``, ``_count``."""
        kept = self.prefixes.get(labels)
        if kept is not None and (kept[0] is bounds or kept[0] == bounds):
            return kept[1]
        name, kind = self.metric.name, self.metric.kind
        if kind == "histogram":
            edges = [*(_number(float(bound)) for bound in bounds or ()), "+Inf"]
            prefixes = [f"{name}_bucket{_labels((*labels, ('le', edge)))} " for edge in edges]
        elif kind == "summary":
            prefixes = [f"{name}{_labels((*labels, ('quantile', repr(q))))} " for q in QUANTILES]
        else:
            prefixes = [f"{name}{_labels(labels)} "]
        if kind in ("histogram", "summary"):
            prefixes += [f"{name}_sum{_labels(labels)} ", f"{name}_count{_labels(labels)} "]
        if len(self.prefixes) >= _MAX_SERIES:
            self.prefixes.clear()
        self.prefixes[labels] = (bounds, tuple(prefixes))
        return self.prefixes[labels][1]


_FAMILIES: dict[int, _Family] = {}


def _family(metric: Metric) -> _Family:
    family = _FAMILIES.get(id(metric))
    if family is None:
        if len(_FAMILIES) >= _MAX_SERIES:
            _FAMILIES.clear()
        family = _FAMILIES[id(metric)] = _Family(metric)
    return family


def _render_family(lines: list[str], family: _Family, openmetrics: bool, snapshot: MetricsSnapshot) -> None:
    """One family's header, then its samples (histograms and summaries expanded)."""
    metric = family.metric
    lines.append(family.headers[openmetrics])
    kind = metric.kind
    if kind not in ("histogram", "summary"):
        for labels, value in metric.reading(snapshot):
            lines.append(family.series(labels)[0] + _number(value))
        return
    samples = family.samples
    for labels, value in metric.reading(snapshot):
        kept = samples.get(labels)
        if kept is not None and kept[0] == value:  # unchanged since the last scrape: the same lines
            lines.extend(kept[1])
            continue
        if kind == "histogram":
            prefixes = family.series(labels, value.bounds)
            buckets = len(value.bounds)
            series = list(map(add, prefixes[: buckets + 1], map(str, value.cumulative)))  # counts: integers
            series.append(prefixes[-2] + _number(value.sum))
            series.append(prefixes[-1] + _number(value.count))
        else:
            prefixes = family.series(labels)
            stats = value.window
            series = list(map(add, prefixes[:-2], map(_number, (stats.p50, stats.p90, stats.p99))))
            series.append(prefixes[-2] + _number(value.sum))
            series.append(prefixes[4] + _number(value.count))
        lines.extend(series)
        if len(samples) >= _MAX_SERIES:
            samples.clear()
        samples[labels] = (value, series)


def render_prometheus(
    snapshot: MetricsSnapshot, *, openmetrics: bool = False, metrics: Iterable[Metric] = METRICS
) -> bytes:
    """Every declared family with a Prometheus name, in declaration order."""
    lines: list[str] = []
    for _ in prometheus_steps(lines, snapshot, openmetrics=openmetrics, metrics=metrics):
        pass
    return "\n".join(lines).encode()


def prometheus_steps(
    lines: list[str], snapshot: MetricsSnapshot, *, openmetrics: bool = False, metrics: Iterable[Metric] = METRICS
) -> Iterator[None]:
    """``render_prometheus`` one family at a time: appends the exposition's lines to ``lines``
    (joined with newlines, ending in one) and yields after each family, so a caller on the
    event loop can let it run between them."""
    for metric in metrics:
        if metric.exported:
            _render_family(lines, _family(metric), openmetrics, snapshot)
            yield
    if openmetrics:
        lines.append("# EOF")
    lines.append("")
