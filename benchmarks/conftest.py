"""Benchmarks: not part of the test run. ``pytest benchmarks --benchmark-enable`` runs them.

Each benchmark may report a per-operation figure under a name; at the end a table prints
those figures and the ratios of pairs measured in the same run (e.g. compiled vs Python).
"""

from __future__ import annotations

import pytest

FIGURES: dict[str, float] = {}
RATIOS: list[tuple[str, str, str]] = []  # (label, numerator figure, denominator figure)


@pytest.fixture
def report():
    """``report(name, seconds_per_operation)`` after a benchmark has run."""

    def _report(name: str, benchmark, operations: int = 1) -> None:
        if benchmark.stats is not None:
            FIGURES[name] = benchmark.stats.stats.median / operations

    return _report


def pytest_terminal_summary(terminalreporter) -> None:
    if not FIGURES:
        return
    write = terminalreporter.write_line
    write("")
    write("per-operation medians")
    for name, seconds in FIGURES.items():
        write(f"  {name:<48} {seconds * 1e9:>14,.0f} ns  ({seconds * 1e3:.4f} ms)")
    for label, top, bottom in RATIOS:
        if top in FIGURES and bottom in FIGURES:
            write(f"  {label:<48} {FIGURES[top] / FIGURES[bottom]:>14.1f} x")
