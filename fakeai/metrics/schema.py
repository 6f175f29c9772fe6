"""Every metric fakeai reports, declared once.

A ``Metric`` says what a figure is -- name, kind, unit, help, labels, buckets, the window
that feeds it -- and where it is shown: its Prometheus family, its JSON path(s), its CSV row.
``METRICS`` holds them all, in the order the Prometheus exposition shows them (fakeai's
families first, then vLLM's drop-in names). Everything else is derived from it:

* the Prometheus and OpenMetrics exposition (``fakeai.exporters.prometheus`` iterates
  ``METRICS``: a new declaration appears there with no exporter change);
* ``GET /metrics`` (``fakeai.exporters.json`` places every declaration's reading at its JSON
  paths; the seed's hand-built sections fix key order and shape, and a test checks that they
  hold each declaration's reading), ``GET /metrics/csv`` (the declarations naming a row),
  ``/health/detailed`` (each field a declaration's reading) and the dashboard (it binds JSON
  paths, ``DASHBOARD_PATHS``, each a declared one);
* the metrics reference of docs/metrics.md (``metrics_table``, kept equal by a test and rewritten by
  ``scripts/update-reference-docs.py``).

Kinds: ``counter``, ``gauge``, ``histogram`` and ``summary`` are Prometheus' own;
``window`` is a distribution over the sliding window shown in JSON and CSV only (the
``window`` field of the others says which window's figures they show); ``value`` is one
figure shown in JSON only (a number, or a word such as the health level).

A JSON path is dot-separated; ``{label}`` stands for a label's value (also inside a part:
``{kind}_tokens``), and a trailing ``[label=value]`` restricts the path to the samples with
that label value (``tokens.{endpoint}.rate[kind=completion]``). In JSON a number is shown as
is (NaN as 0.0, as the seed shows an empty window), a histogram as ``{sum, count}``, a
summary or a window as its distribution ``{avg, min, max, p50, p90, p99, count}``.

Each declaration's ``read`` turns a snapshot into ``[(labels, value)]``: ``labels`` a tuple
of ``(name, value)`` pairs in the declared order, ``value`` a number for a counter or gauge,
a ``HistogramSnapshot`` for a histogram, a ``SummaryValue`` for a summary, ``WindowStats``
for a window. Readers only pick figures out of the snapshot: no number is computed here
that a snapshot does not already hold (the registry computes them, once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from fakeai.metrics.instruments import (
    DURATION_BUCKETS,
    INTER_TOKEN_BUCKETS,
    LATENESS_BUCKETS,
    TOKEN_COUNT_BUCKETS,
    VLLM_INTER_TOKEN_BUCKETS,
    VLLM_N_BUCKETS,
    VLLM_REQUEST_LATENCY_BUCKETS,
    VLLM_TOKEN_BUCKETS,
    VLLM_TTFT_BUCKETS,
    build_1_2_5_buckets,
)

if TYPE_CHECKING:
    from fakeai.metrics.snapshot import MetricsSnapshot, WindowStats

__all__ = (
    "BUCKETS",
    "CELLS",
    "SPILL",
    "Cell",
    "DASHBOARD_PATHS",
    "HEALTH_LEVELS",
    "METRICS",
    "Metric",
    "SummaryValue",
    "bucket_sets",
    "json_path",
    "metrics_table",
    "writer_layout",
)

Kind = Literal["counter", "gauge", "histogram", "summary", "window", "value"]
Labels = tuple[tuple[str, str], ...]
Reading = list[tuple[Labels, Any]]

HEALTH_LEVELS = ("healthy", "degraded", "unhealthy")
"""The health levels, in the order ``fakeai_health{status}`` shows them."""


class SummaryValue(NamedTuple):
    """A summary's reading: quantiles from the window's statistics, ``sum`` and ``count``
    since start (Prometheus' Go client convention)."""

    window: WindowStats
    sum: float
    count: int


Scope = Literal["global", "endpoint", "model", "engine", "kv_worker"]


@dataclass(frozen=True, slots=True)
class Cell:
    """Cells of a metrics region: one key, or one key per label value of its scope.

    A key is ``key`` (``c|`` counter, ``g|`` gauge, ``h|`` histogram block, ``s|`` the spill
    block), then ``|`` and the scope's label(s) (an endpoint's route, a model's label-table
    index, a model's index and a simulated engine's number, a KV worker's number), then ``|``
    and the ``by`` label's value if it has one (an error's status, a success's finish
    reason): ``c|errors|/v1/chat/completions|500``, ``c|success|0|3|stop``.
    """

    key: str
    scope: Scope = "global"
    slot: str = ""
    """The attribute the writer keeps its first cell in (the compiled ``record`` reads it)."""
    bounds: str | None = None
    """A histogram block's bucket set, by name (the writer is given the bounds of each; see
    ``BUCKETS``)."""
    by: str | None = None
    """A further label, one key per value, made on first use (``status``, ``finished_reason``)."""

    def name(self, *labels: str) -> str:
        """The key of this cell for the scope's label (and the ``by`` label's value)."""
        return "|".join((self.key, *labels))

    def size(self, buckets: dict[str, tuple[float, ...]] | None = None) -> int:
        """Cells under one key: 1, or a histogram's buckets, +Inf, sum and count."""
        if self.bounds is None:
            return 1
        return len((buckets or BUCKETS)[self.bounds]) + 3


SCOPE_LABELS = {"global": (), "endpoint": ("endpoint",), "model": ("model_name",),
                "engine": ("model_name", "engine"), "kv_worker": ("worker",)}
"""The labels a scoped cell's figures carry."""

BUCKETS: dict[str, tuple[float, ...]] = {
    "duration": DURATION_BUCKETS,
    "tokens": TOKEN_COUNT_BUCKETS,
    "inter_token": INTER_TOKEN_BUCKETS,
    "lateness": LATENESS_BUCKETS,
    "vllm_ttft": VLLM_TTFT_BUCKETS,
    "vllm_inter_token": VLLM_INTER_TOKEN_BUCKETS,
    "vllm_latency": VLLM_REQUEST_LATENCY_BUCKETS,
    "vllm_tokens": VLLM_TOKEN_BUCKETS,
    "vllm_n": VLLM_N_BUCKETS,
}
"""The named bucket sets a histogram cell uses (``fakeai.metrics.instruments``), with vLLM's
token buckets at the default context length (a registry's are ``bucket_sets``' for its own)."""


def bucket_sets(max_model_len: int) -> dict[str, tuple[float, ...]]:
    """``BUCKETS`` for a server whose context length is ``max_model_len``: vLLM's token-count
    buckets are ``build_1_2_5_buckets(max_model_len)``, as vLLM builds them."""
    return {**BUCKETS, "vllm_tokens": build_1_2_5_buckets(max_model_len)}

SPILL = Cell("s|spill", slot="spill")
"""Where a figure goes when its key could not be made: the largest histogram's size."""

CELLS: tuple[Cell, ...] = (
    # made by the writer when it starts, in this order
    SPILL,
    Cell("c|unrecorded_figures", slot="unrecorded"),
    Cell("g|active_streams", slot="active_streams"),
    Cell("c|streams|completed", slot="completed_streams"),
    Cell("c|streams|failed", slot="failed_streams"),
    Cell("c|stream_tokens_per_second_sum", slot="tokens_per_second_sum"),
    Cell("c|stream_tokens_per_second_count", slot="tokens_per_second_count"),
    Cell("h|stream_ttft", slot="stream_ttft", bounds="duration"),
    Cell("h|stream_itl", slot="stream_itl", bounds="inter_token"),
    Cell("h|stream_itl_gaps", slot="stream_itl_gaps", bounds="inter_token"),
    Cell("c|kv_hit_requests", slot="kv_hit_requests"),
    Cell("c|kv_oracle_cached_tokens", slot="kv_oracle"),
    # made by the registry when it starts
    Cell("c|model_other_requests", slot="other_requests"),
    # per endpoint (the first is the endpoint's id in journal records)
    Cell("c|requests", "endpoint", "requests"),
    Cell("c|prompt_tokens", "endpoint", "prompt"),
    Cell("c|completion_tokens", "endpoint", "completion"),
    Cell("h|duration", "endpoint", "duration_histogram", bounds="duration"),
    Cell("h|prompt_tokens", "endpoint", "prompt_histogram", bounds="tokens"),
    Cell("h|completion_tokens", "endpoint", "completion_histogram", bounds="tokens"),
    Cell("c|errors", "endpoint", "errors", by="status"),
    # per model label: API requests admitted and not ended (the latency model's load)
    Cell("g|running", "model", "running"),
    # per model label and simulated engine (a KV worker the router sends requests to): vLLM's
    # families (the first, always made, is how a snapshot finds the pairs)
    Cell("c|engine_prompt_tokens", "engine", "prompt"),
    Cell("g|engine_running", "engine", "running"),
    Cell("g|engine_waiting", "engine", "waiting"),
    Cell("c|engine_generation_tokens", "engine", "generation"),
    Cell("c|engine_cached_tokens", "engine", "cached"),
    Cell("c|engine_preemptions", "engine", "preemptions"),
    Cell("h|engine_ttft", "engine", "ttft", bounds="vllm_ttft"),
    Cell("h|engine_itl", "engine", "itl", bounds="vllm_inter_token"),
    Cell("h|engine_tpot", "engine", "tpot", bounds="vllm_inter_token"),
    Cell("h|engine_e2e", "engine", "e2e", bounds="vllm_latency"),
    Cell("h|engine_queue", "engine", "queue", bounds="vllm_latency"),
    Cell("h|engine_inference", "engine", "inference", bounds="vllm_latency"),
    Cell("h|engine_prefill", "engine", "prefill", bounds="vllm_latency"),
    Cell("h|engine_decode", "engine", "decode", bounds="vllm_latency"),
    Cell("h|engine_prompt_tokens", "engine", "prompt_histogram", bounds="vllm_tokens"),
    Cell("h|engine_generation_tokens", "engine", "generation_histogram", bounds="vllm_tokens"),
    Cell("h|engine_max_generation_tokens", "engine", "max_generation_histogram", bounds="vllm_tokens"),
    Cell("h|engine_max_tokens", "engine", "max_tokens_histogram", bounds="vllm_tokens"),
    Cell("h|engine_prefill_kv", "engine", "prefill_kv_histogram", bounds="vllm_tokens"),
    Cell("h|engine_n", "engine", "n_histogram", bounds="vllm_n"),
    Cell("c|success", "engine", "success", by="finished_reason"),
    # per simulated KV worker
    Cell("c|kv_routed", "kv_worker", "routed"),
    Cell("c|kv_prompt_tokens", "kv_worker", "prompt_tokens"),
    Cell("c|kv_cached_tokens", "kv_worker", "cached_tokens"),
    Cell("g|kv_blocks", "kv_worker", "blocks"),
    Cell("g|kv_capacity_blocks", "kv_worker", "capacity_blocks"),
    Cell("g|kv_active_requests", "kv_worker", "active_requests"),
    Cell("c|kv_evictions", "kv_worker", "evictions"),
)
"""The cells the request path records into (the kernel's compiled ``record`` and the
registry), declared once: the writer makes its keys from these, ``labels.region_need`` counts
them, the registry reads them. A ``Metric`` with a ``cell`` of its own adds to them."""


def cell(key: str) -> Cell:
    """The declared cell whose key is ``key``."""
    return _BY_KEY[key]


_BY_KEY = {declared.key: declared for declared in CELLS}


def writer_layout() -> dict[str, dict[str, tuple[str, str | None]]]:
    """What the kernel's writer makes, by scope: ``{slot: (key, bucket set or None)}``, for
    the writer's own cells (``global``), an endpoint's, a model's, a (model, engine) pair's
    and a KV worker's."""
    layout: dict[str, dict[str, tuple[str, str | None]]] = {
        "global": {}, "endpoint": {}, "model": {}, "engine": {}, "kv_worker": {}}
    for declared in CELLS:
        if declared.slot != "other_requests":  # the registry's
            layout[declared.scope][declared.slot] = (declared.key, declared.bounds)
    return layout


@dataclass(frozen=True, slots=True, kw_only=True)
class Metric:
    """One metric: what it is, and everywhere it is shown."""

    name: str
    """Its Prometheus family name (``fakeai_*`` or ``vllm:*``; counters end in ``_total``),
    or, for a ``window`` shown in JSON and CSV only, a name of its own."""
    kind: Kind
    help: str
    """One sentence: the family's ``# HELP`` and its meaning in the metrics reference."""
    unit: str = ""
    """The base unit of its values (``seconds``, ``tokens``, ``requests``, ``ratio``,
    ``blocks``, ``bytes``); empty for a count of events named by the family itself."""
    labels: tuple[str, ...] = ()
    """Label names, in the order samples carry them (a histogram's ``le`` and a summary's
    ``quantile`` are added by the renderer)."""
    buckets: tuple[float, ...] | None = None
    """A histogram's bucket bounds (a named constant of ``fakeai.metrics.instruments``)."""
    window: str | None = None
    """The sliding window whose figures it shows, if any."""
    read: Callable[[MetricsSnapshot], Reading] | None = None
    """The snapshot's figures for it (see the module docstring); ``None``: its ``cell``'s,
    from ``MetricsSnapshot.series``."""
    json: tuple[str, ...] = ()
    """Where ``GET /metrics`` shows it (``{label}`` for a label's value)."""
    csv: str | None = None
    """Its ``metric_type`` row in ``GET /metrics/csv``."""
    cell: Cell | None = None
    """Cells of its own, for a metric recorded by name (``MetricsRegistry.add`` or
    ``observe``): the registry reads them into ``MetricsSnapshot.series``, where ``read``
    finds them unless it says otherwise. ``None``: its figures come from the cells above."""

    def reading(self, snapshot: MetricsSnapshot) -> Reading:
        """Its figures in ``snapshot``."""
        if self.read is not None:
            return self.read(snapshot)
        return snapshot.series.get(self.name, [])

    @property
    def exported(self) -> bool:
        """Whether it has a Prometheus family (a ``window`` or a ``value`` has none)."""
        return self.kind not in ("window", "value")


# -- readers ---------------------------------------------------------------------------------


def _one(value: Callable[[MetricsSnapshot], Any]) -> Callable[[MetricsSnapshot], Reading]:
    return lambda snapshot: [((), value(snapshot))]


def _by_endpoint(value: Callable[[Any], Any]) -> Callable[[MetricsSnapshot], Reading]:
    return lambda snapshot: [((("endpoint", path),), value(ep)) for path, ep in snapshot.endpoints.items()]


def _by_endpoint_and_kind(prompt: Callable[[Any], Any], completion: Callable[[Any], Any]):
    return lambda snapshot: [
        sample
        for path, ep in snapshot.endpoints.items()
        for sample in (
            ((("endpoint", path), ("kind", "prompt")), prompt(ep)),
            ((("endpoint", path), ("kind", "completion")), completion(ep)),
        )
    ]


def _by_worker(value: Callable[[Any], Any]) -> Callable[[MetricsSnapshot], Reading]:
    return lambda snapshot: [
        ((("worker", str(index)),), value(worker)) for index, worker in enumerate(snapshot.kv_cache.workers)
    ]


def _by_engine(value: Callable[[Any], Any]) -> Callable[[MetricsSnapshot], Reading]:
    return lambda snapshot: [
        ((("model_name", snapshot.kv_cache.model_name), ("engine", str(worker.id))), value(worker))
        for worker in snapshot.kv_cache.workers
    ]


_ENGINE = ("model_name", "engine")
SLEEP_STATES = ("awake", "weights_offloaded", "discard_all")
"""vLLM's ``sleep_state`` label values (a simulated engine is always awake)."""
PROMPT_SOURCES = ("local_compute", "local_cache_hit", "external_kv_transfer")
"""vLLM's ``source`` label values of ``vllm:prompt_tokens_by_source``."""


def _by_model_engine(value: Callable[[Any], Any]) -> Callable[[MetricsSnapshot], Reading]:
    return lambda snapshot: [
        ((("model_name", name), ("engine", engine_id)), value(engine))
        for name, model in snapshot.models.items()
        for engine_id, engine in model.engines.items()
    ]


def _engine_json(field: str) -> tuple[str, ...]:
    return (f"models.{{model_name}}.engines.{{engine}}.{field}",)


def _sleep_state(snapshot: MetricsSnapshot) -> Reading:
    return [
        ((("model_name", name), ("engine", engine_id), ("sleep_state", state)), int(state == "awake"))
        for name, model in snapshot.models.items()
        for engine_id in model.engines
        for state in SLEEP_STATES
    ]


def _prompt_tokens_by_source(snapshot: MetricsSnapshot) -> Reading:
    reading: Reading = []
    for name, model in snapshot.models.items():
        for engine_id, engine in model.engines.items():
            cached = engine.cached_prompt_tokens_total
            by_source = (engine.prompt_tokens_total - cached, cached, 0)
            reading += [((("model_name", name), ("engine", engine_id), ("source", source)), count)
                        for source, count in zip(PROMPT_SOURCES, by_source)]
    return reading


def _errors_by_status(snapshot: MetricsSnapshot) -> Reading:
    return [
        ((("endpoint", path), ("status", str(status))), count)
        for path, ep in snapshot.endpoints.items()
        for status, count in ep.errors_total.items()
    ]


def _success_by_reason(snapshot: MetricsSnapshot) -> Reading:
    return [
        ((("model_name", name), ("engine", engine_id), ("finished_reason", reason)), count)
        for name, model in snapshot.models.items()
        for engine_id, engine in model.engines.items()
        for reason, count in engine.success_total.items()
    ]


def _health(snapshot: MetricsSnapshot) -> Reading:
    return [((("status", level),), int(level == snapshot.totals.health)) for level in HEALTH_LEVELS]


def _streams(snapshot: MetricsSnapshot) -> Reading:
    streaming = snapshot.streaming
    return [((("outcome", "completed"),), streaming.completed_streams),
            ((("outcome", "failed"),), streaming.failed_streams)]


# -- the declarations ----------------------------------------------------------------------

_ENDPOINT_WINDOW = "each endpoint's request durations"

METRICS: tuple[Metric, ...] = (
    # -- the seed's families, over the sliding window --------------------------------------
    Metric(name="fakeai_requests_per_second", kind="gauge", unit="requests",
           help="Requests finished per second over the sliding window.", labels=("endpoint",),
           window=_ENDPOINT_WINDOW, read=_by_endpoint(lambda ep: ep.latency.rate),
           json=("requests.{endpoint}.rate", "responses.{endpoint}.rate"), csv="requests"),
    Metric(name="fakeai_errors_per_second", kind="gauge", unit="requests",
           help="Failed requests (status >= 400) per second over the sliding window.", labels=("endpoint",),
           window="each endpoint's failed requests' durations", read=_by_endpoint(lambda ep: ep.errors.rate),
           json=("errors.{endpoint}.rate",)),
    Metric(name="fakeai_tokens_per_second", kind="gauge", unit="tokens",
           help="Tokens per second over the sliding window, by kind.", labels=("endpoint", "kind"),
           window="each endpoint's prompt and completion tokens per request",
           read=_by_endpoint_and_kind(lambda ep: ep.prompt_tokens.sum_rate, lambda ep: ep.completion_tokens.sum_rate),
           json=("prompt_tokens.{endpoint}.rate[kind=prompt]", "tokens.{endpoint}.rate[kind=completion]")),
    Metric(name="fakeai_latency_seconds", kind="summary", unit="seconds",
           help="Request duration until the last byte: window quantiles, cumulative sum and count.",
           labels=("endpoint",), window=_ENDPOINT_WINDOW,
           read=_by_endpoint(lambda ep: SummaryValue(ep.latency, ep.duration_histogram.sum,
                                                     ep.duration_histogram.count)),
           json=("responses.{endpoint}",), csv="responses"),
    Metric(name="fakeai_ttft_seconds", kind="summary", unit="seconds",
           help="Time to first token of streams: window quantiles, cumulative sum and count.",
           window="streams' time to first token",
           read=_one(lambda s: SummaryValue(s.streaming.ttft, s.streaming.ttft_histogram.sum,
                                            s.streaming.ttft_histogram.count)),
           json=("streaming_stats.ttft",), csv="ttft"),
    Metric(name="fakeai_stream_tokens_per_second", kind="summary", unit="tokens",
           help="Completion tokens per second of each finished stream: window quantiles, cumulative sum and count.",
           window="finished streams' tokens per second",
           read=_one(lambda s: SummaryValue(s.streaming.tokens_per_second, s.streaming.tokens_per_second_sum,
                                            s.streaming.tokens_per_second_count)),
           json=("streaming_stats.tokens_per_second",), csv="tokens_per_second"),
    Metric(name="fakeai_active_streams", kind="gauge", help="Streams open now.",
           read=_one(lambda s: s.streaming.active_streams),
           json=("streaming_stats.active_streams", "summary.active_streams")),
    Metric(name="fakeai_error_ratio", kind="gauge", unit="ratio",
           help="Failed / finished requests over the sliding window (0..1).", window=_ENDPOINT_WINDOW,
           read=_one(lambda s: s.totals.error_rate_percentage / 100.0)),
    Metric(name="fakeai_health", kind="gauge", labels=("status",),
           help="1 for the current health level (error rate: healthy < 5% <= degraded <= 10% < unhealthy), "
                "0 for the others.", window=_ENDPOINT_WINDOW, read=_health),
    # -- Prometheus-native families ---------------------------------------------------------
    Metric(name="fakeai_requests_total", kind="counter", unit="requests", help="Requests finished since start.",
           labels=("endpoint",), read=_by_endpoint(lambda ep: ep.requests_total),
           json=("totals.{endpoint}.requests",)),
    Metric(name="fakeai_errors_total", kind="counter", unit="requests",
           help="Failed requests since start, by HTTP status.", labels=("endpoint", "status"),
           read=_errors_by_status, json=("errors_by_status.{endpoint}.{status}",)),
    Metric(name="fakeai_tokens_total", kind="counter", unit="tokens",
           help="Tokens since start, by kind (prompt, completion).", labels=("endpoint", "kind"),
           read=_by_endpoint_and_kind(lambda ep: ep.prompt_tokens_total, lambda ep: ep.completion_tokens_total),
           json=("totals.{endpoint}.{kind}_tokens",)),
    Metric(name="fakeai_streams_total", kind="counter", help="Streams ended since start, by outcome.",
           labels=("outcome",), read=_streams,
           json=("streaming_stats.{outcome}_streams",)),
    Metric(name="fakeai_dropped_samples_total", kind="counter",
           help="Window samples discarded because a window was full (counters lose nothing).",
           read=_one(lambda s: s.dropped_samples), json=("dropped_samples",)),
    Metric(name="fakeai_history_points_stored_total", kind="counter",
           help="Metrics history points committed to the history database by this server.",
           cell=Cell("c|history_points_stored"), json=("history.points_stored",)),
    Metric(name="fakeai_history_points_dropped_total", kind="counter",
           help="Metrics history points the history database never got: its queue was full (the disk stalled) "
                "or the write failed.",
           cell=Cell("c|history_points_dropped"), json=("history.points_dropped",)),
    Metric(name="fakeai_model_labels", kind="gauge",
           help='Model names with a label of their own; requests for any other model_name="__other__".',
           read=_one(lambda s: s.label_space.model_labels), json=("label_space.model_labels",)),
    Metric(name="fakeai_model_label_budget", kind="gauge", help="Model names that can have a label of their own.",
           read=_one(lambda s: s.label_space.model_label_budget), json=("label_space.model_label_budget",)),
    Metric(name="fakeai_model_other_requests_total", kind="counter", unit="requests",
           help='Requests counted under model_name="__other__" (their model had no label of its own).',
           read=_one(lambda s: s.label_space.other_requests), json=("label_space.other_requests",)),
    Metric(name="fakeai_unrecorded_figures_total", kind="counter",
           help="Figures that found no room in a metrics region and were not recorded (0 unless a bug).",
           read=_one(lambda s: s.label_space.unrecorded_figures), json=("label_space.unrecorded_figures",)),
    Metric(name="fakeai_request_duration_seconds", kind="histogram", unit="seconds",
           help="Request duration until the last byte.", labels=("endpoint",), buckets=DURATION_BUCKETS,
           read=_by_endpoint(lambda ep: ep.duration_histogram)),
    Metric(name="fakeai_time_to_first_token_seconds", kind="histogram", unit="seconds",
           help="Time to first token of streams: until the write carrying it was made.", buckets=DURATION_BUCKETS,
           read=_one(lambda s: s.streaming.ttft_histogram)),
    Metric(name="fakeai_inter_token_latency_seconds", kind="histogram", unit="seconds",
           help="Every gap between two consecutive streamed tokens of a choice (0 between tokens sent in one write).",
           buckets=INTER_TOKEN_BUCKETS, read=_one(lambda s: s.streaming.itl_gaps_histogram)),
    Metric(name="fakeai_paced_lateness_seconds", kind="histogram", unit="seconds",
           help="How long after its deadline the timer served each piece of paced work: a stream's token "
                "(written then), a plain answer's end, a step of the engine model (Linux's timerfd pacer).",
           buckets=LATENESS_BUCKETS, cell=Cell("h|paced_lateness", bounds="lateness")),
    Metric(name="fakeai_stream_mean_inter_token_latency_seconds", kind="histogram", unit="seconds",
           help="Mean inter-token latency of each finished stream of two or more tokens.",
           buckets=INTER_TOKEN_BUCKETS, read=_one(lambda s: s.streaming.itl_histogram)),
    Metric(name="fakeai_request_prompt_tokens", kind="histogram", unit="tokens", help="Prompt tokens per request.",
           labels=("endpoint",), buckets=TOKEN_COUNT_BUCKETS,
           read=_by_endpoint(lambda ep: ep.prompt_tokens_histogram)),
    Metric(name="fakeai_request_completion_tokens", kind="histogram", unit="tokens",
           help="Completion tokens per request.", labels=("endpoint",), buckets=TOKEN_COUNT_BUCKETS,
           read=_by_endpoint(lambda ep: ep.completion_tokens_histogram)),
    Metric(name="fakeai_requests_in_flight", kind="gauge", unit="requests", help="API requests being served now.",
           read=_one(lambda s: s.in_flight), json=("summary.requests_in_flight",)),
    Metric(name="fakeai_uptime_seconds", kind="gauge", unit="seconds", help="Seconds since the server started.",
           read=_one(lambda s: s.uptime_seconds), json=("uptime_seconds",)),
    Metric(name="fakeai_window_seconds", kind="gauge", unit="seconds", help="Length of the sliding window.",
           read=_one(lambda s: s.window_seconds), json=("window_seconds",)),
    Metric(name="fakeai_processes", kind="gauge", help="Server processes (workers) alive whose metrics these are.",
           read=_one(lambda s: s.processes), json=("processes",)),
    Metric(name="fakeai_kernel_compiled", kind="gauge",
           help="1 when the compiled sliding-window kernel is in use, 0 for the pure-Python one.",
           read=_one(lambda s: int(s.kernel == "compiled"))),
    # -- alert webhooks and the OTLP export (fakeai.api.alerting, fakeai.api.otlp_push) ---------
    Metric(name="fakeai_alert_notifications_sent_total", kind="counter",
           help="Alert webhook notifications a receiver accepted (2xx), every receiver together.",
           cell=Cell("c|alert_notifications_sent")),
    Metric(name="fakeai_alert_notifications_failed_total", kind="counter",
           help="Alert webhook notifications given up: refused, timed out or answered with an error at every "
                "attempt, or refused with a 4xx.", cell=Cell("c|alert_notifications_failed")),
    Metric(name="fakeai_alert_notifications_dropped_total", kind="counter",
           help="Alert webhook notifications never tried: their receiver's queue was full (the oldest waiting "
                "one is dropped).", cell=Cell("c|alert_notifications_dropped")),
    Metric(name="fakeai_alert_notification_retries_total", kind="counter",
           help="Failed attempts to deliver an alert webhook notification that were tried again.",
           cell=Cell("c|alert_notification_retries")),
    Metric(name="fakeai_otlp_exports_sent_total", kind="counter",
           help="OTLP metrics exports the collector accepted.", cell=Cell("c|otlp_exports_sent")),
    Metric(name="fakeai_otlp_exports_failed_total", kind="counter",
           help="OTLP metrics exports that failed (after the exporter's own retries).",
           cell=Cell("c|otlp_exports_failed")),
    # -- the simulated KV caches and router -------------------------------------------------
    Metric(name="fakeai_kv_cache_requests_total", kind="counter", unit="requests",
           help="Requests routed to each simulated worker.", labels=("worker",),
           read=_by_worker(lambda w: w.requests_routed), json=("smart_routing.workers.{worker}.requests_routed",)),
    Metric(name="fakeai_kv_cache_hit_requests_total", kind="counter", unit="requests",
           help="Requests that found at least one prompt block cached.",
           read=_one(lambda s: s.kv_cache.total.hit_requests), json=("kv_cache.total.hit_requests",)),
    Metric(name="fakeai_kv_cache_prompt_tokens_total", kind="counter", unit="tokens",
           help="Prompt tokens looked up in each worker's cache.", labels=("worker",),
           read=_by_worker(lambda w: w.prompt_tokens), json=("smart_routing.workers.{worker}.prompt_tokens",)),
    Metric(name="fakeai_kv_cache_cached_tokens_total", kind="counter", unit="tokens",
           help="Prompt tokens found in each worker's cache (not prefilled).", labels=("worker",),
           read=_by_worker(lambda w: w.cached_tokens), json=("smart_routing.workers.{worker}.cached_tokens",)),
    Metric(name="fakeai_kv_cache_oracle_cached_tokens_total", kind="counter", unit="tokens",
           help="Prompt tokens an oracle router (longest cached prefix) would have found cached.",
           read=_one(lambda s: s.kv_cache.total.oracle_cached_tokens),
           json=("kv_cache.total.oracle_cached_tokens",)),
    Metric(name="fakeai_kv_cache_evictions_total", kind="counter", unit="blocks",
           help="Blocks evicted from each worker's cache.", labels=("worker",),
           read=_by_worker(lambda w: w.evictions), json=("smart_routing.workers.{worker}.evictions",)),
    Metric(name="fakeai_kv_cache_blocks", kind="gauge", unit="blocks", help="Blocks held in each worker's cache.",
           labels=("worker",), read=_by_worker(lambda w: w.blocks_used),
           json=("smart_routing.workers.{worker}.blocks_used",)),
    Metric(name="fakeai_kv_cache_capacity_blocks", kind="gauge", unit="blocks",
           help="Capacity of each worker's cache, in blocks.", labels=("worker",),
           read=_by_worker(lambda w: w.capacity_blocks), json=("smart_routing.workers.{worker}.capacity_blocks",)),
    Metric(name="fakeai_kv_cache_usage_ratio", kind="gauge", unit="ratio",
           help="Blocks held / capacity of each worker's cache (0..1).", labels=("worker",),
           read=_by_worker(lambda w: w.usage), json=("smart_routing.workers.{worker}.usage",)),
    Metric(name="fakeai_kv_worker_active_requests", kind="gauge", unit="requests",
           help="Requests running on each simulated worker.", labels=("worker",),
           read=_by_worker(lambda w: w.active_requests), json=("smart_routing.workers.{worker}.active_requests",)),
    # -- the engine model (fakeai.simulation.scheduler), per simulated engine, every model together --
    Metric(name="engine_requests_running", kind="value", unit="requests",
           help="Requests in each simulated engine's batch now (vllm:num_requests_running, every model together).",
           labels=("worker",), read=_by_worker(lambda w: w.requests_running),
           json=("smart_routing.workers.{worker}.requests_running",)),
    Metric(name="engine_requests_waiting", kind="value", unit="requests",
           help="Requests in each simulated engine's waiting queue now (vllm:num_requests_waiting, every model "
                "together).", labels=("worker",), read=_by_worker(lambda w: w.requests_waiting),
           json=("smart_routing.workers.{worker}.requests_waiting",)),
    Metric(name="engine_preemptions", kind="value", unit="requests",
           help="Requests each simulated engine preempted since start (vllm:num_preemptions_total, every model "
                "together).", labels=("worker",), read=_by_worker(lambda w: w.preemptions),
           json=("smart_routing.workers.{worker}.preemptions",)),
    Metric(name="requests_running", kind="value", unit="requests",
           help="Requests in every simulated engine's batch now (the sum of vllm:num_requests_running).",
           read=_one(lambda s: s.kv_cache.requests_running), json=("summary.requests_running",)),
    Metric(name="requests_waiting", kind="value", unit="requests",
           help="Requests in every simulated engine's waiting queue now (the sum of vllm:num_requests_waiting).",
           read=_one(lambda s: s.kv_cache.requests_waiting), json=("summary.requests_waiting",)),
    Metric(name="fakeai_kv_cache_hit_ratio", kind="gauge", unit="ratio",
           help="Cached / looked-up prompt tokens over the sliding window (0..1; NaN with no requests).",
           window="routed requests' prompt and cached tokens", read=_one(lambda s: s.kv_cache.window.hit_rate),
           json=("kv_cache.cache_hit_rate",)),
    Metric(name="fakeai_kv_cache_miss_ratio", kind="gauge", unit="ratio",
           help="1 - fakeai_kv_cache_hit_ratio, over the sliding window.",
           window="routed requests' prompt and cached tokens", read=_one(lambda s: s.kv_cache.window.miss_rate),
           json=("kv_cache.cache_miss_rate",)),
    Metric(name="fakeai_kv_cache_request_hit_ratio", kind="gauge", unit="ratio",
           help="Requests with a cached block / requests routed, over the sliding window (0..1).",
           window="routed requests' cached tokens", read=_one(lambda s: s.kv_cache.window.request_hit_rate),
           json=("kv_cache.request_hit_rate",)),
    Metric(name="fakeai_kv_cache_average_token_reduction_tokens", kind="gauge", unit="tokens",
           help="Mean cached (not prefilled) prompt tokens per request over the sliding window.",
           window="routed requests' cached tokens", read=_one(lambda s: s.kv_cache.window.average_token_reduction),
           json=("kv_cache.average_token_reduction",)),
    Metric(name="fakeai_kv_router_efficiency_ratio", kind="gauge", unit="ratio",
           help="Cached tokens achieved / an oracle router's, over the sliding window (0..1; 1 when nothing "
                "was reusable).", window="routed requests' cached and oracle tokens",
           read=_one(lambda s: s.kv_cache.window.router_efficiency), json=("smart_routing.router_efficiency",)),
    # -- window distributions shown in JSON and CSV only --------------------------------------
    Metric(name="stream_inter_token_latency", kind="window", unit="seconds",
           help="Mean inter-token latency of each finished stream of two or more tokens, over the window.",
           window="finished streams' mean inter-token latency", read=_one(lambda s: s.streaming.itl),
           json=("streaming_stats.itl",), csv="itl"),
    Metric(name="endpoint_completion_tokens", kind="window", unit="tokens",
           help="Completion tokens per request over the window; its rate is completion tokens per second.",
           labels=("endpoint",), window="each endpoint's completion tokens per request",
           read=_by_endpoint(lambda ep: ep.completion_tokens), json=("tokens.{endpoint}",), csv="tokens"),
    Metric(name="endpoint_errors", kind="window", unit="seconds",
           help="Durations of failed requests (status >= 400) over the window.", labels=("endpoint",),
           window="each endpoint's failed requests' durations", read=_by_endpoint(lambda ep: ep.errors),
           json=("errors.{endpoint}",), csv="errors"),
    Metric(name="endpoint_prompt_tokens", kind="window", unit="tokens",
           help="Prompt tokens per request over the window; its rate is prompt tokens per second.",
           labels=("endpoint",), window="each endpoint's prompt tokens per request",
           read=_by_endpoint(lambda ep: ep.prompt_tokens), json=("prompt_tokens.{endpoint}",)),
    Metric(name="kv_prompt_tokens", kind="window", unit="tokens",
           help="Prompt tokens looked up per routed request over the window; its rate is tokens per second.",
           window="routed requests' prompt tokens", read=_one(lambda s: s.kv_cache.prompt_tokens),
           csv="kv_prompt_tokens"),
    Metric(name="kv_cached_tokens", kind="window", unit="tokens",
           help="Prompt tokens found cached per routed request (0 for a miss) over the window.",
           window="routed requests' cached tokens", read=_one(lambda s: s.kv_cache.cached_tokens),
           csv="kv_cached_tokens"),
    # -- figures shown in JSON only ------------------------------------------------------------
    Metric(name="health_status", kind="value",
           help="The health level: healthy, degraded or unhealthy (as fakeai_health shows it).",
           window=_ENDPOINT_WINDOW, read=_one(lambda s: s.totals.health), json=("summary.status",)),
    Metric(name="total_requests_per_second", kind="value", unit="requests",
           help="Requests finished per second over the sliding window, every endpoint together.",
           window=_ENDPOINT_WINDOW, read=_one(lambda s: s.totals.requests_per_second),
           json=("summary.total_requests_per_second",)),
    Metric(name="total_errors_per_second", kind="value", unit="requests",
           help="Failed requests (status >= 400) per second over the sliding window, every endpoint together.",
           window="each endpoint's failed requests' durations", read=_one(lambda s: s.totals.errors_per_second),
           json=("summary.total_errors_per_second",)),
    Metric(name="error_rate_percentage", kind="value", unit="percent",
           help="Failed / finished requests over the sliding window, in percent (100 x fakeai_error_ratio).",
           window=_ENDPOINT_WINDOW, read=_one(lambda s: s.totals.error_rate_percentage),
           json=("summary.error_rate_percentage",)),
    Metric(name="average_latency_seconds", kind="value", unit="seconds",
           help="Mean duration of the requests finished in the sliding window, every endpoint together (0 with none).",
           window=_ENDPOINT_WINDOW, read=_one(lambda s: s.totals.average_latency_seconds),
           json=("summary.average_latency_seconds",)),
    Metric(name="stream_completion_rate", kind="value", unit="ratio",
           help="Completed / ended streams since start (0..1; 0 before the first stream ends).",
           read=_one(lambda s: s.streaming.completion_rate), json=("streaming_stats.completion_rate",)),
    Metric(name="endpoint_errors_total", kind="value", unit="requests",
           help="Failed requests since start, every status together.", labels=("endpoint",),
           read=_by_endpoint(lambda ep: sum(ep.errors_total.values())), json=("totals.{endpoint}.errors",)),
    Metric(name="endpoint_latency_seconds_sum", kind="value", unit="seconds",
           help="Sum of request durations since start (fakeai_request_duration_seconds_sum).", labels=("endpoint",),
           read=_by_endpoint(lambda ep: ep.duration_histogram.sum), json=("totals.{endpoint}.latency_seconds_sum",)),
    Metric(name="kernel", kind="value", help="The sliding-window kernel in use: compiled or python.",
           read=_one(lambda s: s.kernel), json=("kernel",)),
    Metric(name="kv_routing_policy", kind="value",
           help="The simulated router's policy (kv-aware, round-robin, random, least-loaded).",
           read=_one(lambda s: s.kv_cache.policy), json=("smart_routing.policy",)),
    Metric(name="kv_cache_usage", kind="value", unit="ratio",
           help="Blocks held / capacity of every simulated worker's cache together (0..1).",
           read=_one(lambda s: s.kv_cache.usage), json=("kv_cache.usage",)),
    Metric(name="kv_cache_evictions", kind="value", unit="blocks",
           help="Blocks evicted from every simulated worker's cache since start.",
           read=_one(lambda s: s.kv_cache.evictions), json=("kv_cache.evictions",)),
    # -- vLLM's drop-in names, with vLLM's meaning (vllm/v1/metrics/loggers.py) ----------------
    # Every family is labelled model_name and engine (a simulated KV worker); a generation
    # request is counted on the engine the router sent it to.
    Metric(name="vllm:num_requests_running", kind="gauge", unit="requests",
           help="Number of requests in model execution batches.", labels=_ENGINE,
           read=_by_model_engine(lambda e: e.running), json=_engine_json("requests_running")),
    Metric(name="vllm:num_requests_waiting", kind="gauge", unit="requests",
           help="Number of requests waiting to be processed.", labels=_ENGINE,
           read=_by_model_engine(lambda e: e.waiting), json=_engine_json("requests_waiting")),
    Metric(name="vllm:engine_sleep_state", kind="gauge",
           help="Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; "
                "weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
           labels=(*_ENGINE, "sleep_state"), read=_sleep_state),
    Metric(name="vllm:kv_cache_usage_perc", kind="gauge", unit="ratio",
           help="KV-cache usage. 1 means 100 percent usage.", labels=_ENGINE,
           read=_by_engine(lambda w: w.usage)),
    Metric(name="vllm:prefix_cache_queries_total", kind="counter", unit="tokens",
           help="Prefix cache queries, in terms of number of queried tokens.", labels=_ENGINE,
           read=_by_engine(lambda w: w.prompt_tokens)),
    Metric(name="vllm:prefix_cache_hits_total", kind="counter", unit="tokens",
           help="Prefix cache hits, in terms of number of cached tokens.", labels=_ENGINE,
           read=_by_engine(lambda w: w.cached_tokens)),
    Metric(name="vllm:num_preemptions_total", kind="counter", unit="requests",
           help="Cumulative number of preemption from the engine.", labels=_ENGINE,
           read=_by_model_engine(lambda e: e.preemptions_total)),
    Metric(name="vllm:prompt_tokens_total", kind="counter", unit="tokens", help="Number of prefill tokens processed.",
           labels=_ENGINE, read=_by_model_engine(lambda e: e.prompt_tokens_total),
           json=_engine_json("prompt_tokens")),
    Metric(name="vllm:prompt_tokens_by_source_total", kind="counter", unit="tokens",
           help="Number of prompt tokens by source.", labels=(*_ENGINE, "source"), read=_prompt_tokens_by_source),
    Metric(name="vllm:prompt_tokens_cached_total", kind="counter", unit="tokens",
           help="Number of cached prompt tokens (local + external).", labels=_ENGINE,
           read=_by_model_engine(lambda e: e.cached_prompt_tokens_total), json=_engine_json("prompt_tokens_cached")),
    Metric(name="vllm:generation_tokens_total", kind="counter", unit="tokens",
           help="Number of generation tokens processed.", labels=_ENGINE,
           read=_by_model_engine(lambda e: e.generation_tokens_total), json=_engine_json("generation_tokens")),
    Metric(name="vllm:request_success_total", kind="counter", unit="requests",
           help="Count of successfully processed requests.", labels=(*_ENGINE, "finished_reason"),
           read=_success_by_reason, json=_engine_json("requests_succeeded.{finished_reason}")),
    Metric(name="vllm:request_prompt_tokens", kind="histogram", unit="tokens",
           help="Number of prefill tokens processed.", labels=_ENGINE, buckets=VLLM_TOKEN_BUCKETS,
           read=_by_model_engine(lambda e: e.prompt_tokens_histogram)),
    Metric(name="vllm:request_generation_tokens", kind="histogram", unit="tokens",
           help="Number of generation tokens processed.", labels=_ENGINE, buckets=VLLM_TOKEN_BUCKETS,
           read=_by_model_engine(lambda e: e.generation_tokens_histogram)),
    Metric(name="vllm:request_max_num_generation_tokens", kind="histogram", unit="tokens",
           help="Histogram of maximum number of requested generation tokens.", labels=_ENGINE,
           buckets=VLLM_TOKEN_BUCKETS, read=_by_model_engine(lambda e: e.max_generation_tokens_histogram)),
    Metric(name="vllm:request_params_n", kind="histogram", help="Histogram of the n request parameter.",
           labels=_ENGINE, buckets=VLLM_N_BUCKETS, read=_by_model_engine(lambda e: e.n_histogram)),
    Metric(name="vllm:request_params_max_tokens", kind="histogram", unit="tokens",
           help="Histogram of the max_tokens request parameter.", labels=_ENGINE, buckets=VLLM_TOKEN_BUCKETS,
           read=_by_model_engine(lambda e: e.max_tokens_histogram)),
    Metric(name="vllm:time_to_first_token_seconds", kind="histogram", unit="seconds",
           help="Histogram of time to first token in seconds.", labels=_ENGINE, buckets=VLLM_TTFT_BUCKETS,
           read=_by_model_engine(lambda e: e.ttft_histogram)),
    Metric(name="vllm:inter_token_latency_seconds", kind="histogram", unit="seconds",
           help="Histogram of inter-token latency in seconds.", labels=_ENGINE, buckets=VLLM_INTER_TOKEN_BUCKETS,
           read=_by_model_engine(lambda e: e.itl_histogram)),
    Metric(name="vllm:request_time_per_output_token_seconds", kind="histogram", unit="seconds",
           help="Histogram of time_per_output_token_seconds per request.", labels=_ENGINE,
           buckets=VLLM_INTER_TOKEN_BUCKETS, read=_by_model_engine(lambda e: e.tpot_histogram)),
    Metric(name="vllm:e2e_request_latency_seconds", kind="histogram", unit="seconds",
           help="Histogram of e2e request latency in seconds.", labels=_ENGINE,
           buckets=VLLM_REQUEST_LATENCY_BUCKETS, read=_by_model_engine(lambda e: e.e2e_histogram)),
    Metric(name="vllm:request_queue_time_seconds", kind="histogram", unit="seconds",
           help="Histogram of time spent in WAITING phase for request.", labels=_ENGINE,
           buckets=VLLM_REQUEST_LATENCY_BUCKETS, read=_by_model_engine(lambda e: e.queue_histogram)),
    Metric(name="vllm:request_inference_time_seconds", kind="histogram", unit="seconds",
           help="Histogram of time spent in RUNNING phase for request.", labels=_ENGINE,
           buckets=VLLM_REQUEST_LATENCY_BUCKETS, read=_by_model_engine(lambda e: e.inference_histogram)),
    Metric(name="vllm:request_prefill_time_seconds", kind="histogram", unit="seconds",
           help="Histogram of time spent in PREFILL phase for request.", labels=_ENGINE,
           buckets=VLLM_REQUEST_LATENCY_BUCKETS, read=_by_model_engine(lambda e: e.prefill_histogram)),
    Metric(name="vllm:request_decode_time_seconds", kind="histogram", unit="seconds",
           help="Histogram of time spent in DECODE phase for request.", labels=_ENGINE,
           buckets=VLLM_REQUEST_LATENCY_BUCKETS, read=_by_model_engine(lambda e: e.decode_histogram)),
    Metric(name="vllm:request_prefill_kv_computed_tokens", kind="histogram", unit="tokens",
           help="Histogram of new KV tokens computed during prefill (excluding cached tokens).", labels=_ENGINE,
           buckets=VLLM_TOKEN_BUCKETS, read=_by_model_engine(lambda e: e.prefill_kv_computed_histogram)),
)
"""Every metric, in the order the exposition shows them."""

DASHBOARD_PATHS: tuple[tuple[str, ...], ...] = (
    ("summary", "status"), ("summary", "total_requests_per_second"), ("summary", "error_rate_percentage"),
    ("summary", "average_latency_seconds"), ("streaming_stats", "active_streams"),
    ("streaming_stats", "completed_streams"), ("streaming_stats", "failed_streams"),
    ("streaming_stats", "completion_rate"), ("streaming_stats", "ttft", "p99"), ("streaming_stats", "itl", "p99"),
    ("streaming_stats", "tokens_per_second", "p99"), ("kv_cache", "cache_hit_rate"), ("kv_cache", "cache_miss_rate"),
    ("kv_cache", "average_token_reduction"), ("kv_cache", "usage"), ("smart_routing", "policy"),
    ("summary", "requests_running"), ("summary", "requests_waiting"),
    ("smart_routing", "router_efficiency"), ("kernel",), ("window_seconds",),
)
"""``GET /metrics`` JSON paths the dashboard binds (``fakeai/dashboard``'s ``data-metric``
attributes; a test checks each exists in a real document and that the page binds them)."""


def _check(metrics: Iterable[Metric]) -> None:
    """Names, kinds and buckets, validated once at import (as prometheus_client does)."""
    import re

    family = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
    label = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
    seen: set[str] = set()
    for metric in metrics:
        if metric.name in seen:
            raise ValueError(f"{metric.name} is declared twice")
        seen.add(metric.name)
        if not family.match(metric.name) or metric.name.startswith("__"):
            raise ValueError(f"not a metric name: {metric.name!r}")
        if (metric.read is None) == (metric.cell is None) and metric.read is None:
            raise ValueError(f"{metric.name}: a metric reads the snapshot or has a cell of its own")
        if metric.cell is not None:
            if metric.cell.bounds is not None and BUCKETS.get(metric.cell.bounds) != metric.buckets:
                raise ValueError(f"{metric.name}: its cell's bucket set must be its buckets")
            if metric.labels != SCOPE_LABELS[metric.cell.scope]:
                raise ValueError(f"{metric.name}: a metric with cells of its own is labelled by its scope only")
        if metric.kind == "counter" and not metric.name.endswith("_total"):
            raise ValueError(f"counter {metric.name} must end in _total")
        if (metric.kind == "histogram") != (metric.buckets is not None):
            raise ValueError(f"{metric.name}: buckets are for histograms, and every histogram has them")
        if metric.buckets is not None and list(metric.buckets) != sorted(set(metric.buckets)):
            raise ValueError(f"{metric.name}: bucket bounds must increase")
        for name in metric.labels:
            if not label.match(name) or name.startswith("__") or name in ("le", "quantile"):
                raise ValueError(f"{metric.name}: not a label name: {name!r}")
        for path in metric.json:
            named = set(re.findall(r"\{(\w*)\}", path)) | {key for key, _ in json_path(path)[1]}
            if not named <= set(metric.labels):
                raise ValueError(f"{metric.name}: JSON path {path!r} names a label it does not have")


def json_path(path: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """A declared JSON path's parts (each may hold ``{label}``) and the label values it is
    restricted to (its trailing ``[label=value,...]``)."""
    where: tuple[tuple[str, str], ...] = ()
    if path.endswith("]"):
        path, _, condition = path[:-1].partition("[")
        where = tuple(tuple(term.split("=", 1)) for term in condition.split(","))  # type: ignore[misc]
    return tuple(path.split(".")), where


_check(METRICS)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def metrics_table(metrics: Iterable[Metric] = METRICS) -> str:
    """The metrics reference of docs/metrics.md, in Markdown (a test keeps the page equal to it)."""
    rows = ["| name | kind | unit | labels | JSON | CSV | meaning |", "|---|---|---|---|---|---|---|"]
    for metric in metrics:
        labels = ", ".join(f"`{label}`" for label in metric.labels) or "-"
        json_paths = "<br>".join(f"`{path}`" for path in metric.json) or "-"
        csv = f"`{metric.csv}`" if metric.csv else "-"
        rows.append(f"| `{metric.name}` | {metric.kind} | {metric.unit or '-'} | {labels} | {json_paths} | {csv} | "
                    f"{_cell(metric.help)} |")
    return "\n".join(rows) + "\n"
