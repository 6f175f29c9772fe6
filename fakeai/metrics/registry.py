"""The metrics registry: where requests are recorded and snapshots are taken.

One registry per app (per process), injected where it is needed; nothing here is global.
The request path notes what it learns of a request in its ``RequestFacts`` and records it
with three compiled calls of the kernel's ``MetricsWriter``: ``writer.admit`` when it is
admitted (``admit`` here when the writer has not mapped the model's name: its first request,
or one counted in a shared label's cells), ``writer.route_request`` when the KV router sends
a generation request to a simulated engine, and ``writer.finish`` once when it ends;
``stream_started`` when a stream opens. Other callers use ``request_started``, ``routed``
and ``record``, the same recording with explicit arguments. A scrape calls ``snapshot`` once
and hands the result to an exporter. Every metric fakeai reports is declared in
``schema.py``.

Recording writes into this process's region (``regions.py``): counters and histograms in
place, and one journal record per request, all by the writer. vLLM's families are per model
and engine (``EngineCells``): only a request routed to an engine is in them. A model is
counted under its label in the server's label table, or under ``__other__`` (``labels.py``):
the label is looked up once per distinct name and process, never per request.

A snapshot reads every region of the server (one, or one per worker process): counters and
histograms are summed, gauges summed over live processes, and each region's journal is
replayed into this process's windows of it; a figure over the window is computed on the
union of every region's samples, so percentiles are exact over all workers.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Generator, Iterable, Sequence
from itertools import accumulate

from fakeai.metrics.health import HealthReading, error_rate_percentage, health_status
from fakeai.metrics.instruments import DEFAULT_MAX_MODEL_LEN, HistogramSnapshot
from fakeai.metrics.kvcache import KVCacheStats
from fakeai.metrics.labels import (
    DEFAULT_MODEL_LABELS,
    OTHER_KEY,
    OTHER_MODEL,
    ModelLabels,
    region_capacity,
)
from fakeai.metrics.slicing import SLICE_SECONDS, no_deadline, run, run_in_slices
from fakeai.metrics.schema import CELLS, METRICS, Cell, Metric, bucket_sets, cell, writer_layout
from fakeai.metrics.regions import DROPPED_KEY, SHARED_DIR_ENV, RegionReader, Regions
from fakeai.metrics.snapshot import (
    EndpointSnapshot,
    EngineSnapshot,
    LabelSpaceSnapshot,
    MetricsSnapshot,
    ModelSnapshot,
    StreamingSnapshot,
    Totals,
    WindowStats,
)
from fakeai.region import EndpointCells, EngineCells, MetricsWriter, ModelCells, RequestFacts
from fakeai.window import DEFAULT_MAX_SAMPLES, KERNEL, SlidingWindow, summarize

__all__ = ("QUANTILES", "STARTED_AT_ENV", "MetricsRegistry")

_NAN = math.nan

QUANTILES = (0.5, 0.9, 0.99)
"""The quantiles every snapshot reports (p50, p90, p99)."""

CATCH_UP_RECORDS = 32
"""Journal records a read replays between two points where the event loop may run: about
0.1 ms of work when the windows are out of the CPU's caches (as they are under load)."""

HISTOGRAMS_PER_STEP = 4
"""An engine's histograms a snapshot assembles between two points where the event loop may run."""

STARTED_AT_ENV = "FAKEAI_STARTED_AT"
"""The server's start on the monotonic clock, set by ``fakeai serve`` for its workers."""

STREAM_PLAIN, STREAM_COMPLETED, STREAM_FAILED = 0, 1, 2
_OTHER_REQUESTS = cell("c|model_other_requests")
_UNRECORDED = cell("c|unrecorded_figures")
_ENDPOINT_REQUESTS, _ENDPOINT_PROMPT, _ENDPOINT_COMPLETION, _ENDPOINT_ERRORS = (
    cell(key) for key in ("c|requests", "c|prompt_tokens", "c|completion_tokens", "c|errors"))
_DURATION, _PROMPT_HISTOGRAM, _COMPLETION_HISTOGRAM = (
    cell(key) for key in ("h|duration", "h|prompt_tokens", "h|completion_tokens"))
_STREAMS_COMPLETED, _STREAMS_FAILED, _ACTIVE_STREAMS = (
    cell(key) for key in ("c|streams|completed", "c|streams|failed", "g|active_streams"))
_TPS_SUM, _TPS_COUNT, _STREAM_TTFT, _STREAM_ITL, _STREAM_ITL_GAPS = (
    cell(key) for key in ("c|stream_tokens_per_second_sum", "c|stream_tokens_per_second_count", "h|stream_ttft",
                          "h|stream_itl", "h|stream_itl_gaps"))
_RUNNING = cell("g|running")
_ENGINE = {declared.slot: declared for declared in CELLS if declared.scope == "engine"}
"""A (model, engine) pair's cells by slot; ``prompt``'s key, a counter made first, finds the pairs."""
_ENGINE_HISTOGRAMS = {
    "ttft_histogram": "ttft", "itl_histogram": "itl", "tpot_histogram": "tpot", "e2e_histogram": "e2e",
    "queue_histogram": "queue", "inference_histogram": "inference", "prefill_histogram": "prefill",
    "decode_histogram": "decode", "prompt_tokens_histogram": "prompt_histogram",
    "generation_tokens_histogram": "generation_histogram",
    "max_generation_tokens_histogram": "max_generation_histogram", "max_tokens_histogram": "max_tokens_histogram",
    "prefill_kv_computed_histogram": "prefill_kv_histogram", "n_histogram": "n_histogram",
}
"""``EngineSnapshot``'s histograms and the slots of their cells."""
PRESET_REASONS = ("abort", "length", "stop")
"""The finish reasons every engine shows, at 0 until one ends so (vLLM pre-creates them)."""

Clock = Callable[[], float]


def _by_engine(models: dict[str, ModelSnapshot]) -> dict[int, tuple[int, int, int]]:
    """Each engine's (running, waiting, preemptions), every model together."""
    engines: dict[int, tuple[int, int, int]] = {}
    for model in models.values():
        for engine_id, engine in model.engines.items():
            running, waiting, preemptions = engines.get(int(engine_id), (0, 0, 0))
            engines[int(engine_id)] = (running + engine.running, waiting + engine.waiting,
                                       preemptions + engine.preemptions_total)
    return engines


class _Cells:
    """Every region's cells, added up by key: counters and histograms over all regions,
    gauges over the regions whose process is alive."""

    def __init__(self, buckets: dict[str, tuple[float, ...]],
                 kept: dict[str, tuple[Sequence[float], HistogramSnapshot]] | None = None) -> None:
        self.buckets = buckets
        self.kept = {} if kept is None else kept
        """Each histogram last read, by key, with the block it was read from: an unchanged
        block gives the same object again (and an exporter that kept its rendering, that)."""
        self.values: dict[str, float] = defaultdict(float)
        self.blocks: dict[str, Sequence[float]] = {}
        self._groups: dict[str, dict[str, float]] | None = None

    def add(self, keys: list[tuple[str, int, int]], cells: list[float], alive: bool) -> None:
        self._groups = None
        values = self.values
        for name, first, count in keys:
            kind = name[0]
            if kind == "h":
                block = self.blocks.get(name)
                if block is None:
                    self.blocks[name] = cells[first : first + count]
                else:
                    for offset in range(count):
                        block[offset] += cells[first + offset]
            elif kind == "c" or (kind == "g" and alive):  # not "s", the writer's spill block
                values[name] += cells[first]

    def count(self, name: str) -> int:
        return int(self.values.get(name, 0.0))

    def group(self) -> dict[str, dict[str, float]]:
        """Every value by its key's head (all but the last ``|``-separated part) and label (the
        last part): one pass over the keys, once per snapshot, not one per model."""
        groups = self._groups
        if groups is None:
            groups = self._groups = defaultdict(dict)
            for name, value in self.values.items():
                head, _, label = name.rpartition("|")
                groups[head + "|"][label] = value
        return groups

    def labelled(self, prefix: str) -> dict[str, float]:
        """``{label: value}`` of the keys ``prefix + label``, the label being the key's last
        ``|``-separated part (no label value contains ``|``: model labels are table indices)."""
        return self.group().get(prefix, {})

    def histogram(self, declared: Cell, *labels: str) -> HistogramSnapshot:
        bounds = self.buckets[declared.bounds]  # type: ignore[index]
        name = declared.name(*labels)
        block = self.blocks.get(name)
        if block is None:
            block = [0.0] * (len(bounds) + 3)
        kept = self.kept.get(name)
        if kept is not None and kept[0] == block and kept[1].bounds is bounds:
            return kept[1]
        histogram = HistogramSnapshot(
            bounds=bounds, cumulative=tuple(accumulate(map(int, block[: len(bounds) + 1]))),
            sum=block[len(bounds) + 1], count=int(block[len(bounds) + 2])
        )
        self.kept[name] = (block, histogram)
        return histogram


class MetricsRegistry:
    """Recording into this process's region; snapshots of every region of the server.

    Args:
        window_seconds: Length of every sliding window.
        max_samples: Cap of samples per window and of records in each journal (the oldest
            are dropped and counted beyond it).
        clock: Monotonic seconds; drives the windows and uptime. Injectable for tests.
        wall_clock: Unix seconds; only stamps snapshots.
        shared_dir: The directory of the server's regions (``None``: read from
            ``FAKEAI_SHARED_METRICS_DIR``; unset or empty: this process alone).
        started_at: When the server started on ``clock`` (``None``: ``FAKEAI_STARTED_AT``, or now).
        model_label_budget: Distinct models with their own label, the configured ones
            included (see ``labels.py``); the others are counted as ``__other__``.
        configured_models: The models served: they always have a label of their own.
        metrics: The declared metrics (``fakeai.metrics.schema.METRICS``); those with cells
            of their own are recorded by name with ``add`` and ``observe``.
        engines: Simulated engines (KV workers) this process routes requests to: the region
            has room for every model label on each.
        max_model_len: The context length, in tokens: vLLM's token-count buckets go up to it.
    """

    def __init__(
        self,
        *,
        window_seconds: float = 5.0,
        max_samples: int = DEFAULT_MAX_SAMPLES,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        shared_dir: str | None = None,
        started_at: float | None = None,
        model_label_budget: int = DEFAULT_MODEL_LABELS,
        configured_models: Iterable[str] = (),
        metrics: Iterable[Metric] = METRICS,
        engines: int = 4,
        max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    ) -> None:
        self.window_seconds = float(window_seconds)
        self.max_samples = int(max_samples)
        self.kernel = KERNEL
        self._clock = clock
        self._wall_clock = wall_clock
        if started_at is None:
            started_at = float(os.environ[STARTED_AT_ENV]) if os.environ.get(STARTED_AT_ENV) else clock()
        self.started_at = started_at
        self.metrics = tuple(metrics)
        """The declarations this registry records and its snapshots are rendered from."""
        self.buckets = bucket_sets(max_model_len)
        """The bucket sets of every histogram, by name (vLLM's token buckets for this context)."""
        configured_models = tuple(configured_models)
        capacity = max(int(model_label_budget), len(set(configured_models)))
        key_capacity, cell_capacity = region_capacity(capacity, engines, max_model_len, self.metrics)
        self.regions = Regions(
            window_seconds=self.window_seconds,
            max_samples=self.max_samples,
            directory=os.environ.get(SHARED_DIR_ENV) if shared_dir is None else shared_dir,
            key_capacity=key_capacity,
            cell_capacity=cell_capacity,
        )
        self.model_labels = ModelLabels(model_label_budget, configured_models, self.regions.directory)
        """Which model names have a label of their own (shared by the server's processes)."""
        self._declared = {metric.name: metric for metric in self.metrics if metric.cell is not None}
        self._declared_cells: dict[tuple[str, str], int] = {}
        self.next_deadline: Callable[[], float] = no_deadline
        """The earliest paced token's deadline in this process (``time.monotonic``; set by the
        app to its pacer's): a read in slices gives way before it."""
        self._histograms: dict[str, tuple[Sequence[float], HistogramSnapshot]] = {}
        """Each histogram the last snapshots read (``_Cells.kept``)."""
        self._window_epoch = 0
        """Moved by every read that changes the windows (a replay, or a read at a later instant,
        which expires samples): a read taken in steps sees whether its windows stayed still."""
        self.writer = MetricsWriter(self.regions.own, self.buckets, writer_layout())
        """This process's recording handle: the request path calls ``writer.admit``,
        ``writer.route_request`` and ``writer.finish`` (see ``admit``)."""
        for name, metric in self._declared.items():
            if metric.cell.scope == "global":  # made now, as region_need counts them (labelled ones: when first used)
                self._declared_cell(name, None)
        self._model_cells: dict[str, ModelCells] = self.writer.admitted
        """Cells of each labelled model name this process has seen (at most the table's capacity):
        the writer's own map, so ``writer.admit`` finds them without calling back here."""
        self._other: ModelCells | None = None
        """The other bucket's cells, made when a model is first counted there."""
        self._other_requests = self.writer.cell(_OTHER_REQUESTS.name())
        self.kv_cache = KVCacheStats()
        """What the snapshot says about the simulated KV workers besides their counts."""
        self.kv_publish = self.writer.publish
        """``kv_publish(worker, state)``: a simulated KV worker's state, whenever it changes, as
        plain numbers ``(blocks held, capacity in blocks, running requests, evictions so far)``
        (what the simulation's ``PrefixCache.state()`` returns)."""

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def in_flight(self) -> int:
        """API requests admitted by this process and not yet ended (the latency model's load)."""
        return self.writer.running()

    # -- the request path ------------------------------------------------------------------

    def model_cells(self, model: str) -> ModelCells:
        """The cells ``model`` is counted in: its own label's, or the other bucket's."""
        cells = self._model_cells.get(model)
        if cells is not None:
            return cells
        index = self.model_labels.label(model)
        if index is None:
            cells = self._other
            if cells is None:
                cells = self.writer.model(OTHER_KEY)
                if not cells.lossy:
                    self._other = cells
            return cells
        cells = self.writer.model(str(index))
        if not cells.lossy:
            self._model_cells[model] = cells
        return cells

    def request_started(self, model: str) -> ModelCells:
        """An API request for ``model`` was admitted; ``record(model=...)`` ends it.

        Returns the model's cells (``admit`` notes them in a request's facts).
        """
        cells = self._model_cells.get(model)
        if cells is None:
            cells = self.model_cells(model)
            if cells.name == OTHER_KEY:
                self.writer.region.add(self._other_requests, 1.0)
        self.writer.started(cells)
        return cells

    def admit(self, facts: RequestFacts, model: str, endpoint: str) -> None:
        """What ``writer.admit`` does, for any model name: the request path calls the writer
        first and this when the writer has not mapped the name (its first request, or every
        request counted in the other bucket), which maps it when it has a label of its own."""
        facts.model_series = self.request_started(model)
        facts.series = self.writer.endpoint(endpoint)

    def routed(self, model: ModelCells, engine: int, state: tuple[int, int, int, int] | None = None) -> EngineCells:
        """A request admitted for ``model`` (``request_started``'s cells) was sent to simulated
        engine ``engine``: it runs there until ``record`` ends it. Returns the pair's cells.
        With ``state``, the engine's KV state after the request joined it is published too
        (``kv_publish``), in the same call. (A request the engine model runs is routed by
        ``writer.route_request``: the scheduler keeps its gauges.)"""
        if state is not None:
            return self.writer.route(model, engine, state)
        cells = self.writer.engine(model.name, engine)
        self.writer.routed(cells)
        return cells

    def endpoint_series(self, endpoint: str) -> EndpointCells:
        """The cells of ``endpoint`` (made on first use): a request's facts hold them."""
        return self.writer.endpoint(endpoint)

    def stream_started(self) -> None:
        """A stream opened; ``record`` with ``stream_completed`` set closes it."""
        self.writer.stream_started()


    def record(
        self,
        endpoint: str,
        duration: float,
        status: int,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        ttft: float | None = None,
        stream_completed: bool | None = None,
        model: str | None = None,
        finish_reason: str | None = None,
        now: float | None = None,
        kv: tuple | None = None,
        decode: float | None = None,
        n: int = 1,
        max_tokens: int = 0,
        longest: int | None = None,
    ) -> None:
        """Record one finished request.

        Args:
            endpoint: The route path (a bounded set, never the raw URL).
            duration: Seconds from arrival until the last byte was sent.
            status: HTTP status recorded; 400 and above count as errors.
            prompt_tokens: Prompt tokens of the request.
            completion_tokens: Completion tokens sent.
            ttft: Seconds from arrival until the first token was produced (sent, for a
                stream), if one was.
            stream_completed: ``None`` for a plain response; for a stream opened with
                ``stream_started``, whether it finished (True) or ended early (False).
            model: The model of a request admitted with ``request_started``.
            finish_reason: Why a successful generation ended (``stop``, ``length``), or
                ``abort`` when the client left.
            now: When it ended, on the registry's clock (``None``: read the clock now).
            kv: For a request the KV router placed: (worker, prompt tokens looked up, cached
                tokens, an oracle's cached tokens, the worker's state after the request or
                ``None``); with the state (``(blocks, capacity, running, evictions)``, see
                ``kv_publish``), it is published too. A request of a ``model`` placed on a
                worker is a generation request on that engine (vLLM's families), ``routed``
                there when it started.
            decode: Seconds from its first token to its last (``None``: the rest of the
                duration after ``ttft``).
            n: Its ``n`` parameter; ``max_tokens``: its ``max_tokens`` (0: not given);
                ``longest``: tokens of its longest choice (``None``: ``completion_tokens``).
        """
        if now is None:
            now = self._clock()
        itl = _NAN
        if ttft is not None and stream_completed is not None and completion_tokens > 1:
            itl = (duration - ttft) / (completion_tokens - 1)
        stream = STREAM_PLAIN if stream_completed is None else (STREAM_COMPLETED if stream_completed else STREAM_FAILED)
        model_cells = None if model is None else self.model_cells(model)
        worker, kv_prompt, kv_cached, kv_oracle, kv_state = kv if kv is not None else (-1, 0, 0, 0, None)
        engine = None
        if model_cells is not None and worker >= 0:
            engine = self.writer.engine(model_cells.name, worker)
        if decode is None:
            decode = _NAN if ttft is None else duration - ttft
        self.writer.record(
            now, duration, status, prompt_tokens, completion_tokens, self.writer.endpoint(endpoint), model_cells,
            _NAN if ttft is None else ttft, itl, finish_reason, stream, worker, kv_prompt, kv_cached, kv_oracle,
            kv_state, engine, decode, n, max_tokens, completion_tokens if longest is None else longest,
        )

    def add(self, name: str, value: float = 1.0, label: str | None = None) -> None:
        """Add ``value`` to the declared counter (or gauge) ``name``, with cells of its own:
        ``label`` is its scope's (the endpoint's route, the model's name, the KV worker)."""
        self.writer.region.add(self._declared_cell(name, label), value)

    def observe(self, name: str, value: float, label: str | None = None) -> None:
        """Count ``value`` in the declared histogram ``name`` (``label`` as for ``add``)."""
        self.observer(name, label)(value)

    def observer(self, name: str, label: str | None = None) -> Callable[[float], None]:
        """``observe`` for one declared histogram, its cell found once: for a caller on a hot path."""
        return functools.partial(self.writer.region.observe, self._declared_cell(name, label),
                                 self._declared[name].buckets)

    def _declared_cell(self, name: str, label: str | None) -> int:
        found = self._declared_cells.get((name, label))
        if found is not None:
            return found
        declared = self._declared[name].cell
        if declared.scope == "global":
            key = declared.name()
        elif declared.scope == "model":
            key = declared.name(self.model_cells(label).name)
        else:
            key = declared.name(str(label))
        found = self.writer.cell(key, declared.size())
        if found != self.writer.spill:  # no room: tried again (and counted) next time
            self._declared_cells[(name, label)] = found
        return found

    # -- the scrape path -------------------------------------------------------------------

    def _per_second(self, now: float) -> float:
        """1 / the rate divisor: the window length, or the uptime while shorter (the kernel's rule)."""
        divisor = min(self.window_seconds, now - self.started_at)
        return 1.0 / divisor if divisor > 0.0 else 0.0

    def _stats(self, windows: list[SlidingWindow], now: float, per_second: float) -> WindowStats:
        count, total, low, high, (p50, p90, p99) = summarize(windows, now, QUANTILES)
        return WindowStats(
            count=count,
            rate=count * per_second,
            sum=total,
            sum_rate=total * per_second,
            avg=total / count if count else math.nan,
            min=low,
            max=high,
            p50=p50,
            p90=p90,
            p99=p99,
        )

    def snapshot(self) -> MetricsSnapshot:
        """Everything, computed once, at one instant, over every process of the server."""
        return run(self._snapshot_steps())

    async def snapshot_async(self, slice_seconds: float = SLICE_SECONDS) -> MetricsSnapshot:
        """``snapshot()``, letting the event loop run between slices of about ``slice_seconds``,
        and before a paced token's deadline (``next_deadline``). The same figures: every
        region's cells are copied, and every window read, at one instant (``_snapshot_steps``);
        what follows only assembles those copies."""
        return await run_in_slices(self._snapshot_steps(), slice_seconds, self.next_deadline)

    def _snapshot_steps(self) -> Generator[None, None, MetricsSnapshot]:
        """``snapshot()`` in steps: it yields where the loop may run.

        First each region's journal is replayed into its windows, ``CATCH_UP_RECORDS`` records
        at a time (a long backlog -- a worker nobody scraped for a while -- in many slices),
        what is recorded meanwhile included. Then, at one instant, the rest of each journal is
        replayed and the cells copied; every window is read at that instant, one figure's
        windows per step: between those steps the windows must not change, and they do not
        unless another read replays into them meanwhile (every read that does moves
        ``_window_epoch``); then they are read again, at a new instant, in one step. What
        follows only assembles the copies, each region's cells, endpoint, engine (a few
        histograms at a time) and declared series a step, so that no step holds the event
        loop for long (typically about 0.1 ms under load)."""
        readers = yield from self._caught_up_readers()
        read = yield from self._read_windows(readers, sliced=True)
        if read is None:  # another read moved the windows meanwhile
            read = yield from self._read_windows(readers, sliced=False)
        now, per_second, copies, windowed, streaming_stats, overall_latency, kv_stats, dropped = read
        processes = sum(alive for _, alive in readers)
        cells = _Cells(self.buckets, self._histograms)
        for keys, values, alive in copies:
            yield
            cells.add(keys, values, alive)
        yield
        cells.group()
        yield
        dropped += cells.count(DROPPED_KEY)

        # -- the rest assembles the copies ----------------------------------------------------------
        endpoints = {}
        requests = errors = 0
        latency_total = 0.0
        for path, (latency, failed, prompt_tokens, completion_tokens) in windowed.items():
            endpoints[path] = EndpointSnapshot(
                latency=latency,
                errors=failed,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                requests_total=cells.count(_ENDPOINT_REQUESTS.name(path)),
                errors_total={
                    int(status): int(count)
                    for status, count in sorted(cells.labelled(_ENDPOINT_ERRORS.name(path, "")).items(), key=lambda i: int(i[0]))
                },
                prompt_tokens_total=cells.count(_ENDPOINT_PROMPT.name(path)),
                completion_tokens_total=cells.count(_ENDPOINT_COMPLETION.name(path)),
                duration_histogram=cells.histogram(_DURATION, path),
                prompt_tokens_histogram=cells.histogram(_PROMPT_HISTOGRAM, path),
                completion_tokens_histogram=cells.histogram(_COMPLETION_HISTOGRAM, path),
            )
            requests += latency.count
            errors += failed.count
            latency_total += latency.sum
            yield
        completed = cells.count(_STREAMS_COMPLETED.name())
        failed_streams = cells.count(_STREAMS_FAILED.name())
        ended = completed + failed_streams
        error_rate = error_rate_percentage(errors, requests)
        names = self.model_labels.names()  # once: another process's worker may add a name meanwhile
        models = yield from self._models(cells, names)
        series = {}
        for name, metric in self._declared.items():
            series[name] = self._series(cells, metric, names)
            yield
        ttft, tokens_per_second, itl = streaming_stats
        in_flight = int(sum(cells.labelled(_RUNNING.name("")).values()))  # every model's running gauge
        streaming = StreamingSnapshot(
            active_streams=cells.count(_ACTIVE_STREAMS.name()),
            completed_streams=completed,
            failed_streams=failed_streams,
            completion_rate=completed / ended if ended else math.nan,
            ttft=ttft,
            tokens_per_second=tokens_per_second,
            itl=itl,
            tokens_per_second_sum=cells.values.get(_TPS_SUM.name(), 0.0),
            tokens_per_second_count=cells.count(_TPS_COUNT.name()),
            ttft_histogram=cells.histogram(_STREAM_TTFT),
            itl_histogram=cells.histogram(_STREAM_ITL),
            itl_gaps_histogram=cells.histogram(_STREAM_ITL_GAPS),
        )
        yield
        kv_cache = self.kv_cache.snapshot(cells.values, kv_stats, _by_engine(models))  # type: ignore[arg-type]
        yield
        return MetricsSnapshot(
            timestamp=self._wall_clock(),
            uptime_seconds=now - self.started_at,
            window_seconds=self.window_seconds,
            kernel=self.kernel,
            dropped_samples=dropped,
            in_flight=in_flight,
            processes=processes,
            endpoints=endpoints,
            models=models,
            streaming=streaming,
            totals=Totals(
                requests_per_second=requests * per_second,
                errors_per_second=errors * per_second,
                error_rate_percentage=error_rate,
                average_latency_seconds=latency_total / requests if requests else 0.0,
                latency=overall_latency,
                health=health_status(error_rate),
            ),
            label_space=LabelSpaceSnapshot(
                model_label_budget=self.model_labels.capacity,
                model_labels=len(names),
                other_requests=cells.count(_OTHER_REQUESTS.name()),
                unrecorded_figures=cells.count(_UNRECORDED.name()),
            ),
            kv_cache=kv_cache,
            series=series,
        )

    def _caught_up_readers(self) -> Generator[None, None, list[tuple[RegionReader, bool]]]:
        """Every region's reader, its journal replayed ``CATCH_UP_RECORDS`` records a step."""
        readers = self.regions.readers(self._clock())
        for reader, _ in readers:
            for _ in reader.catch_up(CATCH_UP_RECORDS):
                self._window_epoch += 1
                yield
        return readers

    def _read_windows(self, readers: list[tuple[RegionReader, bool]], sliced: bool) -> Generator[None, None, tuple | None]:
        """At one instant: every region's journal replayed to its end and its cells copied, then
        every window read at that instant -- one figure's windows per step when ``sliced``;
        None if another read moved the windows between two steps."""
        self._window_epoch += 1
        epoch = self._window_epoch
        now = self._clock()
        per_second = self._per_second(now)
        by_endpoint: dict[str, list[tuple[SlidingWindow, ...]]] = defaultdict(list)
        streaming: list[tuple[SlidingWindow, ...]] = []
        kv_windows: list[tuple[SlidingWindow, ...]] = []
        dropped = 0
        copies = []
        for reader, alive in readers:
            copies.append((*reader.refresh(), alive))
            for endpoint_id, windows in reader.endpoints.items():
                by_endpoint[reader.endpoint_names[endpoint_id]].append(windows)
            streaming.append(reader.streaming)
            kv_windows.append(reader.kv)
            dropped += reader.region.dropped() + reader.lost + sum(window.dropped for window in reader.windows())

        def stats(windows: list[SlidingWindow]) -> WindowStats:
            return self._stats(windows, now, per_second)

        groups: list[list[SlidingWindow]] = []  # every figure over the window: its windows (one per region)
        for path in sorted(by_endpoint):
            groups += [[part[index] for part in by_endpoint[path]] for index in range(4)]
        groups += [[part[index] for part in streaming] for index in range(3)]
        groups.append([part[0] for path in sorted(by_endpoint) for part in by_endpoint[path]])  # every endpoint's latency
        groups += [[windows[index] for windows in kv_windows] for index in range(4)]
        if sliced:
            yield
            if self._window_epoch != epoch:
                return None
        read: list[WindowStats] = []
        for windows in groups:
            read.append(stats(windows))
            if sliced:
                yield
                if self._window_epoch != epoch:
                    return None
        windowed = {path: tuple(read[4 * at : 4 * at + 4]) for at, path in enumerate(sorted(by_endpoint))}
        streaming_stats = tuple(read[-8:-5])
        overall_latency = read[-5]
        kv_stats = tuple(read[-4:])
        return now, per_second, copies, windowed, streaming_stats, overall_latency, kv_stats, dropped

    def _series(self, cells: _Cells, metric: Metric, names: list[str]) -> list:
        """A metric with cells of its own, read from the summed cells: ``[(labels, value)]``."""
        declared = metric.cell
        histogram = declared.bounds is not None
        if declared.scope == "global":
            return [((), cells.histogram(declared) if histogram else cells.values.get(declared.name(), 0.0))]
        prefix = declared.name("")
        found = {name.removeprefix(prefix) for name in (cells.blocks if histogram else cells.values)
                 if name.startswith(prefix)}
        reading = []
        for label in sorted(found):
            shown = label
            if declared.scope == "model":
                shown = OTHER_MODEL if label == OTHER_KEY else names[int(label)]
            value = cells.histogram(declared, label) if histogram else cells.values[prefix + label]
            reading.append((((metric.labels[0], shown),), value))
        return reading

    def health(self) -> HealthReading:
        """The health level and the error rate it comes from: exactly ``snapshot().totals``'
        figures at the same instant, read cheaply for probes.

        Each region's journal is replayed from where the last read stopped (work in proportion
        to the records since then) and only the endpoints' window counts are taken: no
        percentile, no sort, no copy of the cells, whatever the window holds.
        """
        return run(self._health_steps())

    async def health_async(self, slice_seconds: float = SLICE_SECONDS) -> HealthReading:
        """``health()``, letting the event loop run while a long backlog of records is replayed."""
        return await run_in_slices(self._health_steps(), slice_seconds, self.next_deadline)

    def _health_steps(self) -> Generator[None, None, HealthReading]:
        readers = yield from self._caught_up_readers()
        self._window_epoch += 1
        now = self._clock()
        requests = errors = 0
        for reader, _ in readers:
            for _ in reader.catch_up():
                pass
            for latency, failed, _, _ in reader.endpoints.values():
                requests += latency.count(now)
                errors += failed.count(now)
        error_rate = error_rate_percentage(errors, requests)
        return HealthReading(
            status=health_status(error_rate),
            timestamp=self._wall_clock(),
            requests=requests,
            errors=errors,
            error_rate_percentage=error_rate,
        )

    def _models(self, cells: _Cells, names: list[str]) -> Generator[None, None, dict[str, ModelSnapshot]]:
        """Every model with a generation request routed to an engine, by its real name (the
        other bucket last, as ``__other__``), with its engines in engine order."""
        prefix = _ENGINE["prompt"].name("")
        pairs: dict[str, list[str]] = defaultdict(list)
        for key in cells.values:
            if key.startswith(prefix):
                label, _, engine = key[len(prefix):].partition("|")
                pairs[label].append(engine)
        shown = {}
        for label in pairs:
            if label == OTHER_KEY:
                shown[OTHER_MODEL] = label
            elif int(label) < len(names):
                shown[names[int(label)]] = label
        order = sorted(name for name in shown if name != OTHER_MODEL) + ([OTHER_MODEL] if OTHER_MODEL in shown else [])
        yield
        models = {}
        for name in order:
            label = shown[name]
            engines = {}
            for engine in sorted(pairs[label], key=int):
                engines[engine] = yield from self._engine_snapshot(cells, label, engine)
            success: dict[str, int] = defaultdict(int)
            for engine in engines.values():
                for reason, count in engine.success_total.items():
                    success[reason] += count
            models[name] = ModelSnapshot(
                running=sum(engine.running for engine in engines.values()),
                prompt_tokens_total=sum(engine.prompt_tokens_total for engine in engines.values()),
                generation_tokens_total=sum(engine.generation_tokens_total for engine in engines.values()),
                success_total={reason: count for reason, count in sorted(success.items()) if count},
                engines=engines,
            )
        return models

    @staticmethod
    def _engine_snapshot(cells: _Cells, label: str, engine: str) -> Generator[None, None, EngineSnapshot]:
        """One engine's figures, its histograms in steps of ``HISTOGRAMS_PER_STEP``."""

        def count(slot: str) -> int:
            return cells.count(_ENGINE[slot].name(label, engine))

        success = {reason: 0 for reason in PRESET_REASONS}
        success.update((reason, int(n)) for reason, n in cells.labelled(_ENGINE["success"].name(label, engine, "")).items())
        histograms = {}
        for field, slot in _ENGINE_HISTOGRAMS.items():
            histograms[field] = cells.histogram(_ENGINE[slot], label, engine)
            if len(histograms) % HISTOGRAMS_PER_STEP == 0:
                yield
        yield
        return EngineSnapshot(
            running=count("running"),
            waiting=count("waiting"),
            prompt_tokens_total=count("prompt"),
            generation_tokens_total=count("generation"),
            cached_prompt_tokens_total=count("cached"),
            preemptions_total=count("preemptions"),
            success_total=dict(sorted(success.items())),
            **histograms,
        )
