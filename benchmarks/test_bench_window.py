"""Cost of the sliding-window kernel: one record, and one read of p50/p90/p99.

Compiled kernel and pure-Python twin are measured in the same run; the summary prints
per-operation medians and the twin/compiled ratio. Targets on the 2-core reference machine:
record (call included) <= 100 ns; p50/p90/p99 over 1e5 samples <= 0.5 ms; the compiled read
>= 10x faster than the twin at 1e5.
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
