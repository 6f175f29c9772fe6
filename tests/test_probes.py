"""``GET /health`` is a cheap read: the snapshot's health figures at the same instant, without
a snapshot (no percentile selection), over every process of the server."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from litestar.testing import TestClient

from fakeai.api.sampling import SAMPLER_TASK
from fakeai.app import create_app
from fakeai.config import Settings
from fakeai.metrics import MetricsRegistry
from fakeai.metrics import regions as regions_module

CHAT, COMPLETIONS, EMBEDDINGS = "/v1/chat/completions", "/v1/completions", "/v1/embeddings"
MODEL = "openai/gpt-oss-120b"
WINDOW = 10.0


class SimulatedClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wall_of(clock: SimulatedClock):
    return lambda: 1_700_000_000.0 + clock.now


def assert_same_instant(registry: MetricsRegistry) -> None:
    """The cheap reading equals the full snapshot's figures, read at the same clock value."""
    reading = registry.health()
    snapshot = registry.snapshot()
    assert reading.error_rate_percentage == snapshot.totals.error_rate_percentage
    assert reading.status == snapshot.totals.health
    assert reading.timestamp == snapshot.timestamp
    assert reading.requests == sum(endpoint.latency.count for endpoint in snapshot.endpoints.values())
    assert reading.errors == sum(endpoint.errors.count for endpoint in snapshot.endpoints.values())


def record(registry: MetricsRegistry, clock: SimulatedClock, path: str, status: int, duration: float = 0.1) -> None:
    registry.request_started(MODEL)
    registry.record(path, duration, status, 5, 3, model=MODEL, finish_reason="stop" if status < 400 else None,
                    now=clock.now)


def test_health_reading_equals_the_snapshot_through_a_window_of_errors_coming_and_going() -> None:
    clock = SimulatedClock()
    registry = MetricsRegistry(window_seconds=WINDOW, clock=clock, wall_clock=wall_of(clock))
    assert_same_instant(registry)  # nothing yet: healthy, 0 %
    assert registry.health().status == "healthy" and registry.health().requests == 0
    statuses = []
    # 60 requests over 6 s, every third failing on one endpoint: the error share moves through
    # healthy, degraded and unhealthy, then errors leave the window ahead of the successes
    for step in range(60):
        clock.now += 0.1
        path = (CHAT, COMPLETIONS, EMBEDDINGS)[step % 3]
        status = 500 if (step < 12 and step % 3 == 0) else (429 if step % 11 == 0 else 200)
        record(registry, clock, path, status, duration=0.01 * (step % 7))
        if step % 4 == 0:
            assert_same_instant(registry)
            statuses.append(registry.health().status)
    for _ in range(20):  # the window slides: samples expire between reads
        clock.now += 0.5
        assert_same_instant(registry)
        statuses.append(registry.health().status)
    assert {"healthy", "degraded", "unhealthy"} <= set(statuses), "the workload crosses every level"
    assert registry.health().requests == 0, "everything has left the window"


@pytest.mark.parametrize(("errors", "level"), [(4, "healthy"), (5, "degraded"), (10, "degraded"), (11, "unhealthy")])
def test_health_levels_at_their_exact_boundaries(errors: int, level: str) -> None:
    clock = SimulatedClock()
    registry = MetricsRegistry(window_seconds=WINDOW, clock=clock, wall_clock=wall_of(clock))
    for index in range(100):
        record(registry, clock, CHAT, 500 if index < errors else 200)
    reading = registry.health()
    assert (reading.requests, reading.errors, reading.error_rate_percentage, reading.status) == (
        100, errors, float(errors), level)
    assert_same_instant(registry)


def test_health_reading_covers_every_process_of_the_server(tmp_path) -> None:
    """Two registries on one shared directory stand for two worker processes: each one's
    reading counts both, and equals either one's snapshot."""
    clock = SimulatedClock()
    first, second = (
        MetricsRegistry(window_seconds=WINDOW, clock=clock, wall_clock=wall_of(clock), shared_dir=str(tmp_path))
        for _ in range(2)
    )
    for step in range(40):
        clock.now += 0.2
        record(first if step % 2 else second, clock, (CHAT, COMPLETIONS)[step % 2], 503 if step % 5 == 0 else 200)
        if step % 7 == 0:
            assert_same_instant(first)
            assert_same_instant(second)
    assert first.health() == second.health()
    assert (first.health().requests, first.health().errors) == (40, 8)
    clock.now += WINDOW - 3.0  # the oldest samples have left, the newest not
    assert_same_instant(second)
    assert 0 < second.health().requests < 40


def test_get_health_shows_the_snapshots_status_and_timestamp_and_nothing_else() -> None:
    clock = SimulatedClock()
    app = create_app(Settings(zero_latency=True, fail_first=3, window_seconds=WINDOW), clock=clock,
                     wall_clock=wall_of(clock))
    registry = app.state.metrics
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    with TestClient(app) as client:
        seen = []
        for _ in range(60):
            clock.now += 0.25
            client.post(CHAT, json=chat)
            snapshot = registry.snapshot()  # before /health: its own request is recorded after it answers
            body = client.get("/health").json()
            assert body == {"status": snapshot.totals.health, "timestamp": snapshot.timestamp}
            seen.append(body["status"])
        assert seen[0] == "unhealthy" and seen[-1] == "healthy", "3 failures first, then out of the window"


def test_get_health_takes_no_snapshot_and_selects_no_quantile() -> None:
    """A probe costs window counts only: it never calls the snapshot or the window statistics
    (count, sum, extremes and quantile selection over every sample)."""
    app = create_app(Settings(zero_latency=True, fail_first=1))
    registry = app.state.metrics
    calls = []

    def refuse(name: str, original):
        def spy(*args, **kwargs):
            task = asyncio.current_task()
            if task is not None and task.get_name() == SAMPLER_TASK:  # the history's own, once a second
                return original(*args, **kwargs)
            calls.append(name)
            raise AssertionError(f"/health called {name}")

        return spy

    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    with TestClient(app) as client:
        for _ in range(5):
            client.post(CHAT, json=chat)
        registry.snapshot = refuse("snapshot", registry.snapshot)
        registry._stats = refuse("_stats", registry._stats)
        response = client.get("/health")
        assert response.status_code == 200
        assert response.json()["status"] == "unhealthy"  # 1 failure in 5
        assert client.head("/health").status_code == 200
    assert calls == []


def test_a_worker_that_starts_or_goes_between_two_reads_is_in_or_out_of_the_next(tmp_path, monkeypatch) -> None:
    """Reads list the server's regions again only when the directory changed; a worker
    started or gone just after a read is in or out of the next one. (The directory's time is
    set back before each read, so each change is seen by the time it leaves.)"""
    monkeypatch.setattr(regions_module, "RELIST_NANOSECONDS", 0)  # the time alone decides
    clock = SimulatedClock()

    def registry() -> MetricsRegistry:
        return MetricsRegistry(window_seconds=WINDOW, clock=clock, wall_clock=wall_of(clock), shared_dir=str(tmp_path))

    def long_unchanged(seconds_ago: int) -> None:
        stamp = time.time_ns() - seconds_ago * 1_000_000_000
        os.utime(tmp_path, ns=(stamp, stamp))

    first = registry()
    record(first, clock, CHAT, 200)
    long_unchanged(100)
    assert first.health().requests == 1
    second = registry()
    record(second, clock, CHAT, 503)
    assert (first.health().requests, first.health().errors) == (2, 1)
    long_unchanged(50)
    assert first.snapshot().processes == 2
    second.regions.path.unlink()  # what the supervisor's cleanup does
    assert (first.health().requests, first.snapshot().processes) == (1, 1)


def test_a_worker_that_starts_in_the_same_tick_as_a_listing_is_in_a_later_read(tmp_path, monkeypatch) -> None:
    """A file system's clock is coarse: a region made in the tick of the last listing leaves
    the directory's time as it was. A listing made soon after the directory's last change is
    not trusted, however much later the next read comes."""
    monkeypatch.setattr(regions_module, "RELIST_NANOSECONDS", 3600 * 1_000_000_000)  # "soon": within the hour
    clock = SimulatedClock()
    stamp = time.time_ns() - 1_000_000_000

    def registry() -> MetricsRegistry:
        made = MetricsRegistry(window_seconds=WINDOW, clock=clock, wall_clock=wall_of(clock), shared_dir=str(tmp_path))
        os.utime(tmp_path, ns=(stamp, stamp))  # the same time as before: the same tick
        return made

    first = registry()
    assert first.health().requests == 0  # listed an (hour's) moment after the change
    second = registry()
    record(second, clock, CHAT, 200)
    monkeypatch.setattr(regions_module, "RELIST_NANOSECONDS", 0)  # the next read comes long after
    assert first.health().requests == 1
