"""The sliding-window kernel: behaviour of both implementations, then their equivalence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakeai import _window_py

QS = (0.5, 0.9, 0.99)


def test_samples_leave_the_window_after_window_seconds(window_kernel) -> None:
    window = window_kernel.SlidingWindow(5.0)
    window.record(10.0, 1.0)
    window.record(12.0, 2.0)
    assert window.count(14.9) == 2
    assert window.count(15.0) == 1, "a sample exactly window_seconds old has left"
    assert window.sum(15.0) == 2.0
    assert window.count(17.0) == 0
    assert math.isnan(window.min(17.0)) and math.isnan(window.quantile(17.0, 0.5))


def test_expiry_is_permanent_when_the_clock_goes_back(window_kernel) -> None:
    window = window_kernel.SlidingWindow(1.0)
    window.record(0.0, 1.0)
    assert window.count(2.0) == 0
    assert window.count(0.5) == 0


def test_a_timestamp_from_the_past_is_recorded_as_the_newest(window_kernel) -> None:
    window = window_kernel.SlidingWindow(1.0)
    window.record(5.0, 1.0)
    window.record(3.0, 2.0)  # clock went backwards: kept, stamped 5.0
    assert window.count(5.5) == 2
    assert window.count(6.0) == 0


def test_empty_window_statistics(window_kernel) -> None:
    window = window_kernel.SlidingWindow(5.0)
    count, total, low, high, quantiles = window.summary(0.0, QS)
    assert (count, total) == (0, 0.0)
    assert all(math.isnan(x) for x in (low, high, window.mean(0.0), *quantiles))
    assert window.rate(1.0, 0.0) == 0.0


def test_one_sample_is_every_quantile(window_kernel) -> None:
    window = window_kernel.SlidingWindow(5.0)
    window.record(1.0, 0.25)
    assert window.summary(1.0, (0.0, 0.5, 1.0)) == (1, 0.25, 0.25, 0.25, (0.25, 0.25, 0.25))


def test_quantiles_interpolate_linearly_between_ranks(window_kernel) -> None:
    window = window_kernel.SlidingWindow(60.0)
    for i, value in enumerate([4.0, 1.0, 3.0, 2.0]):  # sorted: 1 2 3 4
        window.record(float(i), value)
    # h = 3q: q=0.5 -> 2.5, q=0.9 -> 3.7 (clamped at the top), q=1/3 -> 2.0
    assert window.quantiles(3.0, (0.5, 0.9, 1.0, 0.0)) == (2.5, pytest.approx(3.7, abs=1e-15), 4.0, 1.0)
    assert window.mean(3.0) == 2.5


def test_rate_uses_elapsed_time_while_younger_than_one_window(window_kernel) -> None:
    window = window_kernel.SlidingWindow(5.0)
    for i in range(10):
        window.record(100.0 + i * 0.1, 0.0)
    # Up for 2 s: 10 samples / 2 s, not / 5 s.
    assert window.rate(102.0, started_at=100.0) == 5.0
    # Up for longer than the window: the window length is the divisor.
    assert window.rate(102.0, started_at=0.0) == 2.0
    assert window.rate(100.0, started_at=100.0) == 0.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_input_is_rejected_and_leaves_the_window_intact(window_kernel, bad: float) -> None:
    window = window_kernel.SlidingWindow(5.0)
    window.record(1.0, 2.0)
    with pytest.raises(ValueError, match="value must be a finite number"):
        window.record(1.0, bad)
    with pytest.raises(ValueError, match="timestamp must be a finite number"):
        window.record(bad, 1.0)
    with pytest.raises(ValueError, match="now must be a finite number"):
        window.count(bad)
    assert window.summary(1.0, QS) == (1, 2.0, 2.0, 2.0, (2.0, 2.0, 2.0))


@pytest.mark.parametrize("q", [-0.1, 1.5, math.nan])
def test_quantile_outside_zero_to_one_is_rejected(window_kernel, q: float) -> None:
    window = window_kernel.SlidingWindow(5.0)
    with pytest.raises(ValueError, match="quantile must be between 0 and 1"):
        window.quantile(0.0, q)


@pytest.mark.parametrize(("seconds", "cap"), [(0.0, 10), (-1.0, 10), (math.inf, 10), (5.0, 0)])
def test_bad_construction_is_rejected(window_kernel, seconds: float, cap: int) -> None:
    with pytest.raises(ValueError):
        window_kernel.SlidingWindow(seconds, cap)


def test_max_samples_stops_short_of_what_32_bit_slots_can_name(window_kernel) -> None:
    window_kernel.SlidingWindow(5.0, window_kernel.MAX_SAMPLES_LIMIT - 1)  # storage comes as samples do
    with pytest.raises(ValueError):
        window_kernel.SlidingWindow(5.0, window_kernel.MAX_SAMPLES_LIMIT)


def test_cap_drops_the_oldest_and_counts_exactly(window_kernel) -> None:
    window = window_kernel.SlidingWindow(1000.0, max_samples=100)
    for i in range(250):
        window.record(float(i), float(i))
    assert window.dropped == 150
    assert len(window) == 100
    assert window.summary(250.0, (0.0, 1.0))[2:] == (150.0, 249.0, (150.0, 249.0))


def test_growth_keeps_time_order_when_the_window_wraps_around(window_kernel) -> None:
    # Expire from the front while recording at the back so the storage wraps, then grow it.
    window = window_kernel.SlidingWindow(10.0)
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


def test_the_sum_is_exact_as_math_fsum(window_kernel) -> None:
    # Left to right in floating point, 1e16 + 1.0 - 1e16 is 0.0: the window says 1.0.
    window = window_kernel.SlidingWindow(5.0)
    for i, value in enumerate([1e16, 1.0, -1e16, 0.1, 0.2, 0.3]):
        window.record(float(i), value)
    assert window.sum(5.5) == math.fsum([1.0, -1e16, 0.1, 0.2, 0.3]) != 0.0
    assert window.sum(6.5) == math.fsum([-1e16, 0.1, 0.2, 0.3]), "subtracting what left the window is exact too"
    assert window.sum(20.0) == 0.0


def _sliding_run(window, values: list[float], seconds: float, reads: int) -> list[tuple]:
    """Record ``values`` one per 1 ms into ``window``; ``reads`` times, what it says and what
    the live values say (numpy quantiles, math.fsum)."""
    seen = []
    every = max(1, len(values) // reads)
    for i, value in enumerate(values):
        window.record(i * 1e-3, value)
        if i % every == every - 1:
            now = i * 1e-3
            live = [v for j, v in enumerate(values[: i + 1]) if j * 1e-3 > now - seconds]
            expected = (len(live), math.fsum(live), min(live), max(live),
                        tuple(float(x) for x in np.quantile(live, (0.0, 0.25, 0.5, 0.9, 0.99, 1.0), method="linear")))
            seen.append((window.summary(now, (0.0, 0.25, 0.5, 0.9, 0.99, 1.0)), expected))
    return seen


@pytest.mark.parametrize(
    "shape",
    [
        "lognormal", "one value", "integers", "negative and positive", "zeros of both signs",
        "huge range", "one fine bucket", "a cluster that moves",
    ],
)
def test_sliding_figures_equal_numpy_and_fsum(window_kernel, shape: str) -> None:
    """20k samples through a 4 s window (4k live): the distributions that stress the value
    index (crowded leaves that split, entries that empty and merge, one repeated value)."""
    rng = np.random.default_rng(7)
    n = 20_000
    values = {
        "lognormal": rng.lognormal(-3.0, 0.5, n),
        "one value": np.full(n, 0.25),
        "integers": rng.integers(0, 300, n).astype(float),
        "negative and positive": rng.normal(0.0, 1.0, n),
        "zeros of both signs": rng.choice([0.0, -0.0, 1.0, -1.0], n),
        "huge range": rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-300, 300, n),
        "one fine bucket": 1.0 + rng.integers(0, 2**20, n) * 2.0**-52,
        "a cluster that moves": 1.0 + np.arange(n) * 1e-7 + rng.random(n) * 1e-9,
    }[shape].tolist()
    for got, expected in _sliding_run(window_kernel.SlidingWindow(4.0, 10_000), values, 4.0, 25):
        assert got == expected


def test_a_repeated_value_then_a_neighbour(window_kernel) -> None:
    # Thousands of one value, then values one ulp apart: the compiled index splits the large
    # leaf of one value as one block.
    window = window_kernel.SlidingWindow(100.0)
    values = [1.0] * 5000 + [math.nextafter(1.0, 2.0)] * 3 + [math.nextafter(1.0, 0.0)] * 2
    for value in values:
        window.record(0.0, value)
    assert window.summary(0.0, (0.0, 0.0004, 0.5, 1.0)) == (
        len(values), math.fsum(values), min(values), max(values),
        tuple(float(x) for x in np.quantile(values, (0.0, 0.0004, 0.5, 1.0), method="linear")),
    )


def test_window_empties_after_records_stop(window_kernel) -> None:
    window = window_kernel.SlidingWindow(5.0)
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
    st.tuples(
        st.just("cluster"),
        st.integers(min_value=1, max_value=3000),
        st.tuples(
            st.sampled_from([1.0, -1.0, 0.02, 1e-300, 3e300, 0.0, 4096.0]),
            st.sampled_from([0.0, 1.0, 2.0**-52, 2.0**-40, -(2.0**-30), 1e-310]),
        ),
    ),
    st.tuples(st.just("read"), st.floats(min_value=-2.0, max_value=5.0), quantiles),
    st.tuples(st.just("bad"), st.sampled_from([math.nan, math.inf, -math.inf]), st.none()),
)


def _apply(window, clock: float, op) -> tuple[float, object]:
    kind, a, b = op
    if kind == "record":
        clock += a  # may go backwards
        window.record(clock, b)
        return clock, None
    if kind == "burst":  # many samples at once: exercises growth, the ring seam and the value index
        for i in range(a):
            window.record(clock, b * ((i * 7919) % 1009) / 1009.0)
        return clock, None
    if kind == "cluster":  # distinct values a few ulps apart, or integers, or one value repeated
        count, (base, step) = a, b
        for i in range(count):
            window.record(clock, base + step * ((i * 7919) % 1009))
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


@pytest.mark.compiled_vs_twin
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


@pytest.mark.compiled_vs_twin
@pytest.mark.parametrize("cap", [50, 5000, 1_000_000])
def test_compiled_kernel_matches_the_reference_while_the_window_swells_and_shrinks(cap: int) -> None:
    # A rate that rises and falls: the live samples spread over more storage, then less, so
    # the compiled window's storage grows while its oldest part is still live, wraps, and
    # (with a small cap) drops the oldest; every read is compared with the twin's.
    from fakeai import _window

    compiled, reference = _window.SlidingWindow(1.0, cap), _window_py.SlidingWindow(1.0, cap)
    now, qs = 0.0, (0.0, 0.01, 0.5, 0.99, 1.0)
    for tick in range(400):
        now += 0.01
        for i in range(int(40 * (1.0 + math.sin(tick / 20.0)))):
            value = ((tick * 7919 + i * 104729) % 1009) / 1009.0
            compiled.record(now, value)
            reference.record(now, value)
        if tick % 7 == 0:
            seen_c = (compiled.summary(now, qs), compiled.dropped, len(compiled))
            seen_r = (reference.summary(now, qs), reference.dropped, len(reference))
            assert _same(seen_c, seen_r), (tick, seen_c, seen_r)


def _chunk(cap: int) -> int:
    """The compiled window's chunk: the smallest power of two of at least cap / 16, 8 to 1024."""
    shift = 3
    while shift < 10 and (1 << (shift + 4)) < cap:
        shift += 1
    return 1 << shift


@pytest.mark.compiled_vs_twin
def test_a_merge_keeps_time_order_across_a_chunk_the_storage_wrapped_into() -> None:
    # cap 1000: chunks of 64. Filler (5.0) fills chunks 0-1, then 300 values in [1, 1.5) at 0.5
    # (chunks 2-6: their binade splits), then at 1.0 the filler expires and 50 values in
    # [1.5, 2) fill chunk 6 and wrap into chunk 0, whose slots are lower than chunk 6's but
    # newer. At 1.5 the split entry falls to MERGE: the merged leaf's chain must follow age,
    # not slot numbers, or the next expiries drop the wrong samples.
    from fakeai import _window

    windows = [_window.SlidingWindow(1.0, 1000), _window_py.SlidingWindow(1.0, 1000)]
    for window in windows:
        for _ in range(128):
            window.record(0.0, 5.0)
        for i in range(300):
            window.record(0.5, 1.0 + i / 600.0)
        for i in range(50):
            window.record(1.0, 1.5 + i / 100.0)
    qs = (0.0, 0.1, 0.5, 0.9, 1.0)
    for now in (1.0, 1.5, 1.7):
        compiled, reference = (window.summary(now, qs) for window in windows)
        assert compiled == reference, (now, compiled, reference)
    assert windows[0].summary(1.5, qs)[:4] == (50, math.fsum(1.5 + i / 100.0 for i in range(50)), 1.5, 1.99)


@pytest.mark.compiled_vs_twin
@pytest.mark.parametrize("cap", [1, 2, 7, 8, 9, 16, 17, 100, 129, 1000, 5000])
@pytest.mark.parametrize("pattern", ["full", "empties", "swells"])
def test_storage_stays_within_its_bound(cap: int, pattern: str) -> None:
    # One repeated value: the index is one node (one block of 4), so the rest of memory_bytes
    # is the chunks: at most cap / chunk + 2 of them (20 bytes a slot), however long the window
    # runs, whether it stays full, empties by expiry and refills, or swells and shrinks.
    from fakeai import _window

    window, chunk = _window.SlidingWindow(1.0, cap), _chunk(cap)
    now = 0.0
    for tick in range(3000):
        now += 0.01
        if pattern == "full":
            burst = 3
        elif pattern == "empties":
            now += 1.0  # everything expires: the tail is often at the end of a chunk then
            burst = chunk if tick % 2 else 3
        else:
            burst = int(cap / 25 * (1.0 + math.sin(tick / 30.0))) + 1
        for _ in range(burst):
            window.record(now, 7.0)
        assert len(window) <= cap
        chunk_bytes = window.memory_bytes - 4 * 5120
        assert chunk_bytes % (20 * chunk) == 0
        assert chunk_bytes // (20 * chunk) <= cap // chunk + 2, (tick, chunk_bytes // (20 * chunk))


def test_summarize_and_union_over_windows_with_different_chunk_sizes(window_kernel) -> None:
    # Caps 100, 3000 and 1e6 give the compiled window chunks of 8, 256 and 1024 slots: a read
    # that walks a window's leaves must use that window's chunk size, not another's.
    windows, live = [], []
    for index, cap in enumerate((100, 3000, 1_000_000)):
        window = window_kernel.SlidingWindow(5.0, cap)
        values = [1.0 + ((i * 7919 + index) % 1009) / 1009.0 for i in range(min(cap, 2000))]
        for value in values:
            window.record(0.0, value)
        windows.append(window)
        live += values
    qs = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
    expected = (len(live), math.fsum(live), min(live), max(live),
                tuple(float(x) for x in np.quantile(live, qs, method="linear")))
    assert window_kernel.summarize(windows, 1.0, qs) == expected
    assert window_kernel.union(windows, 1.0).summary(1.0, qs) == expected


@pytest.mark.compiled_vs_twin
def test_union_follows_the_circle_where_a_chunk_was_spliced_in() -> None:
    # cap 100: chunks of 8. Chunk 1 is spliced in after 0; 0 is re-entered once its samples
    # expire; then chunk 2 is spliced in between 0 and 1: the circle is 0 -> 2 -> 1 -> 0, not
    # in the chunks' order. A union must take the samples along the circle.
    from fakeai import _window

    def fill(module):
        window, other = module.SlidingWindow(1.0, 100), module.SlidingWindow(1.0, 100)
        for timestamp, base, count in ((0.0, 0.0, 8), (0.5, 10.0, 8), (1.0, 20.0, 8), (1.2, 30.0, 12)):
            for i in range(count):
                window.record(timestamp, base + i)
        other.record(1.1, -1.0)
        return window, other

    qs = (0.0, 0.25, 0.5, 0.75, 1.0)
    compiled, reference = fill(_window), fill(_window_py)
    for now in (1.2, 1.45, 2.05):
        expected = _window_py.union(reference, now).summary(now, qs)
        assert _window.union(compiled, now).summary(now, qs) == expected, now
        assert _window.union(compiled[:1], now).summary(now, qs) == _window_py.union(reference[:1], now).summary(now, qs)
        assert _window.summarize(compiled, now, qs) == expected


@settings(max_examples=200, deadline=None)
@given(data=st.lists(values, min_size=1, max_size=6000), qs=quantiles)
def test_quantiles_equal_numpy_linear(window_kernel, data: list[float], qs: list[float]) -> None:
    window = window_kernel.SlidingWindow(5.0, max_samples=10_000)
    for value in data:
        window.record(0.0, value)
    expected = np.quantile(np.array(data), qs, method="linear") if qs else []
    got = window.quantiles(0.0, qs)
    with np.errstate(all="ignore"):
        assert all(_same(float(e), g) for e, g in zip(expected, got)), (expected, got)


def test_repeated_quantiles_on_a_large_window(window_kernel) -> None:
    # Regression: the compiled bucket selection once walked past a repeated quantile's ranks.
    window = window_kernel.SlidingWindow(5.0)
    window.record(0.0, -1.0)
    for _ in range(4096):
        window.record(0.0, 0.0)
    assert window.quantiles(0.0, (0.0, 0.0, 0.5, 0.0)) == (-1.0, -1.0, 0.0, -1.0)


# -- union of windows ------------------------------------------------------------------------


def test_union_holds_every_live_sample_in_time_order(window_kernel) -> None:
    a, b = window_kernel.SlidingWindow(5.0, 100), window_kernel.SlidingWindow(5.0, 100)
    for timestamp, value in ((1.0, 10.0), (3.0, 30.0), (6.5, 65.0)):
        a.record(timestamp, value)
    for timestamp, value in ((2.0, 20.0), (6.0, 60.0)):
        b.record(timestamp, value)
    merged = window_kernel.union([a, b], 7.0)  # 1.0 and 2.0 have left a 5 s window at 7.0
    assert merged.summary(7.0, (0.0, 0.5, 1.0)) == (3, 155.0, 30.0, 65.0, (30.0, 60.0, 65.0))
    assert (len(a), len(b)) == (2, 1), "the parts expired, and are otherwise untouched"
    with pytest.raises(ValueError):
        window_kernel.union([a, window_kernel.SlidingWindow(1.0)], 7.0)
    with pytest.raises(ValueError):
        window_kernel.union([], 7.0)


def test_summarize_is_the_union_without_building_it(window_kernel) -> None:
    a, b = window_kernel.SlidingWindow(5.0, 100), window_kernel.SlidingWindow(5.0, 100)
    for timestamp, value in ((1.0, 10.0), (3.0, 30.0), (6.5, 65.0)):
        a.record(timestamp, value)
    for timestamp, value in ((2.0, 20.0), (6.0, 60.0)):
        b.record(timestamp, value)
    assert window_kernel.summarize([a, b], 7.0, (0.0, 0.5, 1.0)) == (3, 155.0, 30.0, 65.0, (30.0, 60.0, 65.0))
    assert window_kernel.summarize([a, b], 7.0, (0.5,)) == window_kernel.union([a, b], 7.0).summary(7.0, (0.5,))
    count, total, low, high, quantiles = window_kernel.summarize([], 7.0, QS)
    assert (count, total) == (0, 0.0) and all(math.isnan(x) for x in (low, high, *quantiles))
    with pytest.raises(ValueError, match="different lengths"):
        window_kernel.summarize([a, window_kernel.SlidingWindow(1.0)], 7.0, QS)
    with pytest.raises(ValueError, match="quantile must be between 0 and 1"):
        window_kernel.summarize([a], 7.0, (2.0,))


@settings(max_examples=100, deadline=None)
@given(
    parts=st.lists(
        st.lists(st.tuples(st.floats(0.0, 0.02), st.one_of(values, st.integers(0, 50).map(float))), max_size=3000),
        min_size=1, max_size=5,
    ),
    qs=quantiles,
)
def test_summarize_equals_numpy_and_fsum_over_every_window(window_kernel, parts: list, qs: list[float]) -> None:
    windows, samples = [], []
    for records in parts:
        window = window_kernel.SlidingWindow(10.0)
        clock = 0.0
        for advance, value in records:
            clock += advance
            window.record(clock, value)
            samples.append((clock, value))
        windows.append(window)
    now = max((t for t, _ in samples), default=0.0)  # up to 60 s: older samples have left
    live = [value for t, value in samples if t > now - 10.0]
    count, total, low, high, got = window_kernel.summarize(windows, now, qs)
    assert (count, total) == (len(live), math.fsum(live))
    if not live:
        assert all(math.isnan(x) for x in (low, high, *got))
        return
    assert (low, high) == (min(live), max(live))
    expected = np.quantile(np.array(live), qs, method="linear") if qs else []
    with np.errstate(all="ignore"):
        assert all(_same(float(e), g) for e, g in zip(expected, got)), (expected, got)


@pytest.mark.compiled_vs_twin
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


def test_summarize_over_windows_indexed_to_different_depths(window_kernel) -> None:
    # One window crowded with values in [1, 1.001) (the compiled index splits it deep), one
    # with a few values there (a leaf): their counts are added level by level.
    rng = np.random.default_rng(3)
    crowded, sparse = (1.0 + rng.random(5000) * 1e-3).tolist(), (1.0 + rng.random(40) * 1e-3).tolist()
    windows = [window_kernel.SlidingWindow(5.0), window_kernel.SlidingWindow(5.0)]
    for window, values in zip(windows, (crowded, sparse)):
        for value in values:
            window.record(0.0, value)
    live = crowded + sparse
    qs = (0.0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0)
    assert window_kernel.summarize(windows, 1.0, qs) == (
        len(live), math.fsum(live), min(live), max(live),
        tuple(float(x) for x in np.quantile(live, qs, method="linear")),
    )


def test_summarize_over_many_windows_whose_leaves_end_together(window_kernel) -> None:
    # Eight windows, each with fewer distinct values than a leaf holds, in one binade and with
    # repeats: a selection ends with hundreds of samples from every window's leaf, which the
    # compiled kernel narrows down by the keys' lower bits before sorting the few left.
    rng = np.random.default_rng(11)
    windows, live = [], []
    for index in range(8):
        values = (1.0 + np.round(rng.random(200), 3 + index % 3)).tolist() + [1.5] * (index * 5)
        window = window_kernel.SlidingWindow(5.0)
        for value in values:
            window.record(0.0, value)
        windows.append(window)
        live += values
    qs = (0.0, 0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0)
    assert window_kernel.summarize(windows, 1.0, qs) == (
        len(live), math.fsum(live), min(live), max(live),
        tuple(float(x) for x in np.quantile(live, qs, method="linear")),
    )
