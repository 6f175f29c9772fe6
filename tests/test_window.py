"""The sliding-window kernel: behaviour of both implementations, then their equivalence."""

from __future__ import annotations

import math
import mmap
import multiprocessing
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakeai import _window_py
from fakeai.window import NO_EXTENSIONS

QS = (0.5, 0.9, 0.99)


def test_samples_leave_the_window_after_window_seconds(kernel) -> None:
    window = kernel.SlidingWindow(5.0)
    window.record(10.0, 1.0)
    window.record(12.0, 2.0)
    assert window.count(14.9) == 2
    assert window.count(15.0) == 1, "a sample exactly window_seconds old has left"
    assert window.sum(15.0) == 2.0
    assert window.count(17.0) == 0
    assert math.isnan(window.min(17.0)) and math.isnan(window.quantile(17.0, 0.5))


def test_expiry_is_permanent_when_the_clock_goes_back(kernel) -> None:
    window = kernel.SlidingWindow(1.0)
    window.record(0.0, 1.0)
    assert window.count(2.0) == 0
    assert window.count(0.5) == 0


def test_a_timestamp_from_the_past_is_recorded_as_the_newest(kernel) -> None:
    window = kernel.SlidingWindow(1.0)
    window.record(5.0, 1.0)
    window.record(3.0, 2.0)  # clock went backwards: kept, stamped 5.0
    assert window.count(5.5) == 2
    assert window.count(6.0) == 0


def test_empty_window_statistics(kernel) -> None:
    window = kernel.SlidingWindow(5.0)
    count, total, low, high, quantiles = window.summary(0.0, QS)
    assert (count, total) == (0, 0.0)
    assert all(math.isnan(x) for x in (low, high, window.mean(0.0), *quantiles))
    assert window.rate(1.0, 0.0) == 0.0


def test_one_sample_is_every_quantile(kernel) -> None:
    window = kernel.SlidingWindow(5.0)
    window.record(1.0, 0.25)
    assert window.summary(1.0, (0.0, 0.5, 1.0)) == (1, 0.25, 0.25, 0.25, (0.25, 0.25, 0.25))


def test_quantiles_interpolate_linearly_between_ranks(kernel) -> None:
    window = kernel.SlidingWindow(60.0)
    for i, value in enumerate([4.0, 1.0, 3.0, 2.0]):  # sorted: 1 2 3 4
        window.record(float(i), value)
    # h = 3q: q=0.5 -> 2.5, q=0.9 -> 3.7 (clamped at the top), q=1/3 -> 2.0
    assert window.quantiles(3.0, (0.5, 0.9, 1.0, 0.0)) == (2.5, pytest.approx(3.7, abs=1e-15), 4.0, 1.0)
    assert window.mean(3.0) == 2.5


def test_rate_uses_elapsed_time_while_younger_than_one_window(kernel) -> None:
    window = kernel.SlidingWindow(5.0)
    for i in range(10):
        window.record(100.0 + i * 0.1, 0.0)
    # Up for 2 s: 10 samples / 2 s, not / 5 s.
    assert window.rate(102.0, started_at=100.0) == 5.0
    # Up for longer than the window: the window length is the divisor.
    assert window.rate(102.0, started_at=0.0) == 2.0
    assert window.rate(100.0, started_at=100.0) == 0.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_input_is_rejected_and_leaves_the_window_intact(kernel, bad: float) -> None:
    window = kernel.SlidingWindow(5.0)
    window.record(1.0, 2.0)
    with pytest.raises(ValueError, match="value must be a finite number"):
        window.record(1.0, bad)
    with pytest.raises(ValueError, match="timestamp must be a finite number"):
        window.record(bad, 1.0)
    with pytest.raises(ValueError, match="now must be a finite number"):
        window.count(bad)
    assert window.summary(1.0, QS) == (1, 2.0, 2.0, 2.0, (2.0, 2.0, 2.0))


@pytest.mark.parametrize("q", [-0.1, 1.5, math.nan])
def test_quantile_outside_zero_to_one_is_rejected(kernel, q: float) -> None:
    window = kernel.SlidingWindow(5.0)
    with pytest.raises(ValueError, match="quantile must be between 0 and 1"):
        window.quantile(0.0, q)


@pytest.mark.parametrize(("seconds", "cap"), [(0.0, 10), (-1.0, 10), (math.inf, 10), (5.0, 0)])
def test_bad_construction_is_rejected(kernel, seconds: float, cap: int) -> None:
    with pytest.raises(ValueError):
        kernel.SlidingWindow(seconds, cap)


def test_cap_drops_the_oldest_and_counts_exactly(kernel) -> None:
    window = kernel.SlidingWindow(1000.0, max_samples=100)
    for i in range(250):
        window.record(float(i), float(i))
    assert window.dropped == 150
    assert len(window) == 100
    assert window.summary(250.0, (0.0, 1.0))[2:] == (150.0, 249.0, (150.0, 249.0))


def test_growth_keeps_order_across_the_ring_seam(kernel) -> None:
    # Expire from the front while recording at the back so the ring wraps, then grow it.
    window = kernel.SlidingWindow(10.0)
    samples = [(i * 0.01, float(i % 97)) for i in range(5000)]  # about 1000 live at once
    for i, (t, value) in enumerate(samples):
        window.record(t, value)
        if i % 50 == 0:
            window.expire(t)
    now = samples[-1][0]
    live = [value for t, value in samples if t > now - 10.0]
    count, total, low, high, qs = window.summary(now, QS)
    assert count == len(live)
    assert (low, high) == (min(live), max(live))
    assert list(qs) == list(np.quantile(live, QS, method="linear"))


def test_window_empties_after_records_stop(kernel) -> None:
    window = kernel.SlidingWindow(5.0)
    for i in range(100_000):
        window.record(i * 1e-5, 1.0)
    assert window.count(1.0) == 100_000
    assert window.count(6.0) == 0
    assert len(window) == 0


# -- equivalence --------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
values = st.one_of(
    st.floats(min_value=-1e300, max_value=1e300),
    st.sampled_from([0.0, -0.0, 1.0, 1e-300, 5e-324, 1e300]),
    st.floats(min_value=0.0, max_value=1.0),
)
quantiles = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=0, max_size=6)
operation = st.one_of(
    st.tuples(st.just("record"), st.floats(min_value=-2.0, max_value=5.0), values),
    st.tuples(st.just("burst"), st.integers(min_value=1, max_value=9000), values),
    st.tuples(st.just("read"), st.floats(min_value=-2.0, max_value=5.0), quantiles),
    st.tuples(st.just("bad"), st.sampled_from([math.nan, math.inf, -math.inf]), st.none()),
)


def _apply(window, clock: float, op) -> tuple[float, object]:
    kind, a, b = op
    if kind == "record":
        clock += a  # may go backwards
        window.record(clock, b)
        return clock, None
    if kind == "burst":  # many samples at once: exercises growth, the ring seam and buckets
        for i in range(a):
            window.record(clock, b * ((i * 7919) % 1009) / 1009.0)
        return clock, None
    if kind == "read":
        clock += a
        return clock, (window.summary(clock, b), window.rate(clock, 0.0), window.dropped, len(window))
    for call in (lambda: window.record(clock, a), lambda: window.record(a, 1.0), lambda: window.count(a)):
        with pytest.raises(ValueError):
            call()
    return clock, "rejected"


def _same(a, b) -> bool:
    """Equal, with NaN equal to NaN (an empty window's answer)."""
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


@pytest.mark.skipif(NO_EXTENSIONS, reason="FAKEAI_NO_EXTENSIONS=1: only the Python twin is under test")
@settings(max_examples=300, deadline=None)
@given(
    seconds=st.sampled_from([0.5, 1.0, 5.0]),
    cap=st.sampled_from([1, 7, 64, 5000, 1_000_000]),
    ops=st.lists(operation, max_size=40),
)
def test_compiled_kernel_matches_the_reference(seconds: float, cap: int, ops: list) -> None:
    from fakeai import _window

    compiled, reference = _window.SlidingWindow(seconds, cap), _window_py.SlidingWindow(seconds, cap)
    clock_c = clock_r = 0.0
    for op in ops:
        clock_c, seen_c = _apply(compiled, clock_c, op)
        clock_r, seen_r = _apply(reference, clock_r, op)
        assert _same(seen_c, seen_r), (op, seen_c, seen_r)


@settings(max_examples=200, deadline=None)
@given(data=st.lists(values, min_size=1, max_size=6000), qs=quantiles)
def test_quantiles_equal_numpy_linear(kernel, data: list[float], qs: list[float]) -> None:
    window = kernel.SlidingWindow(5.0, max_samples=10_000)
    for value in data:
        window.record(0.0, value)
    expected = np.quantile(np.array(data), qs, method="linear") if qs else []
    got = window.quantiles(0.0, qs)
    with np.errstate(all="ignore"):
        assert all(_same(float(e), g) for e, g in zip(expected, got)), (expected, got)


def test_repeated_quantiles_on_a_large_window(kernel) -> None:
    # Regression: the compiled bucket selection once walked past a repeated quantile's ranks.
    window = kernel.SlidingWindow(5.0)
    window.record(0.0, -1.0)
    for _ in range(4096):
        window.record(0.0, 0.0)
    assert window.quantiles(0.0, (0.0, 0.0, 0.5, 0.0)) == (-1.0, -1.0, 0.0, -1.0)


# -- the metrics region --------------------------------------------------------------------

BOUNDS = ((0.1, 1.0, 10.0), (1.0, 10.0), (0.01, 0.1))  # duration, tokens, inter-token


def _region(module, journal: int = 64, window: float = 5.0):
    buffer = mmap.mmap(-1, _window_py.region_bytes(256, 4096, journal))
    region = module.Region(buffer, create=True, pid=os.getpid(), key_capacity=256, cell_capacity=4096,
                           journal_capacity=journal, window_seconds=window)
    return region, module.MetricsWriter(region, *BOUNDS)


def _cells(region) -> dict[str, list[float]]:
    cells = region.cells()
    return {name: cells[first : first + count] for name, first, count in region.keys() if first + count <= len(cells)}


def test_histogram_blocks_have_inclusive_upper_bounds(kernel) -> None:
    region, writer = _region(kernel)
    endpoint = writer.endpoint("/e")
    for duration in (0.1, 0.5, 1.0, 10.0, 11.0):
        writer.record(1.0, duration, 200, 0, 0, endpoint)
    # buckets le=0.1, le=1, le=10, +Inf; then sum and count
    assert _cells(region)["h|duration|/e"] == [1.0, 2.0, 1.0, 1.0, 22.6, 5.0]
    assert _cells(region)["c|requests|/e"] == [5.0]


def test_the_writer_refuses_what_it_cannot_count(kernel) -> None:
    region, writer = _region(kernel)
    endpoint = writer.endpoint("/e")
    with pytest.raises(ValueError):
        writer.record(1.0, 0.1, 200, -1, 0, endpoint)
    with pytest.raises(ValueError):
        writer.record(math.nan, 0.1, 200, 1, 0, endpoint)
    assert _cells(region)["c|requests|/e"] == [0.0] and region.journal_written() == 0


def test_a_key_the_region_cannot_hold_is_counted_never_raised(kernel) -> None:
    """A full region (or a key too long to name) never fails a request: the figure goes to the
    spill block, is counted in ``c|unrecorded_figures`` each time, and nothing else changes."""
    globals_keys = 11  # spill, unrecorded, 5 stream cells, 2 stream histograms, 2 KV totals
    buffer = mmap.mmap(-1, _window_py.region_bytes(globals_keys + 7, 4096, 64))
    region = kernel.Region(buffer, create=True, pid=os.getpid(), key_capacity=globals_keys + 7, cell_capacity=4096,
                           journal_capacity=64, window_seconds=5.0)
    writer = kernel.MetricsWriter(region, *BOUNDS)
    endpoint = writer.endpoint("/e")  # 6 keys: room for one error status after it
    assert not endpoint.lossy
    writer.record(1.0, 0.1, 500, 1, 2, endpoint)
    writer.record(1.0, 0.1, 503, 1, 2, endpoint)  # no room for its error counter
    writer.record(1.0, 0.1, 503, 1, 2, endpoint)  # tried again, counted again
    cells = _cells(region)
    assert cells["c|requests|/e"] == [3.0]
    assert cells["c|errors|/e|500"] == [1.0] and "c|errors|/e|503" not in cells
    assert cells["c|unrecorded_figures"] == [2.0]
    model = writer.model("m")  # no room for any of its 8 keys
    assert model.lossy and model.running == writer.spill
    writer.started(model)
    writer.record(1.0, 0.1, 200, 1, 2, endpoint, model, math.nan, math.nan, "stop")
    long_name = writer.endpoint("/" + "x" * 200)  # longer than a key can name
    assert long_name.lossy
    writer.record(1.0, 0.1, 200, 1, 2, long_name)
    cells = _cells(region)
    assert cells["c|requests|/e"] == [4.0]
    assert cells["c|unrecorded_figures"] == [2.0 + 8 + 1 + 6]  # the model's keys, its reason, the endpoint's
    assert len(region.keys()) == globals_keys + 7
    assert not any("|m" in name or "xxx" in name for name, _, _ in region.keys())
    assert region.journal_written() == 5


def test_a_journal_that_wrapped_reports_what_it_lost(kernel) -> None:
    region, writer = _region(kernel, journal=4, window=100.0)
    endpoint = writer.endpoint("/e")
    for index in range(10):
        writer.record(float(index), 0.5, 200, 1, 1, endpoint)
    records, first, lost = region.records(0)
    assert (len(records), first, lost) == (4, 6, 6)
    assert region.dropped() == 6, "overwritten while still inside their 100 s window"
    windows = {endpoint.id: tuple(kernel.SlidingWindow(100.0) for _ in range(4))}
    extra = (tuple(kernel.SlidingWindow(100.0) for _ in range(3)), tuple(kernel.SlidingWindow(100.0) for _ in range(4)))
    assert region.replay(2, windows, *extra) == (10, 4)
    assert len(windows[endpoint.id][0]) == 4


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
)


@pytest.mark.skipif(NO_EXTENSIONS, reason="FAKEAI_NO_EXTENSIONS=1: only the Python twin is under test")
@settings(max_examples=120, deadline=None)
@given(ops=st.lists(writer_op, max_size=50))
def test_compiled_region_matches_the_reference(ops: list) -> None:
    from fakeai import _window

    results = []
    for module in (_window, _window_py):
        region, writer = _region(module, journal=16)
        now = 0.0
        for advance, duration, status, prompt, completion, path, model, stream, ttft, reason, kv, tokens in ops:
            now += advance
            cells = writer.model(model) if model else None
            if cells is not None:
                writer.started(cells)
            if stream:
                writer.stream_started()
            ttft = math.nan if ttft is None or not stream else ttft
            itl = (duration - ttft) / (completion - 1) if stream and completion > 1 and not math.isnan(ttft) else math.nan
            # a KV worker's state: handed over with the request, after it, or as a tuple after it
            state = (tokens, 1000, 1, tokens // 7)
            writer.record(now, duration, status, prompt, completion, writer.endpoint(path), cells, ttft, itl,
                          reason if cells is not None else None, stream, kv, tokens, tokens // 2, tokens // 2,
                          state if kv >= 0 and tokens % 3 == 1 else None)
            if kv >= 0 and tokens % 3 == 0:
                writer.kv_state(kv, tokens, 1000, 1, 2)
            elif kv >= 0 and tokens % 3 == 2:
                writer.publish(kv, state)
        ids = {writer.endpoint(path).id for path in ("/a", "/b")}
        endpoints = {endpoint_id: tuple(module.SlidingWindow(3.0, 20) for _ in range(4)) for endpoint_id in ids}
        streaming = tuple(module.SlidingWindow(3.0, 20) for _ in range(3))
        kv_windows = tuple(module.SlidingWindow(3.0, 20) for _ in range(4))
        position = region.replay(0, endpoints, streaming, kv_windows)
        windows = [w.summary(now, (0.5, 0.9)) for group in (*endpoints.values(), streaming, kv_windows) for w in group]
        results.append((region.keys(), region.cells(), region.dropped(), position, windows))
    assert _same(results[0], results[1])


def _hammer(region_path: str, records: int) -> None:
    from fakeai.window import MetricsWriter, Region

    with open(region_path, "r+b") as file:
        buffer = mmap.mmap(file.fileno(), 0)
    region = Region(buffer, create=True, pid=os.getpid(), key_capacity=256, cell_capacity=4096,
                    journal_capacity=1024, window_seconds=5.0)
    writer = MetricsWriter(region, *BOUNDS)
    endpoint = writer.endpoint("/e")
    for index in range(records):
        writer.record(float(index), 0.5, 500 if index % 3 == 0 else 200, 2, 3, endpoint)


def test_a_reader_never_sees_half_a_request_while_another_process_writes(tmp_path) -> None:
    """A second process records as fast as it can; every copy this one takes is consistent:
    as many requests as duration observations, and a third of them errors (rounded up)."""
    from fakeai.window import Region

    path = tmp_path / "region"
    with open(path, "w+b") as file:
        file.truncate(_window_py.region_bytes(256, 4096, 1024))
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


# -- union of windows ------------------------------------------------------------------------


def test_union_holds_every_live_sample_in_time_order(kernel) -> None:
    a, b = kernel.SlidingWindow(5.0, 100), kernel.SlidingWindow(5.0, 100)
    for timestamp, value in ((1.0, 10.0), (3.0, 30.0), (6.5, 65.0)):
        a.record(timestamp, value)
    for timestamp, value in ((2.0, 20.0), (6.0, 60.0)):
        b.record(timestamp, value)
    merged = kernel.union([a, b], 7.0)  # 1.0 and 2.0 have left a 5 s window at 7.0
    assert merged.summary(7.0, (0.0, 0.5, 1.0)) == (3, 155.0, 30.0, 65.0, (30.0, 60.0, 65.0))
    assert (len(a), len(b)) == (2, 1), "the parts expired, and are otherwise untouched"
    with pytest.raises(ValueError):
        kernel.union([a, kernel.SlidingWindow(1.0)], 7.0)
    with pytest.raises(ValueError):
        kernel.union([], 7.0)


@pytest.mark.skipif(NO_EXTENSIONS, reason="FAKEAI_NO_EXTENSIONS=1: only the Python twin is under test")
@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(0.0, 2.0), st.floats(-1e6, 1e6)), max_size=80))
def test_compiled_union_matches_the_reference(records: list) -> None:
    from fakeai import _window

    results = []
    for module in (_window, _window_py):
        windows = [module.SlidingWindow(3.0, 20) for _ in range(4)]
        now = 0.0
        for index, advance, value in records:
            now += advance
            windows[index].record(now, value)
        results.append(module.union(windows, now).summary(now, (0.1, 0.5, 0.99)))
    assert _same(results[0], results[1])
