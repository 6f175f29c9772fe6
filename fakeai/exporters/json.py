"""``GET /metrics`` as JSON: the seed's sections, then fakeai's additions, then every other
declared figure at its JSON path.

Seed sections, each ``{endpoint: {rate, avg, min, max, p50, p90, p99, count}}`` over the
sliding window (``count`` is fakeai's addition: samples in the window):

* ``requests``: ``rate`` is finished requests per second; the distribution fields are 0.0
  (an arrival carries no value, as in the seed's example);
* ``responses``: ``rate`` as above; the distribution is of request durations, in seconds;
* ``tokens``: ``rate`` is completion tokens per second; the distribution is of completion
  tokens per request;
* ``errors``: ``rate`` is failed requests (status >= 400) per second; the distribution is of
  their durations, in seconds;
* ``streaming_stats``: ``active_streams``, ``completed_streams``, ``failed_streams`` (since
  start), ``ttft`` (seconds) and ``tokens_per_second`` (per stream) distributions.

Additions: ``prompt_tokens`` (like ``tokens``, for prompts), ``errors_by_status`` and
``totals`` (cumulative counts), ``streaming_stats.completion_rate`` and ``.itl`` (mean
inter-token latency per stream, seconds), ``summary`` (what ``/health/detailed`` reports),
``models`` (per model, what vLLM reports, summed over its simulated engines and under
``engines`` per engine; models without a label of their own under ``__other__``), ``label_space`` (how many models have a label, the budget, requests counted
as other, figures that found no room), ``kv_cache`` and ``smart_routing`` (the simulated
prefix caches and router: window figures at the top level of each, ``total`` since start;
``/kv-cache-metrics`` sends just these two), and the snapshot's ``timestamp``,
``uptime_seconds``, ``window_seconds``, ``kernel`` and ``dropped_samples``. An empty
window's statistics are 0.0 with ``count`` 0.

The sections above are built by hand where the seed fixes a shape and a key order; every
declaration of ``fakeai.metrics.schema`` is then placed at each of its JSON paths that the
hand-built part did not produce (or left ``None`` to hold its place), so a new declaration
appears here without a change to this module. A test checks that at every declared path the
document holds the declaration's reading, hand-built or placed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from fakeai.exporters._values import DISTRIBUTION_FIELDS, distribution, shown
from fakeai.metrics import HistogramSnapshot, KVCacheSnapshot, KVReuse, MetricsSnapshot, WindowStats
from fakeai.metrics.schema import METRICS, Metric, SummaryValue, json_path
from fakeai.metrics.labels import OTHER_MODEL

__all__ = (
    "declared_document",
    "json_value",
    "kv_cache_document",
    "render_json",
    "render_kv_cache_json",
    "routing_document",
    "snapshot_document",
)

_encode = msgspec.json.Encoder().encode
_ZEROS = dict.fromkeys(DISTRIBUTION_FIELDS, 0.0)


def _section(stats: WindowStats, rate: float | None = None) -> dict[str, Any]:
    return {
        "rate": stats.rate if rate is None else rate,
        **dict(zip(DISTRIBUTION_FIELDS, distribution(stats))),
        "count": stats.count,
    }


def _distribution(stats: WindowStats) -> dict[str, Any]:
    return {**dict(zip(DISTRIBUTION_FIELDS, distribution(stats))), "count": stats.count}


def _reuse(reuse: KVReuse) -> dict[str, Any]:
    return {
        "requests": reuse.requests,
        "hit_requests": reuse.hit_requests,
        "prompt_tokens": reuse.prompt_tokens,
        "cached_tokens": reuse.cached_tokens,
        "oracle_cached_tokens": reuse.oracle_cached_tokens,
        "hit_rate": shown(reuse.hit_rate),
        "miss_rate": shown(reuse.miss_rate),
        "request_hit_rate": shown(reuse.request_hit_rate),
        "average_token_reduction": shown(reuse.average_token_reduction),
        "router_efficiency": shown(reuse.router_efficiency),
    }


def kv_cache_document(kv: KVCacheSnapshot) -> dict[str, Any]:
    """The ``kv_cache`` section: reuse over the window (top level) and since start (``total``)."""
    window = kv.window
    return {
        "cache_hit_rate": shown(window.hit_rate),
        "cache_miss_rate": shown(window.miss_rate),
        "request_hit_rate": shown(window.request_hit_rate),
        "average_token_reduction": shown(window.average_token_reduction),
        "window": _reuse(window),
        "total": _reuse(kv.total),
        "block_tokens": kv.block_tokens,
        "blocks_used": kv.blocks_used,
        "capacity_blocks": kv.capacity_blocks,
        "usage": kv.usage,
        "evictions": kv.evictions,
    }


def routing_document(kv: KVCacheSnapshot) -> dict[str, Any]:
    """The ``smart_routing`` section: the policy, its efficiency, and each worker."""
    return {
        "policy": kv.policy,
        "router_efficiency": shown(kv.window.router_efficiency),
        "router_efficiency_total": shown(kv.total.router_efficiency),
        "workers": [
            {
                "worker": index,
                "blocks_used": worker.blocks_used,
                "capacity_blocks": worker.capacity_blocks,
                "usage": worker.usage,
                "active_requests": worker.active_requests,
                "requests_routed": worker.requests_routed,
                "prompt_tokens": worker.prompt_tokens,
                "cached_tokens": worker.cached_tokens,
                "evictions": worker.evictions,
                "requests_running": worker.requests_running,
                "requests_waiting": worker.requests_waiting,
                "preemptions": worker.preemptions,
            }
            for index, worker in enumerate(kv.workers)
        ],
    }


def render_kv_cache_json(snapshot: MetricsSnapshot) -> bytes:
    """``GET /kv-cache-metrics``: the KV-cache and smart-routing sections of ``/metrics``."""
    return _encode(
        {
            "kv_cache": kv_cache_document(snapshot.kv_cache),
            "smart_routing": routing_document(snapshot.kv_cache),
            "timestamp": snapshot.timestamp,
            "window_seconds": snapshot.window_seconds,
        }
    )


def snapshot_document(snapshot: MetricsSnapshot) -> dict[str, Any]:
    endpoints = snapshot.endpoints
    streaming = snapshot.streaming
    totals = snapshot.totals
    return {
        "requests": {
            path: {"rate": ep.latency.rate, **_ZEROS, "count": ep.latency.count} for path, ep in endpoints.items()
        },
        "responses": {path: _section(ep.latency) for path, ep in endpoints.items()},
        "tokens": {
            path: _section(ep.completion_tokens, ep.completion_tokens.sum_rate) for path, ep in endpoints.items()
        },
        "errors": {path: _section(ep.errors) for path, ep in endpoints.items()},
        "streaming_stats": {
            "active_streams": streaming.active_streams,
            "completed_streams": streaming.completed_streams,
            "failed_streams": streaming.failed_streams,
            "completion_rate": shown(streaming.completion_rate),
            "ttft": _distribution(streaming.ttft),
            "tokens_per_second": _distribution(streaming.tokens_per_second),
            "itl": _distribution(streaming.itl),
        },
        "prompt_tokens": {
            path: _section(ep.prompt_tokens, ep.prompt_tokens.sum_rate) for path, ep in endpoints.items()
        },
        "errors_by_status": {
            path: {str(status): count for status, count in ep.errors_total.items()} for path, ep in endpoints.items()
        },
        "totals": {
            path: {
                "requests": ep.requests_total,
                "errors": None,  # endpoint_errors_total's place
                "prompt_tokens": ep.prompt_tokens_total,
                "completion_tokens": ep.completion_tokens_total,
                "latency_seconds_sum": ep.duration_histogram.sum,
            }
            for path, ep in endpoints.items()
        },
        "summary": {
            "status": totals.health,
            "total_requests_per_second": totals.requests_per_second,
            "total_errors_per_second": totals.errors_per_second,
            "error_rate_percentage": totals.error_rate_percentage,
            "average_latency_seconds": totals.average_latency_seconds,
            "active_streams": streaming.active_streams,
            "requests_in_flight": snapshot.in_flight,
            "requests_running": snapshot.kv_cache.requests_running,
            "requests_waiting": snapshot.kv_cache.requests_waiting,
        },
        "models": {
            name: {
                "requests_running": model.running,
                "prompt_tokens": model.prompt_tokens_total,
                "generation_tokens": model.generation_tokens_total,
                "requests_succeeded": model.success_total,
                "engines": {
                    engine_id: {
                        "requests_running": engine.running,
                        "requests_waiting": engine.waiting,
                        "prompt_tokens": engine.prompt_tokens_total,
                        "prompt_tokens_cached": engine.cached_prompt_tokens_total,
                        "generation_tokens": engine.generation_tokens_total,
                        "requests_succeeded": engine.success_total,
                    }
                    for engine_id, engine in model.engines.items()
                },
            }
            for name, model in snapshot.models.items()
        },
        "label_space": {
            "model_label_budget": snapshot.label_space.model_label_budget,
            "model_labels": snapshot.label_space.model_labels,
            "other_model": OTHER_MODEL,
            "other_requests": snapshot.label_space.other_requests,
            "unrecorded_figures": snapshot.label_space.unrecorded_figures,
        },
        "kv_cache": kv_cache_document(snapshot.kv_cache),
        "smart_routing": routing_document(snapshot.kv_cache),
        "timestamp": snapshot.timestamp,
        "uptime_seconds": snapshot.uptime_seconds,
        "window_seconds": snapshot.window_seconds,
        "kernel": snapshot.kernel,
        "dropped_samples": snapshot.dropped_samples,
        "processes": snapshot.processes,
    }


def json_value(value: Any) -> Any:
    """A reading's value as JSON shows it: a histogram as ``{sum, count}``, a summary or a
    window as its distribution, a number as is (NaN as 0.0)."""
    if isinstance(value, float):
        return shown(value)
    if isinstance(value, HistogramSnapshot):
        return {"sum": value.sum, "count": value.count}
    if isinstance(value, SummaryValue):
        return _distribution(value.window)
    if isinstance(value, WindowStats):
        return _distribution(value)
    return value


class _Path:
    """A declared JSON path, parsed once; and whether the hand-built sections fill it (they
    do for every label value or for none: they iterate the snapshot as the readings do)."""

    __slots__ = ("hand_built", "parts", "templated", "where")

    def __init__(self, path: str) -> None:
        self.parts, self.where = json_path(path)
        self.templated = "{" in path
        self.hand_built: bool | None = None  # not known until a sample reaches it

    def place(self, labels: dict[str, str]) -> list[str] | tuple[str, ...] | None:
        """Its concrete parts for a sample's labels (``None``: ``[label=value]`` leaves it out)."""
        for name, value in self.where:
            if labels.get(name) != value:
                return None
        if not self.templated:
            return self.parts
        return [part.format_map(labels) if "{" in part else part for part in self.parts]


_PATHS: dict[str, _Path] = {}


def _path(path: str) -> _Path:
    parsed = _PATHS.get(path)
    if parsed is None:
        parsed = _PATHS[path] = _Path(path)
    return parsed


def json_places(path: str, labels: Iterable[tuple[str, str]]) -> list[str] | tuple[str, ...] | None:
    """The concrete place of a declared JSON path for a sample with ``labels`` (``None``
    when the path's ``[label=value]`` leaves the sample out)."""
    return _path(path).place(dict(labels))


def _filled(document: dict[str, Any], parts: Iterable[str]) -> bool:
    node: Any = document
    for part in parts:
        if isinstance(node, list):
            index = int(part)
            node = node[index] if index < len(node) else None
        else:
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return False
    return True


def _place(document: dict[str, Any], parts: Iterable[str], value: Any) -> None:
    """``value`` at ``parts`` unless something is there already (the first declaration of a
    place wins); a list (the workers) is indexed."""
    node: Any = document
    *parents, last = parts
    for part in parents:
        if isinstance(node, list):
            index = int(part)
            node.extend({} for _ in range(index + 1 - len(node)))
            node = node[index]
        else:
            node = node.setdefault(part, {})
    if isinstance(node, list):
        index = int(last)
        node.extend(None for _ in range(index + 1 - len(node)))
        if node[index] is None:
            node[index] = json_value(value)
    elif node.get(last) is None:
        node[last] = json_value(value)


_PLANS: dict[int, tuple[tuple[Metric, ...], list[tuple[Metric, list[_Path]]]]] = {}
"""By tuple of declarations (held, so its id is not reused): those with a JSON path not known
to be hand-built, and those paths."""


def _plan(metrics: Iterable[Metric]) -> list[tuple[Metric, list[_Path]]]:
    if not isinstance(metrics, tuple):
        return [(metric, [_path(path) for path in metric.json]) for metric in metrics if metric.json]
    kept = _PLANS.get(id(metrics))
    if kept is None:
        if len(_PLANS) >= 64:
            _PLANS.clear()
        plan = [(metric, [_path(path) for path in metric.json]) for metric in metrics if metric.json]
        kept = _PLANS[id(metrics)] = (metrics, plan)
    return kept[1]


def declared_document(snapshot: MetricsSnapshot, metrics: Iterable[Metric] = METRICS) -> dict[str, Any]:
    """The seed's document, then every declared metric at each of its JSON paths that the
    hand-built sections do not fill (or hold with ``None``): a new declaration appears here
    without a change to this module. A path found filled by the hand-built sections is not
    visited again (a test checks they hold the declaration's reading there)."""
    document = snapshot_document(snapshot)
    plan = _plan(metrics)
    pending = []
    learnt = False
    for metric, paths in plan:
        reading = metric.reading(snapshot)
        for parsed in paths:
            if parsed.hand_built is None:  # learnt from the hand-built sections alone, before any placing
                for labels, _ in reading:
                    parts = parsed.place(dict(labels))
                    if parts is not None:
                        parsed.hand_built = _filled(document, parts)
                        learnt = True
                        break
        pending.append((reading, paths))
    if learnt:
        plan[:] = [(metric, kept) for metric, paths in plan if (kept := [p for p in paths if not p.hand_built])]
    for reading, paths in pending:
        for labels, value in reading:
            values = dict(labels)
            for parsed in paths:
                if not parsed.hand_built:
                    parts = parsed.place(values)
                    if parts is not None:
                        _place(document, parts, value)
    return document


def render_json(snapshot: MetricsSnapshot, *, metrics: Iterable[Metric] = METRICS) -> bytes:
    return _encode(declared_document(snapshot, metrics))
