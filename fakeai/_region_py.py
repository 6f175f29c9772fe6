"""Pure-Python metrics region and writer: the reference implementation of ``fakeai._region``.

This module is the specification. The compiled kernel ``fakeai/_region.pyx`` must give
exactly the same results (the equivalence tests feed both the same requests); the layout and
the protocol both follow are in ``fakeai._layout``. The writer records plain numbers: what
it shows of a simulated KV worker is handed to it (``kv_state``, ``publish``), never read
from the simulation's objects.
"""

from __future__ import annotations

import math
import struct
from array import array
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from fakeai._layout import (
    CLIENT_CLOSED_REQUEST,
    HEADER_BYTES,
    HEADER_FIELDS,
    KEY_BYTES,
    KEY_NAME_BYTES,
    RECORD,
    REGION_MAGIC,
    REGION_VERSION,
    STREAM_COMPLETED,
    STREAM_FAILED,
    STREAM_PLAIN,
    RequestFacts,
    process_alive,
    region_bytes,
)

if TYPE_CHECKING:
    from fakeai._window_py import SlidingWindow

__all__ = ("EndpointCells", "EngineCells", "MetricsWriter", "ModelCells", "Region", "region_bytes", "replay")

_U64 = struct.Struct("=Q")
_F64 = struct.Struct("=d")
_KEY_HEAD = struct.Struct("=II")
_KV_SLOTS = ("routed", "prompt_tokens", "cached_tokens", "blocks", "capacity_blocks", "active_requests", "evictions")
"""A KV worker's cells, in the order ``kv_worker`` returns them (the layout gives their keys)."""
ENGINE_SLOTS = ("prompt", "running", "waiting", "generation", "cached", "preemptions", "ttft", "itl", "tpot", "e2e",
                "queue", "inference", "prefill", "decode", "prompt_histogram", "generation_histogram",
                "max_generation_histogram", "max_tokens_histogram", "prefill_kv_histogram", "n_histogram")
"""A (model, engine) pair's cells, made in this order (the layout gives their keys and bucket sets)."""
PRESET_REASONS = ("stop", "length", "abort")
"""The finish reasons a pair's success counters are made for at once (shown at 0, as vLLM does)."""


def _check_facts(facts: object) -> None:
    if not isinstance(facts, RequestFacts):
        raise TypeError(f"expected RequestFacts, got {type(facts).__name__}")


def _check_finite(name: str, number: float) -> float:
    number = float(number)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number!r}")
    return number


class Region:
    """A metrics region over ``buffer`` (an mmap or bytearray of ``region_bytes(...)`` bytes).

    ``create=True`` lays out a new, zeroed region owned by ``pid`` (this process writes it);
    otherwise the region is read as it is (another process may be writing it).
    """

    def __init__(
        self,
        buffer,
        *,
        create: bool = False,
        pid: int = 0,
        key_capacity: int = 2048,
        cell_capacity: int = 65536,
        journal_capacity: int = 65536,
        window_seconds: float = 5.0,
    ) -> None:
        self._buffer = buffer
        view = memoryview(buffer)
        if view.readonly:
            raise ValueError("a region needs a writable buffer (readers copy, they do not write)")
        self._view = view
        if create:
            if len(view) < region_bytes(key_capacity, cell_capacity, journal_capacity):
                raise ValueError("the buffer is smaller than the region")
            for name, value in (("version", REGION_VERSION), ("pid", pid), ("key_capacity", key_capacity),
                                ("cell_capacity", cell_capacity), ("journal_capacity", journal_capacity)):
                self._put(name, value)
            _F64.pack_into(view, HEADER_FIELDS["window_seconds"], window_seconds)
            self._put("magic", REGION_MAGIC)
        elif self._get("magic") != REGION_MAGIC or self._get("version") != REGION_VERSION:
            raise ValueError("not a fakeai metrics region of this version")
        self.pid = self._get("pid")
        self.key_capacity = self._get("key_capacity")
        self.cell_capacity = self._get("cell_capacity")
        self.journal_capacity = self._get("journal_capacity")
        self.window_seconds = _F64.unpack_from(view, HEADER_FIELDS["window_seconds"])[0]
        self._keys_at = HEADER_BYTES
        self._cells_at = self._keys_at + self.key_capacity * KEY_BYTES
        self._journal_at = self._cells_at + self.cell_capacity * 8
        self._cells = view[self._cells_at : self._journal_at].cast("d")
        self._key_index: dict[str, int] = {}

    def _get(self, field: str) -> int:
        return _U64.unpack_from(self._view, HEADER_FIELDS[field])[0]

    def _put(self, field: str, value: int) -> None:
        _U64.pack_into(self._view, HEADER_FIELDS[field], value)

    # -- writing (the owning process only) -----------------------------------------------

    def key(self, name: str, cells: int = 1) -> int:
        """The first cell of ``name`` (``cells`` consecutive cells), allocated on first use."""
        found = self._key_index.get(name)
        if found is not None:
            return found
        encoded = name.encode()
        if len(encoded) > KEY_NAME_BYTES:
            raise ValueError(f"metric key longer than {KEY_NAME_BYTES} bytes: {name!r}")
        keys_used, cells_used = self._get("keys_used"), self._get("cells_used")
        if keys_used >= self.key_capacity or cells_used + cells > self.cell_capacity:
            raise MemoryError("the metrics region is full")
        entry = self._keys_at + keys_used * KEY_BYTES
        _KEY_HEAD.pack_into(self._view, entry, cells_used, cells)
        self._view[entry + 8 : entry + 8 + len(encoded)] = encoded
        self._put("cells_used", cells_used + cells)
        self._put("keys_used", keys_used + 1)  # published last
        self._key_index[name] = cells_used
        return cells_used

    def add(self, cell: int, value: float) -> None:
        self._cells[cell] += value

    def set(self, cell: int, value: float) -> None:
        self._cells[cell] = value

    def begin(self) -> None:
        self._put("seq", self._get("seq") + 1)

    def end(self) -> None:
        self._put("seq", self._get("seq") + 1)

    def observe(self, block: int, bounds: Sequence[float], value: float, times: int = 1) -> None:
        """Histogram block: a count per bucket (``len(bounds) + 1``, the last +Inf), then sum,
        count; ``value`` observed ``times`` times."""
        bucket = len(bounds)
        for index, bound in enumerate(bounds):
            if value <= bound:
                bucket = index
                break
        cells = self._cells
        cells[block + bucket] += times
        cells[block + len(bounds) + 1] += value * times
        cells[block + len(bounds) + 2] += times

    def observe_gaps(self, block: int, bounds: Sequence[float], offsets: Sequence[float],
                     choice_tokens: Sequence[int]) -> None:
        """Histogram block: the gaps between consecutive token times of each choice of a plain
        answer (``offsets``, of which choice ``i`` has the first ``choice_tokens[i]``), each
        observed as ``observe`` observes it; the gaps are summed in order and their sum added
        once (the compiled twin counts runs of gaps in the same bucket at once)."""
        counts = [0] * (len(bounds) + 1)
        total = 0.0
        observed = 0
        for tokens in choice_tokens:
            for index in range(1, min(tokens, len(offsets))):
                gap = offsets[index] - offsets[index - 1]
                counts[bisect_left(bounds, gap)] += 1
                total += gap
                observed += 1
        if observed:
            cells = self._cells
            for bucket, count in enumerate(counts):
                if count:
                    cells[block + bucket] += count
            cells[block + len(bounds) + 1] += total
            cells[block + len(bounds) + 2] += observed

    def append(self, record: tuple) -> None:
        """Add a record to the journal (overwriting the oldest once full)."""
        written = self._get("journal_written")
        slot = written % self.journal_capacity
        at = self._journal_at + slot * RECORD.size
        if written >= self.journal_capacity:
            finished_at = _F64.unpack_from(self._view, at)[0]
            if finished_at > record[0] - self.window_seconds:  # overwritten while still in its window
                self._put("dropped", self._get("dropped") + 1)
        RECORD.pack_into(self._view, at, *record)
        self._put("journal_written", written + 1)  # published last

    # -- reading (any process) -----------------------------------------------------------

    def keys(self, start: int = 0) -> list[tuple[str, int, int]]:
        """``(name, first cell, cells)`` of every published key, from the ``start``-th on (a
        key, once published, never changes: a reader asks only for those it has not seen)."""
        result = []
        for index in range(max(start, 0), self._get("keys_used")):
            entry = self._keys_at + index * KEY_BYTES
            first, count = _KEY_HEAD.unpack_from(self._view, entry)
            name = bytes(self._view[entry + 8 : entry + KEY_BYTES]).rstrip(b"\0").decode()
            result.append((name, first, count))
        return result

    def cells(self) -> array:
        """A consistent copy of the cells allocated so far (no update half applied), an array
        of doubles.

        Retries while the writer is changing them; only a writer that died mid-update (checked
        every 1024 attempts) gets its cells taken as they are. Read ``keys`` after this: every
        change in the copy was made after its key was published (ignore keys beyond the copy:
        their cells were still zero).
        """
        attempts = 0
        while True:
            before = self._get("seq")
            if before % 2 == 0:
                copy = array("d", self._cells[: self._get("cells_used")].tobytes())
                if self._get("seq") == before:
                    return copy
            attempts += 1
            if attempts % 1024 == 0 and not process_alive(self.pid):
                return array("d", self._cells[: self._get("cells_used")].tobytes())

    def seq(self) -> int:
        return self._get("seq")

    def journal_written(self) -> int:
        return self._get("journal_written")

    def dropped(self) -> int:
        return self._get("dropped")

    def replay(self, start: int, endpoints: dict, streaming: tuple, kv: tuple, limit: int = 0) -> tuple[int, int]:
        """Journal records from index ``start`` into windows (see ``replay``), at most ``limit``
        of them when ``limit`` is positive; ``(the next index to read, records lost)``."""
        records, first, lost = self.records(start, limit)
        replay(records, endpoints, streaming, kv)
        return first + len(records), lost

    def records(self, start: int, limit: int = 0) -> tuple[list[tuple], int, int]:
        """``(records from index start on, index of the first returned, lost)``: records the
        ring no longer holds (or that were overwritten while copied) are ``lost``; at most
        ``limit`` records when ``limit`` is positive (the oldest the ring still holds)."""
        end = self._get("journal_written")
        first = max(start, end - self.journal_capacity)
        if limit > 0:
            end = min(end, first + limit)
        raw = []
        for index in range(first, end):
            at = self._journal_at + (index % self.journal_capacity) * RECORD.size
            raw.append(bytes(self._view[at : at + RECORD.size]))
        safe_from = self._get("journal_written") - self.journal_capacity  # what may have been overwritten since
        skip = min(max(0, safe_from - first), len(raw))
        records = [RECORD.unpack(item) for item in raw[skip:]]
        return records, first + skip, (first + skip) - start


def _check_count(name: str, value: int) -> int:
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return int(value)


class EndpointCells:
    """One endpoint's cells in a region: counters, errors by status, three histograms.

    Made by ``writer.endpoint(name)``; a cell the region had no room for is the writer's
    spill block (``lossy`` is then true, see ``MetricsWriter.cell``).
    """

    __slots__ = ("completion", "completion_histogram", "duration_histogram", "errors", "id", "lossy", "name", "prompt",
                 "prompt_histogram", "requests", "_writer")

    def __init__(self, writer: MetricsWriter, name: str):
        self._writer = writer
        self.name = name
        cell, key = writer.cell, writer.key_of
        self.requests = cell(*key("endpoint", "requests", name))
        self.id = self.requests
        """The endpoint's id in journal records (unique in its region)."""
        self.prompt = cell(*key("endpoint", "prompt", name))
        self.completion = cell(*key("endpoint", "completion", name))
        self.duration_histogram = cell(*key("endpoint", "duration_histogram", name))
        self.prompt_histogram = cell(*key("endpoint", "prompt_histogram", name))
        self.completion_histogram = cell(*key("endpoint", "completion_histogram", name))
        self.errors: dict[int, int] = {}
        self.lossy = writer.spill in (self.requests, self.prompt, self.completion, self.duration_histogram,
                                      self.prompt_histogram, self.completion_histogram)

    def error_cell(self, status: int) -> int:
        cell = self.errors.get(status)
        if cell is None:
            cell = self._writer.cell(*self._writer.key_of("endpoint", "errors", self.name, str(status)))
            if cell != self._writer.spill:  # no room: tried again (and counted) next time
                self.errors[status] = cell
        return cell


class ModelCells:
    """One model's admitted requests: ``running``, a gauge (their sum is the latency model's load).

    ``name`` is the model's label in its keys (the registry's, never a raw model name: see
    ``fakeai.metrics.labels``). Made by ``writer.model(name)``; ``lossy`` as for an endpoint.
    """

    __slots__ = ("lossy", "name", "running")

    def __init__(self, writer: MetricsWriter, name: str):
        self.name = name
        self.running = writer.cell(*writer.key_of("model", "running", name))
        self.lossy = self.running == writer.spill


class EngineCells:
    """A model's cells on one simulated engine (a KV worker): vLLM's families.

    Counters and gauges (prompt, running, waiting, generation, cached prompt tokens,
    preemptions), successes by finish reason (``stop``, ``length`` and ``abort`` made at once)
    and fourteen histograms (see ``ENGINE_SLOTS``). ``model`` is the model's label, ``engine``
    the worker's number. Made by ``writer.engine(model, engine)``; ``lossy`` as for an endpoint.
    """

    __slots__ = ("engine", "lossy", "model", "success", "_writer", *ENGINE_SLOTS)

    def __init__(self, writer: MetricsWriter, model: str, engine: int):
        self._writer = writer
        self.model = model
        self.engine = engine
        label = str(engine)
        for slot in ENGINE_SLOTS:
            setattr(self, slot, writer.cell(*writer.key_of("engine", slot, model, label)))
        self.lossy = writer.spill in (getattr(self, slot) for slot in ENGINE_SLOTS)
        self.success: dict[str, int] = {}
        for reason in PRESET_REASONS:
            self.success_cell(reason)

    def success_cell(self, reason: str) -> int:
        cell = self.success.get(reason)
        if cell is None:
            writer = self._writer
            cell = writer.cell(*writer.key_of("engine", "success", self.model, str(self.engine), reason))
            if cell != writer.spill:
                self.success[reason] = cell
        return cell


class MetricsWriter:
    """What one process records into its region; one call per finished request (and, for a
    stream, one ``gaps`` call per write that carried tokens).

    ``record`` adds, between the two ``seq`` increments: the endpoint's request, token
    counters, histograms and (status >= 400) errors by status; for an admitted request
    (``model``), the end of a running one; for a request routed to a simulated engine
    (``engine``), vLLM's figures: the end of a running request there, its prompt, generation
    and cached prompt tokens, its TTFT (when a first token was produced: ``ttft`` not NaN), the
    planned gaps between the tokens of a plain answer (``offsets``, ``choice_tokens``) and, when
    it finished (a finish reason), the reason and the per-request histograms (``observe_finished``);
    for a stream (``stream`` 1 completed, 2 failed), the end of an active stream, its outcome,
    TTFT and mean ITL histograms and tokens per second (when it lasted and sent tokens); for a
    routed request (``kv_worker`` >= 0), the worker's routed requests, prompt and cached
    tokens, the hit requests and the oracle's tokens. Then the journal record, and (with
    ``kv_state``, the worker's ``(blocks, capacity, active, evictions)`` after the request left
    it) the KV worker's state, as ``publish`` records it.

    Keys come from ``layout`` (``{scope: {slot: (key, bucket set)}}``, the one
    ``fakeai.metrics.schema.writer_layout()`` declares; the kernel never imports the metrics):
    the writer knows its cells by slot, never by name.
    Every cell is made by ``cell``: a key the region has no room for (or cannot name) never
    raises into a request; its figure goes to the spill block ``s|spill`` (written, never
    read) and ``c|unrecorded_figures`` counts it, each time it is tried. The registry bounds
    what it asks for so that this does not happen (``fakeai.metrics.labels``).
    """

    def __init__(self, region: Region, bounds: dict[str, Sequence[float]], layout: dict):
        self.region = region
        self._bounds = {name: tuple(float(bound) for bound in values) for name, values in bounds.items()}
        """The bucket sets, by name (``fakeai.metrics.schema.BUCKETS``' names)."""
        self.duration_bounds = self._bounds["duration"]
        self.token_bounds = self._bounds["tokens"]
        self.inter_token_bounds = self._bounds["inter_token"]
        self._endpoints: dict[str, EndpointCells] = {}
        self._models: dict[str, ModelCells] = {}
        self._engines: dict[tuple[str, int], EngineCells] = {}
        self._kv: dict[int, tuple[int, ...]] = {}
        self._evictions_seen: dict[int, int] = {}
        self.admitted: dict[str, ModelCells] = {}
        """The cells a requested model name is counted in, as the caller mapped it (its own
        label's, or a shared one's): ``admit`` finds them here, the caller fills it."""
        self.layout = layout
        """``{scope: {slot: (key, bucket set or None)}}``: the keys this writer makes."""
        key = region.key
        self.spill = key(layout["global"]["spill"][0], max(map(len, self._bounds.values())) + 3)
        """The block a figure goes to when its key could not be made (the largest histogram's size)."""
        own = self.key_of
        self.unrecorded = key(*own("global", "unrecorded"))
        self.active_streams = key(*own("global", "active_streams"))
        self.completed_streams = key(*own("global", "completed_streams"))
        self.failed_streams = key(*own("global", "failed_streams"))
        self.tokens_per_second_sum = key(*own("global", "tokens_per_second_sum"))
        self.tokens_per_second_count = key(*own("global", "tokens_per_second_count"))
        self.stream_ttft = key(*own("global", "stream_ttft"))
        self.stream_itl = key(*own("global", "stream_itl"))
        self.stream_itl_gaps = key(*own("global", "stream_itl_gaps"))
        self.kv_hit_requests = key(*own("global", "kv_hit_requests"))
        self.kv_oracle = key(*own("global", "kv_oracle"))

    def key_of(self, scope: str, slot: str, *labels: str) -> tuple[str, int]:
        """``(key, cells)`` of the cell in ``slot`` of ``scope`` for ``labels``, from the layout."""
        key, bounds = self.layout[scope][slot]
        if bounds is None:
            return "|".join((key, *labels)), 1
        return "|".join((key, *labels)), len(self._bounds[bounds]) + 3

    def cell(self, name: str, cells: int = 1) -> int:
        """The first cell of key ``name`` (made on first use), or the spill block, counted in
        ``unrecorded_figures``, when the region has no room for it or it is too long."""
        try:
            return self.region.key(name, cells)
        except (MemoryError, ValueError):
            self.region.add(self.unrecorded, 1.0)
            return self.spill

    def endpoint(self, name: str) -> EndpointCells:
        cells = self._endpoints.get(name)
        if cells is None:
            cells = EndpointCells(self, name)
            if not cells.lossy:  # else made again (and its loss counted) at each use
                self._endpoints[name] = cells
        return cells

    def model(self, name: str) -> ModelCells:
        cells = self._models.get(name)
        if cells is None:
            cells = ModelCells(self, name)
            if not cells.lossy:
                self._models[name] = cells
        return cells

    def engine(self, model: str, engine: int) -> EngineCells:
        """The cells of model label ``model`` on simulated engine ``engine`` (made on first use)."""
        cells = self._engines.get((model, engine))
        if cells is None:
            cells = EngineCells(self, model, engine)
            if not cells.lossy:
                self._engines[(model, engine)] = cells
        return cells

    def routed(self, engine: EngineCells) -> None:
        """A request was sent to ``engine``: it runs there until ``record(engine=...)``."""
        self.region.add(engine.running, 1.0)

    def route(self, model: ModelCells, worker: int, state: tuple[int, int, int, int]) -> EngineCells:
        """A request admitted for ``model`` was sent to simulated engine (KV worker) ``worker``,
        whose state is now ``state``: ``publish(worker, state)``, then ``routed`` on the
        model's cells on that engine, which it returns (one call on the request path)."""
        self.publish(worker, state)
        cells = self.engine(model.name, worker)
        self.routed(cells)
        return cells

    def shift(self, engine: EngineCells, running: float, waiting: float, preemptions: float = 0.0) -> None:
        """The engine model moved requests of ``engine``'s pair: add ``running`` and ``waiting``
        to its gauges and ``preemptions`` to its counter, as one update."""
        region = self.region
        region.begin()
        region.add(engine.running, running)
        region.add(engine.waiting, waiting)
        if preemptions:
            region.add(engine.preemptions, preemptions)
        region.end()

    def gaps(self, engine: EngineCells | None, gap: float, gapped: int, zeros: int) -> None:
        """Inter-token gaps of one write of a stream: ``gapped`` tokens that follow their choice's
        previous token by ``gap`` seconds, ``zeros`` that follow one sent in the same write (in
        ``engine``'s vLLM histogram, and fakeai's own)."""
        gap = _check_finite("gap", gap)
        region = self.region
        region.begin()
        if engine is not None:
            bounds = self._bounds["vllm_inter_token"]
            if gapped:
                region.observe(engine.itl, bounds, gap, gapped)
            if zeros:
                region.observe(engine.itl, bounds, 0.0, zeros)
        if gapped:
            region.observe(self.stream_itl_gaps, self.inter_token_bounds, gap, gapped)
        if zeros:
            region.observe(self.stream_itl_gaps, self.inter_token_bounds, 0.0, zeros)
        region.end()

    def kv_worker(self, worker: int) -> tuple[int, ...]:
        """Cells of a simulated KV worker: routed, prompt, cached (counters); blocks, capacity,
        active (gauges); evictions (a counter)."""
        cells = self._kv.get(worker)
        if cells is None:
            cell = self.cell
            label = str(worker)
            cells = tuple(cell(*self.key_of("kv_worker", slot, label)) for slot in _KV_SLOTS)
            if self.spill not in cells:
                self._kv[worker] = cells
        return cells

    def started(self, model: ModelCells) -> None:
        self.region.add(model.running, 1.0)

    def admit(self, facts: RequestFacts, model: str, endpoint: str) -> bool:
        """A request for ``model`` (a name in ``admitted``) at ``endpoint`` was admitted: it
        runs until ``finish(facts, ...)``; its cells are noted in ``facts``. False, with
        nothing done, for a model name not in ``admitted`` (the caller maps it first)."""
        _check_facts(facts)
        cells = self.admitted.get(model)
        if cells is None:
            return False
        self.started(cells)
        facts.model_series = cells
        facts.series = self.endpoint(endpoint)
        return True

    def route_request(self, facts: RequestFacts, worker: int, state: tuple[int, int, int, int], prompt_tokens: int,
                      cached_tokens: int, oracle_tokens: int, running: bool = True) -> None:
        """The admitted request of ``facts`` was routed to simulated engine (KV worker)
        ``worker``, whose state is now ``state``, reusing ``cached_tokens`` of its
        ``prompt_tokens`` (the most any worker had: ``oracle_tokens``): ``route`` (or, with
        ``running`` false, the same without the running gauge, which the engine model keeps),
        noted in ``facts``."""
        _check_facts(facts)
        if facts.model_series is None:
            raise TypeError("route_request needs an admitted request (facts.model_series)")
        if running:
            facts.engine_series = self.route(facts.model_series, worker, state)
        else:
            self.publish(worker, state)
            facts.engine_series = self.engine(facts.model_series.name, worker)
        facts.kv_worker = worker
        facts.kv_prompt = prompt_tokens
        facts.kv_cached = cached_tokens
        facts.kv_oracle = oracle_tokens

    def finish(self, facts: RequestFacts, kv_state: tuple[int, int, int, int] | None,
               clock: Callable[[], float]) -> None:
        """Record the request ``facts`` describe, which just ended (``kv_state``: its KV
        worker's state after it left, or None): ``record`` with what the facts say. A request
        whose last byte never went out (``finished_at`` 0.0) ended now (``clock()``): status
        499, its stream failed, its answer aborted if it was admitted. A stream failed too when
        ``failure_status`` is set, which is then its status; its mean inter-token latency spans
        its first token to its end. An error has no finish reason."""
        _check_facts(facts)
        finished_at = facts.finished_at
        completed = finished_at != 0.0
        if completed:
            status = facts.status if facts.failure_status == 0 else facts.failure_status
            finish_reason = facts.finish_reason if status < 400 else None
        else:
            status = CLIENT_CLOSED_REQUEST
            finished_at = clock()
            finish_reason = None if facts.model_series is None else "abort"
        if facts.series is None:
            raise TypeError("finish needs the request's endpoint cells (facts.series)")
        duration = finished_at - facts.started
        ttft = facts.first_token_at - facts.started
        itl = math.nan
        stream = STREAM_PLAIN
        if facts.stream:
            stream = STREAM_COMPLETED if completed and facts.failure_status == 0 else STREAM_FAILED
            if facts.completion_tokens > 1:
                itl = (duration - ttft) / (facts.completion_tokens - 1)
        self.record(finished_at, duration, status, facts.prompt_tokens, facts.completion_tokens, facts.series,
                    facts.model_series, ttft, itl, finish_reason, stream, facts.kv_worker, facts.kv_prompt,
                    facts.kv_cached, facts.kv_oracle, kv_state, facts.engine_series,
                    facts.last_token_at - facts.first_token_at, facts.n, facts.max_tokens, facts.longest,
                    facts.offsets, facts.choice_tokens, facts.queue, facts.prefill, facts.scheduled)

    def running(self) -> int:
        """Requests running in this process (its models' running cells, summed)."""
        return int(sum(self.region._cells[cells.running] for cells in self._models.values()))

    def stream_started(self) -> None:
        self.region.add(self.active_streams, 1.0)

    def kv_state(self, worker: int, blocks: int, capacity: int, active: int, evictions: int) -> None:
        """A simulated KV worker's state now (gauges) and its evictions so far (the counter
        advances by the difference to the last call: it keeps counting across restarts)."""
        cells = self.kv_worker(worker)
        for cell, value in zip(cells[3:6], (blocks, capacity, active)):
            self.region.set(cell, float(value))
        self.region.add(cells[6], float(evictions - self._evictions_seen.get(worker, 0)))
        self._evictions_seen[worker] = evictions

    def record(self, now: float, duration: float, status: int, prompt_tokens: int, completion_tokens: int,
               endpoint: EndpointCells, model: ModelCells | None = None, ttft: float = math.nan,
               itl: float = math.nan, finish_reason: str | None = None, stream: int = STREAM_PLAIN,
               kv_worker: int = -1, kv_prompt: int = 0, kv_cached: int = 0, kv_oracle: int = 0,
               kv_state: tuple[int, int, int, int] | None = None, engine: EngineCells | None = None,
               decode: float = math.nan, n: int = 0, max_tokens: int = 0, longest: int = 0,
               offsets: Sequence[float] | None = None, choice_tokens: Sequence[int] | None = None,
               queue: float = math.nan, prefill: float = math.nan, scheduled: bool = False) -> None:
        """One finished request (see the class docstring). ``ttft``: seconds from arrival to its
        first token (NaN: none); ``itl``: a finished stream's mean inter-token latency;
        ``decode``: seconds from its first token to its last; ``n``, ``max_tokens`` (0: not
        given): its parameters; ``longest``: tokens of its longest choice; ``offsets`` and
        ``choice_tokens``: a plain answer's planned token times and each choice's tokens;
        ``queue`` and ``prefill``: its seconds in the engine's waiting queue and from its
        scheduling to its first token (NaN: it was not scheduled, see ``observe_finished``);
        ``scheduled``: the engine's scheduler keeps its running and waiting gauges (``shift``),
        so its end does not change them here."""
        prompt_tokens = _check_count("prompt_tokens", prompt_tokens)
        completion_tokens = _check_count("completion_tokens", completion_tokens)
        _check_finite("now", now)
        _check_finite("duration", duration)
        # cells a first-time status, reason or KV worker needs are allocated before the update
        error_cell = endpoint.error_cell(status) if status >= 400 else None
        success_cell = engine.success_cell(finish_reason) if engine is not None and finish_reason is not None else None
        kv_cells = self.kv_worker(kv_worker) if kv_worker >= 0 else None
        region = self.region
        add, observe = region.add, region.observe
        region.begin()
        add(endpoint.requests, 1.0)
        add(endpoint.prompt, prompt_tokens)
        add(endpoint.completion, completion_tokens)
        observe(endpoint.duration_histogram, self.duration_bounds, duration)
        observe(endpoint.prompt_histogram, self.token_bounds, prompt_tokens)
        observe(endpoint.completion_histogram, self.token_bounds, completion_tokens)
        if error_cell is not None:
            add(error_cell, 1.0)
        if model is not None:
            add(model.running, -1.0)
        if engine is not None:
            bounds = self._bounds
            if not scheduled:
                add(engine.running, -1.0)
            add(engine.prompt, prompt_tokens)
            add(engine.generation, completion_tokens)
            add(engine.cached, kv_cached)
            if not math.isnan(ttft):
                observe(engine.ttft, bounds["vllm_ttft"], ttft)
            if offsets is not None and choice_tokens is not None:
                region.observe_gaps(engine.itl, bounds["vllm_inter_token"], offsets, choice_tokens)
            if success_cell is not None:
                add(success_cell, 1.0)
                self.observe_finished(engine, duration, prompt_tokens, completion_tokens, kv_cached, ttft, decode,
                                      n, max_tokens, longest, queue, prefill)
        if stream != STREAM_PLAIN:
            add(self.active_streams, -1.0)
            add(self.completed_streams if stream == STREAM_COMPLETED else self.failed_streams, 1.0)
            if not math.isnan(ttft):
                observe(self.stream_ttft, self.duration_bounds, ttft)
            if not math.isnan(itl):
                observe(self.stream_itl, self.inter_token_bounds, itl)
            if duration > 0.0 and completion_tokens and math.isfinite(completion_tokens / duration):
                add(self.tokens_per_second_sum, completion_tokens / duration)
                add(self.tokens_per_second_count, 1.0)
        if kv_cells is not None:
            routed, prompt_cell, cached_cell = kv_cells[:3]
            add(routed, 1.0)
            add(prompt_cell, kv_prompt)
            add(cached_cell, kv_cached)
            if kv_cached:
                add(self.kv_hit_requests, 1.0)
            add(self.kv_oracle, kv_oracle)
        region.end()
        region.append((now, duration, ttft, itl, prompt_tokens, completion_tokens, endpoint.id, status, stream,
                       1 if kv_worker >= 0 else 0, kv_prompt, kv_cached, kv_oracle, max(kv_worker, 0)))
        if kv_state is not None:  # the worker's state after the request left it
            self.publish(kv_worker, kv_state)

    def observe_finished(self, engine: EngineCells, duration: float, prompt_tokens: int, completion_tokens: int,
                         cached: int, ttft: float, decode: float, n: int, max_tokens: int, longest: int,
                         queue: float = math.nan, prefill: float = math.nan) -> None:
        """A finished request's per-request histograms, as vLLM observes them: end-to-end
        latency, queue time (``queue``; 0 when NaN: a request the engine model did not queue is
        scheduled on arrival), prompt and generation tokens, prompt tokens computed (not
        cached), ``n``, the longest choice's tokens, ``max_tokens`` when given; and, once a
        first token was produced, prefill (``prefill``; NaN: TTFT), decode, inference (prefill
        + decode) and time per output token (decode / (longest - 1), 0 for one token)."""
        bounds = self._bounds
        observe = self.region.observe
        latency, tokens = bounds["vllm_latency"], bounds["vllm_tokens"]
        observe(engine.e2e, latency, duration)
        observe(engine.queue, latency, 0.0 if math.isnan(queue) else queue)
        observe(engine.prompt_histogram, tokens, prompt_tokens)
        observe(engine.generation_histogram, tokens, completion_tokens)
        observe(engine.prefill_kv_histogram, tokens, max(prompt_tokens - cached, 0))
        observe(engine.max_generation_histogram, tokens, longest)
        if n > 0:
            observe(engine.n_histogram, bounds["vllm_n"], n)
        if max_tokens > 0:
            observe(engine.max_tokens_histogram, tokens, max_tokens)
        if not math.isnan(ttft):
            decode = 0.0 if math.isnan(decode) else decode
            prefill = ttft if math.isnan(prefill) else prefill
            observe(engine.prefill, latency, prefill)
            observe(engine.decode, latency, decode)
            observe(engine.inference, latency, prefill + decode)
            observe(engine.tpot, bounds["vllm_inter_token"], decode / (longest - 1) if longest > 1 else 0.0)

    def publish(self, worker: int, state: tuple[int, int, int, int]) -> None:
        """``kv_state`` with the four figures as one tuple ``(blocks, capacity, active,
        evictions)``: what the simulation's ``PrefixCache.state()`` returns."""
        blocks, capacity, active, evictions = state
        self.kv_state(worker, blocks, capacity, active, evictions)


def replay(records: Sequence[tuple], endpoints: dict[int, tuple[SlidingWindow, ...]], streaming: tuple[SlidingWindow, ...],
           kv: tuple[SlidingWindow, ...]) -> None:
    """Journal records into windows, as the registry reads them.

    ``endpoints`` maps an endpoint id to its (latency, errors, prompt tokens, completion tokens)
    windows; ``streaming`` is (TTFT, tokens per second, ITL); ``kv`` is (prompt tokens,
    cached tokens, oracle tokens, cached tokens of hits). Per record, at its finish time:
    the duration, tokens and (status >= 400) the duration as an error; for a stream, its TTFT
    and ITL when known and its tokens per second when it lasted and sent tokens (and that is
    a finite number); for a routed
    request its KV figures (and its cached tokens again when it hit). A record whose endpoint
    id is not in ``endpoints`` is skipped.
    """
    ttft_window, tps_window, itl_window = streaming
    kv_prompt_window, kv_cached_window, kv_oracle_window, kv_hit_window = kv
    for (now, duration, ttft, itl, prompt, completion, endpoint_id, status, stream, flags, kv_prompt, kv_cached,
         kv_oracle, _) in records:
        windows = endpoints.get(endpoint_id)
        if windows is None:
            continue
        latency, errors, prompt_window, completion_window = windows
        latency.record(now, duration)
        prompt_window.record(now, prompt)
        completion_window.record(now, completion)
        if status >= 400:
            errors.record(now, duration)
        if stream != STREAM_PLAIN:
            if not math.isnan(ttft):
                ttft_window.record(now, ttft)
            if not math.isnan(itl):
                itl_window.record(now, itl)
            if duration > 0.0 and completion and math.isfinite(completion / duration):
                tps_window.record(now, completion / duration)
        if flags & 1:
            kv_prompt_window.record(now, kv_prompt)
            kv_cached_window.record(now, kv_cached)
            kv_oracle_window.record(now, kv_oracle)
            if kv_cached:
                kv_hit_window.record(now, kv_cached)
