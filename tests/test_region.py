"""The metrics-region kernel: cells, journal, the writer and replay, in both implementations,
then their equivalence (and a reader racing a writer in another process)."""

from __future__ import annotations

import math
import mmap
import multiprocessing
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakeai._layout import RequestFacts, region_bytes
from fakeai.metrics.schema import writer_layout
from fakeai.region import NO_EXTENSIONS
from tests.conftest import COMPILED, PYTHON
from tests.test_window import _same

BOUNDS = {"duration": (0.1, 1.0, 10.0), "tokens": (1.0, 10.0), "inter_token": (0.01, 0.1),
          "vllm_ttft": (0.05, 0.5), "vllm_inter_token": (0.01, 0.02, 0.1), "vllm_latency": (0.3, 3.0),
          "vllm_tokens": (1.0, 2.0, 5.0, 10.0, 20.0), "vllm_n": (1.0, 2.0, 5.0)}


def _region(region_kernel, journal: int = 64, window: float = 5.0):
    buffer = mmap.mmap(-1, region_bytes(256, 4096, journal))
    region = region_kernel.Region(buffer, create=True, pid=os.getpid(), key_capacity=256, cell_capacity=4096,
                                  journal_capacity=journal, window_seconds=window)
    return region, region_kernel.MetricsWriter(region, BOUNDS, writer_layout())


def _cells(region) -> dict[str, list[float]]:
    cells = region.cells()
    return {name: list(cells[first : first + count]) for name, first, count in region.keys()
            if first + count <= len(cells)}


def test_histogram_blocks_have_inclusive_upper_bounds(region_kernel) -> None:
    region, writer = _region(region_kernel)
    endpoint = writer.endpoint("/e")
    for duration in (0.1, 0.5, 1.0, 10.0, 11.0):
        writer.record(1.0, duration, 200, 0, 0, endpoint)
    # buckets le=0.1, le=1, le=10, +Inf; then sum and count
    assert _cells(region)["h|duration|/e"] == [1.0, 2.0, 1.0, 1.0, 22.6, 5.0]
    assert _cells(region)["c|requests|/e"] == [5.0]


@settings(max_examples=60, deadline=None)
@given(gaps=st.lists(st.sampled_from([0.0, 0.005, 0.01, 0.01 + 1e-12, 0.015, 0.02, 0.05, 0.3]), max_size=40),
       choice_tokens=st.lists(st.integers(min_value=0, max_value=45), min_size=1, max_size=3))
def test_a_plain_answers_planned_gaps_count_as_one_observation_each(region_kernel, gaps, choice_tokens) -> None:
    """``observe_gaps`` (a plain answer's inter-token latencies, runs of one bucket counted at
    once) gives each bucket and the count exactly what one ``observe`` per gap gives, the sum
    up to its rounding."""
    offsets = [0.02]
    for gap in gaps:
        offsets.append(offsets[-1] + gap)
    bounds = BOUNDS["vllm_inter_token"]
    block = len(bounds) + 3
    region, _ = _region(region_kernel)
    at_once, one_by_one = region.key("at once", block), region.key("one by one", block)
    region.observe_gaps(at_once, bounds, offsets, choice_tokens)
    for tokens in choice_tokens:
        for index in range(1, min(tokens, len(offsets))):
            region.observe(one_by_one, bounds, offsets[index] - offsets[index - 1])
    cells = region.cells()
    runs, each = cells[at_once : at_once + block], cells[one_by_one : one_by_one + block]
    assert runs[: len(bounds) + 1] == each[: len(bounds) + 1] and runs[-1] == each[-1]
    assert runs[-2] == pytest.approx(each[-2], abs=1e-12)


def test_a_scheduled_request_brings_its_queue_and_prefill_times_and_leaves_the_gauges(region_kernel) -> None:
    region, writer = _region(region_kernel)
    model = writer.model("0")
    engine = writer.engine("0", 1)
    writer.started(model)
    writer.shift(engine, 0.0, 1.0)  # reaches the engine's queue
    writer.shift(engine, 1.0, -1.0)  # scheduled
    writer.shift(engine, -1.0, 1.0, 1.0)  # preempted
    assert (_cells(region)["g|engine_running|0|1"], _cells(region)["g|engine_waiting|0|1"]) == ([0.0], [1.0])
    writer.shift(engine, 1.0, -1.0)
    writer.shift(engine, -1.0, 0.0)  # finished in the engine
    # 0.25 s queued, first token 0.75 s after its scheduling (TTFT 1.0 s), 2 s of decode
    writer.record(4.0, 3.5, 200, 10, 5, writer.endpoint("/e"), model, 1.0, math.nan, "stop", 0, 1, 10, 0, 0, None,
                  engine, 2.0, 1, 0, 5, None, None, 0.25, 0.75, True)
    cells = _cells(region)
    assert cells["g|engine_running|0|1"] == [0.0] and cells["g|engine_waiting|0|1"] == [0.0]
    assert cells["c|engine_preemptions|0|1"] == [1.0]
    # vllm_latency buckets 0.3, 3.0, +Inf; then sum, count
    assert cells["h|engine_queue|0|1"] == [1.0, 0.0, 0.0, 0.25, 1.0]
    assert cells["h|engine_prefill|0|1"] == [0.0, 1.0, 0.0, 0.75, 1.0]
    assert cells["h|engine_inference|0|1"] == [0.0, 1.0, 0.0, 2.75, 1.0]
    assert cells["h|engine_e2e|0|1"][-2:] == [3.5, 1.0]
    # an unscheduled one: queue 0, prefill = TTFT, and its end takes it off the running gauge
    writer.routed(engine)
    writer.record(5.0, 1.0, 200, 10, 5, writer.endpoint("/e"), None, 0.5, math.nan, "stop", 0, 1, 10, 0, 0, None,
                  engine, 0.5, 1, 0, 5)
    cells = _cells(region)
    assert cells["g|engine_running|0|1"] == [0.0]
    assert cells["h|engine_queue|0|1"][-2:] == [0.25, 2.0] and cells["h|engine_prefill|0|1"][-2:] == [1.25, 2.0]


def test_the_writer_refuses_what_it_cannot_count(region_kernel) -> None:
    region, writer = _region(region_kernel)
    endpoint = writer.endpoint("/e")
    with pytest.raises(ValueError):
        writer.record(1.0, 0.1, 200, -1, 0, endpoint)
    with pytest.raises(ValueError):
        writer.record(math.nan, 0.1, 200, 1, 0, endpoint)
    assert _cells(region)["c|requests|/e"] == [0.0] and region.journal_written() == 0


def test_a_key_the_region_cannot_hold_is_counted_never_raised(region_kernel) -> None:
    """A full region (or a key too long to name) never fails a request: the figure goes to the
    spill block, is counted in ``c|unrecorded_figures`` each time, and nothing else changes."""
    globals_keys = 12  # spill, unrecorded, 5 stream cells, 3 stream histograms, 2 KV totals
    buffer = mmap.mmap(-1, region_bytes(globals_keys + 7, 4096, 64))
    region = region_kernel.Region(buffer, create=True, pid=os.getpid(), key_capacity=globals_keys + 7,
                                  cell_capacity=4096, journal_capacity=64, window_seconds=5.0)
    writer = region_kernel.MetricsWriter(region, BOUNDS, writer_layout())
    endpoint = writer.endpoint("/e")  # 6 keys: room for one error status after it
    assert not endpoint.lossy
    writer.record(1.0, 0.1, 500, 1, 2, endpoint)
    writer.record(1.0, 0.1, 503, 1, 2, endpoint)  # no room for its error counter
    writer.record(1.0, 0.1, 503, 1, 2, endpoint)  # tried again, counted again
    cells = _cells(region)
    assert cells["c|requests|/e"] == [3.0]
    assert cells["c|errors|/e|500"] == [1.0] and "c|errors|/e|503" not in cells
    assert cells["c|unrecorded_figures"] == [2.0]
    model = writer.model("m")  # no room for its key
    assert model.lossy and model.running == writer.spill
    engine = writer.engine("m", 0)  # nor its engine's 20 keys and 3 preset reasons
    assert engine.lossy and engine.running == writer.spill
    writer.started(model)
    writer.routed(engine)
    writer.record(1.0, 0.1, 200, 1, 2, endpoint, model, 0.01, math.nan, "stop", 0, -1, 0, 0, 0, None, engine)
    long_name = writer.endpoint("/" + "x" * 200)  # longer than a key can name
    assert long_name.lossy
    writer.record(1.0, 0.1, 200, 1, 2, long_name)
    cells = _cells(region)
    assert cells["c|requests|/e"] == [4.0]
    # the model's key, its engine's 20 and 3 reasons, the reason again when recorded, the endpoint's 6
    assert cells["c|unrecorded_figures"] == [2.0 + 1 + 20 + 3 + 1 + 6]
    assert len(region.keys()) == globals_keys + 7
    assert not any("|m" in name or "xxx" in name for name, _, _ in region.keys())
    assert region.journal_written() == 5


def test_a_journal_that_wrapped_reports_what_it_lost(region_kernel, window_kernel) -> None:
    region, writer = _region(region_kernel, journal=4, window=100.0)
    endpoint = writer.endpoint("/e")
    for index in range(10):
        writer.record(float(index), 0.5, 200, 1, 1, endpoint)
    records, first, lost = region.records(0)
    assert (len(records), first, lost) == (4, 6, 6)
    assert region.dropped() == 6, "overwritten while still inside their 100 s window"
    windows = {endpoint.id: tuple(window_kernel.SlidingWindow(100.0) for _ in range(4))}
    extra = (tuple(window_kernel.SlidingWindow(100.0) for _ in range(3)),
             tuple(window_kernel.SlidingWindow(100.0) for _ in range(4)))
    assert region.replay(2, windows, *extra) == (10, 4)
    assert len(windows[endpoint.id][0]) == 4


def test_a_journal_replays_in_batches_as_at_once(region_kernel, window_kernel) -> None:
    """A reader taking a backlog a few records at a time (a scrape in slices) fills its windows
    exactly as one replay of everything does, and loses what the ring lost, once."""
    region, writer = _region(region_kernel, journal=8, window=100.0)
    endpoint = writer.endpoint("/e")
    for index in range(11):
        writer.record(float(index), 0.1 * index, 500 if index % 4 == 0 else 200, index, 2 * index, endpoint)

    def windows():
        return ({endpoint.id: tuple(window_kernel.SlidingWindow(100.0) for _ in range(4))},
                tuple(window_kernel.SlidingWindow(100.0) for _ in range(3)),
                tuple(window_kernel.SlidingWindow(100.0) for _ in range(4)))

    at_once = windows()
    assert region.replay(1, *at_once) == (11, 2)
    batched = windows()
    steps = [region.replay(1, *batched, 3)]
    while steps[-1][0] < region.journal_written():
        steps.append(region.replay(steps[-1][0], *batched, 3))
    assert steps == [(6, 2), (9, 0), (11, 0)]
    for whole, parts in zip(at_once[0][endpoint.id], batched[0][endpoint.id], strict=True):
        assert whole.summary(10.0, (0.5, 0.99)) == parts.summary(10.0, (0.5, 0.99))
        assert len(whole) == len(parts) > 0


writer_op = st.tuples(
    st.floats(min_value=0.0, max_value=2.0),  # clock advance
    st.floats(min_value=0.0, max_value=50.0),  # duration
    st.sampled_from([200, 200, 400, 429, 499, 500]),
    st.integers(min_value=0, max_value=5000),
    st.integers(min_value=0, max_value=5000),
    st.sampled_from(["/a", "/b"]),
    st.sampled_from([None, "x", "y"]),
    st.sampled_from([0, 1, 2]),  # plain, completed stream, failed stream
    st.one_of(st.none(), st.floats(min_value=0.0, max_value=5.0)),  # ttft
    st.sampled_from([None, "stop", "length", "abort"]),
    st.integers(min_value=-1, max_value=2),  # KV worker
    st.integers(min_value=0, max_value=300),
    st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=3),  # tokens of each choice
    st.sampled_from([0, 1, 16]),  # max_tokens (0: not given)
    st.tuples(st.floats(min_value=0.0, max_value=0.5), st.integers(0, 3), st.integers(0, 3)),  # a write's gaps
)


@pytest.mark.compiled_vs_twin
@settings(max_examples=120, deadline=None)
@given(ops=st.lists(writer_op, max_size=50), batch=st.integers(min_value=0, max_value=7))
def test_compiled_region_matches_the_reference(ops: list, batch: int) -> None:
    """The same writes give the same cells, journal and windows; the journal replayed
    ``batch`` records at a time (0: at once), as a read takes a backlog in slices."""
    results = []
    for side in (COMPILED, PYTHON):
        region, writer = _region(side.region, journal=16)
        now = 0.0
        for (advance, duration, status, prompt, completion, path, model, stream, ttft, reason, kv, tokens,
             choice_tokens, max_tokens, (gap, gapped, zeros)) in ops:
            now += advance
            cells = writer.model(model) if model else None
            if cells is not None:
                writer.started(cells)
            engine = None
            if cells is not None and kv >= 0:
                if tokens % 2:  # routing in one call: the worker's state published, the engine's gauge
                    engine = writer.route(cells, kv, (tokens, 1000, 1, tokens // 5))
                else:
                    engine = writer.engine(cells.name, kv)
                    writer.routed(engine)
            if stream:
                writer.stream_started()
                writer.gaps(engine, gap, gapped, zeros)
            ttft = math.nan if ttft is None else ttft
            itl = (duration - ttft) / (completion - 1) if stream and completion > 1 and not math.isnan(ttft) else math.nan
            # a plain answer's planned token times
            offsets = None if stream else [0.01 * index * index for index in range(max(choice_tokens))]
            # a KV worker's state: handed over with the request, after it, or as a tuple after it
            state = (tokens, 1000, 1, tokens // 7)
            # the engine model: the request waited, ran, was preempted, ran again; its end leaves
            # the gauges to it and brings its queue and prefill times
            scheduled = engine is not None and tokens % 4 == 0
            if scheduled:
                writer.shift(engine, 0.0, 1.0)
                writer.shift(engine, 1.0, -1.0)
                writer.shift(engine, -1.0, 1.0, 1.0)
                writer.shift(engine, 1.0, -1.0)
            writer.record(now, duration, status, prompt, completion, writer.endpoint(path), cells, ttft, itl,
                          reason if cells is not None else None, stream, kv, tokens, tokens // 2, tokens // 2,
                          state if kv >= 0 and tokens % 3 == 1 else None, engine, duration / 3, len(choice_tokens),
                          max_tokens, max(choice_tokens), offsets, choice_tokens,
                          duration / 7 if scheduled else math.nan, duration / 5 if scheduled else math.nan,
                          scheduled)
            if scheduled:
                writer.shift(engine, -1.0, 0.0)
            if kv >= 0 and tokens % 3 == 0:
                writer.kv_state(kv, tokens, 1000, 1, 2)
            elif kv >= 0 and tokens % 3 == 2:
                writer.publish(kv, state)
        ids = {writer.endpoint(path).id for path in ("/a", "/b")}
        endpoints = {endpoint_id: tuple(side.window.SlidingWindow(3.0, 20) for _ in range(4)) for endpoint_id in ids}
        streaming = tuple(side.window.SlidingWindow(3.0, 20) for _ in range(3))
        kv_windows = tuple(side.window.SlidingWindow(3.0, 20) for _ in range(4))
        position, lost = 0, 0
        while True:
            position, batch_lost = region.replay(position, endpoints, streaming, kv_windows, batch)
            lost += batch_lost
            if not batch or position >= region.journal_written():
                break
        position = (position, lost)
        windows = [w.summary(now, (0.5, 0.9)) for group in (*endpoints.values(), streaming, kv_windows) for w in group]
        keys = region.keys()
        assert [region.keys(start) for start in range(len(keys) + 2)] == [keys[start:] for start in range(len(keys) + 2)]
        results.append((keys, region.cells(), region.dropped(), position, windows))
    assert _same(results[0], results[1])


def _hammer(region_path: str, records: int) -> None:
    from fakeai.region import MetricsWriter, Region

    with open(region_path, "r+b") as file:
        buffer = mmap.mmap(file.fileno(), 0)
    region = Region(buffer, create=True, pid=os.getpid(), key_capacity=256, cell_capacity=4096,
                    journal_capacity=1024, window_seconds=5.0)
    writer = MetricsWriter(region, BOUNDS, writer_layout())
    endpoint = writer.endpoint("/e")
    for index in range(records):
        writer.record(float(index), 0.5, 500 if index % 3 == 0 else 200, 2, 3, endpoint)


request_case = st.tuples(
    st.floats(min_value=0.0, max_value=2.0),  # clock advance
    st.floats(min_value=0.001, max_value=5.0),  # duration
    st.booleans(),  # its last byte went out (else: the client left, recorded as 499)
    st.sampled_from([200, 200, 400, 429, 500]),
    st.sampled_from([0, 0, 500]),  # a stream's failure after its 200
    st.booleans(),  # streamed
    st.sampled_from([None, "x", "y"]),  # the model it was admitted for (None: never admitted)
    st.integers(min_value=-1, max_value=2),  # the KV worker it was routed to
    st.booleans(),  # the engine model ran it
    st.integers(min_value=0, max_value=300),
    st.integers(min_value=0, max_value=300),
    st.one_of(st.none(), st.floats(min_value=0.0, max_value=0.9)),  # first token, as a share of the duration
    st.sampled_from([None, "stop", "length"]),
    st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=3),  # tokens of each choice
)


@pytest.mark.compiled_vs_twin
@settings(max_examples=80, deadline=None)
@given(cases=st.lists(request_case, max_size=30))
def test_finishing_a_requests_facts_records_what_they_say(cases: list) -> None:
    """``admit``, ``route_request`` and ``finish`` on a request's facts (an exchange's: a
    subclass with slots of its own) record exactly what the explicit calls record
    (``started``, ``route``, ``record`` with the arguments the facts imply: a client that left
    is a 499 ending when ``finish`` is called, a failed stream's status is its failure's, an
    error has no finish reason; the KV worker's state after the request left), in both kernels."""

    class Exchange(RequestFacts):
        __slots__ = ("send",)

    results = []
    for side in (COMPILED, PYTHON):
        for way in ("facts", "explicit"):
            region, writer = _region(side.region)
            now = 0.0
            for (advance, duration, finished, status, failure, stream, model, kv, scheduled, prompt, completion,
                 first_token, reason, choice_tokens) in cases:
                now += advance
                end = now + duration
                left = end + 0.25  # when the recorder finds that the client left (finish's clock)
                routed = model is not None and kv >= 0
                state, after = (prompt, 1000, 1, completion // 7), (prompt, 1000, 0, completion // 7)
                first_at = math.nan if first_token is None else now + first_token * duration
                last_at = math.nan if first_token is None else end
                offsets = None if stream else [0.01 * index for index in range(max(choice_tokens))]
                queue, prefill = (duration / 7, duration / 5) if scheduled and routed else (math.nan, math.nan)
                if stream:
                    writer.stream_started()
                if way == "facts":
                    facts = Exchange(now)
                    facts.send = None
                    if model is not None:
                        writer.admitted.setdefault(model, writer.model(model))
                        assert writer.admit(facts, model, "/e")
                    else:
                        assert not writer.admit(facts, "unmapped", "/e") and facts.model_series is None
                        facts.series = writer.endpoint("/e")
                    if routed:
                        writer.route_request(facts, kv, state, prompt, prompt // 2, prompt // 3, not scheduled)
                    facts.finished_at = end if finished else 0.0
                    facts.status, facts.failure_status, facts.stream = status, failure if stream else 0, stream
                    facts.prompt_tokens, facts.completion_tokens, facts.finish_reason = prompt, completion, reason
                    facts.first_token_at, facts.last_token_at = first_at, last_at
                    facts.n, facts.max_tokens, facts.longest = len(choice_tokens), 16, max(choice_tokens)
                    facts.offsets, facts.choice_tokens = offsets, choice_tokens
                    facts.queue, facts.prefill, facts.scheduled = queue, prefill, scheduled and routed
                    writer.finish(facts, after if routed else None, lambda: left)
                    continue
                cells = engine = None
                if model is not None:
                    cells = writer.model(model)
                    writer.started(cells)
                series = writer.endpoint("/e")
                if routed:
                    if scheduled:
                        writer.publish(kv, state)
                        engine = writer.engine(model, kv)
                    else:
                        engine = writer.route(cells, kv, state)
                recorded = (failure or status) if stream else status
                if not finished:
                    recorded = 499
                recorded_reason = reason if finished and recorded < 400 else ("abort" if not finished and cells else None)
                if not finished:
                    end = left
                took = end - now  # as the facts' arrival and end give it
                ttft = first_at - now
                itl = (took - ttft) / (completion - 1) if stream and completion > 1 else math.nan
                outcome = 0 if not stream else (1 if finished and not failure else 2)
                kv_figures = (kv, prompt, prompt // 2, prompt // 3, after) if routed else (-1, 0, 0, 0, None)
                writer.record(end, took, recorded, prompt, completion, series, cells, ttft, itl, recorded_reason,
                              outcome, *kv_figures, engine, last_at - first_at, len(choice_tokens), 16,
                              max(choice_tokens), offsets, choice_tokens, queue, prefill, scheduled and routed)
            results.append((region.keys(), region.cells(), region.records(0)))
    assert all(_same(results[0], result) for result in results[1:])


def test_a_reader_never_sees_half_a_request_while_another_process_writes(tmp_path) -> None:
    """A second process records as fast as it can; every copy this one takes is consistent:
    as many requests as duration observations, and a third of them errors (rounded up)."""
    from fakeai.region import Region

    path = tmp_path / "region"
    with open(path, "w+b") as file:
        file.truncate(region_bytes(256, 4096, 1024))
        buffer = mmap.mmap(file.fileno(), 0)
    records = 100_000 if NO_EXTENSIONS else 1_000_000  # long enough to be read while it writes
    writer = multiprocessing.get_context("fork").Process(target=_hammer, args=(str(path), records))
    writer.start()
    region = None
    reads = 0
    while True:
        done = not writer.is_alive()
        if region is None:
            try:
                region = Region(buffer)  # once the writer has published the layout
            except ValueError:
                assert not done, "the writer never created its region"
                continue
        cells = _cells(region)
        if {"c|requests|/e", "c|prompt_tokens|/e", "h|duration|/e"} <= cells.keys():  # keys appear one by one
            requests = cells["c|requests|/e"][0]
            assert cells["h|duration|/e"][-1] == requests
            assert cells["c|prompt_tokens|/e"][0] == 2 * requests
            assert cells.get("c|errors|/e|500", [0.0])[0] == -(-requests // 3)
            reads += not done  # copies taken while the writer was writing
        if done:
            break
    writer.join()
    assert writer.exitcode == 0 and requests == records
    assert reads > 1, "the reader never caught the writer at work"


def test_the_cells_of_a_writer_that_died_mid_update_are_read_as_they_are(region_kernel) -> None:
    """A worker killed between the two halves of an update leaves its region odd forever: a
    reader takes the cells as they are rather than wait for an end that never comes."""
    dead = multiprocessing.get_context("spawn").Process(target=math.sqrt, args=(4.0,))
    dead.start()
    dead.join()
    buffer = mmap.mmap(-1, region_bytes(256, 4096, 64))
    region = region_kernel.Region(buffer, create=True, pid=dead.pid, key_capacity=256, cell_capacity=4096,
                                  journal_capacity=64, window_seconds=5.0)
    first = region.key("c|requests", 3)
    region.begin()
    region.add(first + 1, 2.0)  # ... and the process died here
    cells = region.cells()
    assert list(cells[first : first + 3]) == [0.0, 2.0, 0.0] and len(cells) == first + 3
