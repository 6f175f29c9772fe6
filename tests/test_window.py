"""The sliding-window kernel: behaviour of both implementations, then their equivalence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakeai import _window_py
from fakeai.window import NO_EXTENSIONS

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


def test_cap_drops_the_oldest_and_counts_exactly(window_kernel) -> None:
    window = window_kernel.SlidingWindow(1000.0, max_samples=100)
    for i in range(250):
        window.record(float(i), float(i))
    assert window.dropped == 150
    assert len(window) == 100
    assert window.summary(250.0, (0.0, 1.0))[2:] == (150.0, 249.0, (150.0, 249.0))


def test_growth_keeps_order_across_the_ring_seam(window_kernel) -> None:
    # Expire from the front while recording at the back so the ring wraps, then grow it.
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
