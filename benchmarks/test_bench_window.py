"""Cost of the sliding-window kernel: one record, one read of p50/p90/p99, and a summary of
several windows together.

Compiled kernel and pure-Python twin are measured in the same run; the summary prints
per-operation medians and the twin/compiled ratio. Targets on the 2-core reference machine:
a read (count, sum, extremes, p50/p90/p99) independent of the window size, <= 0.05 ms at
1e6 samples, for one window or four together; a record into a full window (the oldest
expires) at 1e6 samples in tens of nanoseconds past the Python call.
``benchmarks/scrape_latency.py`` measures the same kernel from a whole scrape's side.
"""

from __future__ import annotations

import random

import pytest

from benchmarks.conftest import RATIOS
from fakeai import _window, _window_py

IMPLEMENTATIONS = {"compiled": _window, "python": _window_py}
QS = (0.5, 0.9, 0.99)
RECORDS_PER_ROUND = 10_000

for _size in (10**3, 10**4, 10**5, 10**6):
    RATIOS.append((f"read {_size:.0e}: python / compiled", f"read {_size:.0e} python", f"read {_size:.0e} compiled"))
RATIOS.append(("record: python / compiled", "record python", "record compiled"))
for _size in (10**3, 10**6):
    RATIOS.append((f"record into a full window {_size:.0e}: compiled / empty",
                   f"record into a full window {_size:.0e} compiled", "record compiled"))


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_record(benchmark, report, name: str) -> None:
    window = IMPLEMENTATIONS[name].SlidingWindow(5.0)
    record = window.record
    values = [random.lognormvariate(-3, 0.5) for _ in range(RECORDS_PER_ROUND)]

    def run() -> None:
        for value in values:
            record(1.0, value)

    benchmark(run)
    report(f"record {name}", benchmark, RECORDS_PER_ROUND)


@pytest.mark.parametrize("size", [10**3, 10**4, 10**5, 10**6], ids=lambda n: f"{n:.0e}")
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_read_quantiles(benchmark, report, name: str, size: int) -> None:
    """A latency-like (lognormal) window of ``size`` samples, read at a fixed instant."""
    rng = random.Random(size)
    window = IMPLEMENTATIONS[name].SlidingWindow(5.0, max_samples=size)
    for i in range(size):
        window.record(i * 4.0 / size, rng.lognormvariate(-3, 0.5))
    summary = window.summary
    rounds = 3 if (name == "python" and size >= 10**5) else None
    if rounds:
        benchmark.pedantic(summary, args=(4.0, QS), rounds=rounds, iterations=1)
    else:
        benchmark(summary, 4.0, QS)
    report(f"read {size:.0e} {name}", benchmark)


@pytest.mark.parametrize("size", [10**3, 10**6], ids=lambda n: f"{n:.0e}")
def test_record_into_a_full_window(benchmark, report, size: int) -> None:
    """Steady state: each record expires the oldest sample (a window of ``size`` samples)."""
    rng = random.Random(size)
    window = _window.SlidingWindow(float(size), max_samples=2 * size)
    for i in range(size):
        window.record(float(i), rng.lognormvariate(-3, 0.5))
    values = [rng.lognormvariate(-3, 0.5) for _ in range(RECORDS_PER_ROUND)]
    clock = [float(size)]
    record = window.record

    def run() -> None:
        now = clock[0]
        for value in values:
            record(now, value)
            now += 1.0
        clock[0] = now

    benchmark(run)
    report(f"record into a full window {size:.0e} compiled", benchmark, RECORDS_PER_ROUND)


@pytest.mark.parametrize("size", [10**3, 10**4, 10**5, 10**6], ids=lambda n: f"{n:.0e}")
def test_summarize_four_windows(benchmark, report, size: int) -> None:
    """Four windows of ``size / 4`` samples read together, as the overall latency is."""
    rng = random.Random(size)
    windows = [_window.SlidingWindow(5.0, max_samples=size) for _ in range(4)]
    for i in range(size):
        windows[i % 4].record(i * 4.0 / size, rng.lognormvariate(-3, 0.5))
    benchmark(_window.summarize, windows, 4.0, QS)
    report(f"summarize 4 windows {size:.0e} compiled", benchmark)
