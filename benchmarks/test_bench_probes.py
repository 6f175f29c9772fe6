"""Cost of a probe (``GET /health``) against the full snapshot, by samples in the window.

A registry holds ``n`` requests in its window (4 endpoints, 2 % errors), in a steady state:
before each read, ``NEW`` more requests finish and as many leave the window (what a probe
sees under load: the records since the last read). Each round measures one read:

* ``health``: ``MetricsRegistry.health()`` and ``render_health``, what ``/health`` does
  (replay the new records, take window counts);
* ``health, nothing new``: the same with no request finished since the last read;
* ``snapshot``: ``MetricsRegistry.snapshot()``, what ``/health`` did before (and what
  ``/health/detailed`` still does).

The probe's cost should not grow with ``n``; the snapshot's does. Run:
``.venv/bin/python -m pytest benchmarks/test_bench_probes.py --benchmark-enable -q``.
"""

from __future__ import annotations

import pytest

from fakeai.exporters import render_health
from fakeai.metrics import MetricsRegistry

ENDPOINTS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models"]
SIZES = [1_000, 10_000, 100_000, 1_000_000]
WINDOW = 100.0
NEW = 100
"""Requests finished between two reads."""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Traffic:
    """A registry with ``samples`` requests in its window, and more arriving at the same pace."""

    def __init__(self, samples: int) -> None:
        self.clock = Clock()
        self.step = WINDOW / samples
        self.registry = MetricsRegistry(window_seconds=WINDOW, max_samples=samples + 2 * NEW, clock=self.clock)
        self.index = 0
        self.more(samples)
        self.registry.snapshot()  # the journal read once: later reads see only what is new

    def more(self, requests: int = NEW) -> None:
        registry, clock = self.registry, self.clock
        for _ in range(requests):
            index = self.index = self.index + 1
            clock.now += self.step
            registry.request_started("m")
            registry.record(ENDPOINTS[index % 4], 0.05 + (index % 97) * 0.001, 500 if index % 50 == 0 else 200,
                            100, 20, model="m", finish_reason="stop")


@pytest.fixture(scope="module", params=SIZES, ids=[f"{size:.0e}" for size in SIZES])
def traffic(request) -> Traffic:
    return Traffic(request.param)


def test_health_probe(benchmark, report, traffic: Traffic) -> None:
    registry = traffic.registry
    benchmark.pedantic(lambda: render_health(registry.health()), setup=traffic.more, rounds=50, iterations=1)
    reading = registry.health()
    assert reading.errors * 50 == pytest.approx(reading.requests, rel=0.05)
    report(f"/health, {registry.health().requests:.0e} in window", benchmark)


def test_full_snapshot(benchmark, report, traffic: Traffic) -> None:
    registry = traffic.registry
    rounds = 50 if traffic.step > WINDOW / 200_000 else 10
    benchmark.pedantic(registry.snapshot, setup=traffic.more, rounds=rounds, iterations=1)
    report(f"snapshot, {registry.health().requests:.0e} in window", benchmark)


def test_health_probe_nothing_new(benchmark, report, traffic: Traffic) -> None:
    """A probe while no request has finished since the last read: the window counts alone."""
    registry = traffic.registry
    registry.health()
    benchmark(lambda: render_health(registry.health()))
    report(f"/health, nothing new, {registry.health().requests:.0e} in window", benchmark)
