"""The metrics registry: a scripted workload on a fake clock gives hand-computed numbers."""

from __future__ import annotations

import math

import pytest

from fakeai.metrics import MetricsRegistry


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry(clock: FakeClock) -> MetricsRegistry:
    return MetricsRegistry(window_seconds=5.0, clock=clock, wall_clock=lambda: 1_700_000_000.0)


def test_scripted_workload_gives_exact_snapshot(registry: MetricsRegistry, clock: FakeClock) -> None:
    clock.now += 10.0  # up for longer than one window: rates divide by 5 s
    chat = "/v1/chat/completions"
    registry.record(chat, 0.1, 200, prompt_tokens=10, completion_tokens=20)
    registry.record(chat, 0.2, 200, prompt_tokens=30, completion_tokens=40)
    registry.record(chat, 0.3, 500, prompt_tokens=5)
    registry.record(chat, 0.4, 429, prompt_tokens=5)
    registry.stream_started()
    registry.stream_started()
    registry.record(chat, 2.0, 200, 8, 100, ttft=0.05, stream_completed=True)
    registry.record(chat, 1.0, 200, 8, 10, ttft=0.15, stream_completed=False)
    registry.record("/v1/embeddings", 0.01, 200, prompt_tokens=7)

    snap = registry.snapshot()
    ep = snap.endpoints[chat]
    assert ep.requests_total == 6
    assert ep.latency.count == 6
    assert ep.latency.rate == pytest.approx(6 / 5)
    assert ep.latency.min == 0.1 and ep.latency.max == 2.0
    assert ep.latency.avg == pytest.approx(4.0 / 6)
    # sorted: .1 .2 .3 .4 1 2 -> p50 at h=2.5 is (.3+.4)/2; p90 at h=4.5 is (1+2)/2; p99 at h=4.95
    assert ep.latency.p50 == pytest.approx(0.35)
    assert ep.latency.p90 == pytest.approx(1.5)
    assert ep.latency.p99 == pytest.approx(1.95)
    assert ep.errors.count == 2 and ep.errors_total == {429: 1, 500: 1}
    assert ep.errors.rate == pytest.approx(2 / 5)
    assert ep.prompt_tokens_total == 66 and ep.completion_tokens_total == 170
    assert ep.completion_tokens.sum_rate == pytest.approx(170 / 5)
    assert ep.duration_histogram.sum == pytest.approx(4.0) and ep.duration_histogram.count == 6

    streaming = snap.streaming
    assert (streaming.active_streams, streaming.completed_streams, streaming.failed_streams) == (0, 1, 1)
    assert streaming.completion_rate == 0.5
    assert streaming.ttft.count == 2 and streaming.ttft.avg == pytest.approx(0.1)
    assert streaming.ttft_histogram.sum == pytest.approx(0.2) and streaming.ttft_histogram.count == 2
    # mean inter-token latency per stream: (2.0 - 0.05) / 99 and (1.0 - 0.15) / 9
    assert sorted([streaming.itl.min, streaming.itl.max]) == pytest.approx([1.95 / 99, 0.85 / 9])
    assert sorted([streaming.tokens_per_second.min, streaming.tokens_per_second.max]) == [10.0, 50.0]

    assert list(snap.endpoints) == [chat, "/v1/embeddings"]
    assert snap.totals.requests_per_second == pytest.approx(7 / 5)
    assert snap.totals.errors_per_second == pytest.approx(2 / 5)
    assert snap.totals.error_rate_percentage == pytest.approx(200 / 7)
    assert snap.totals.health == "unhealthy"
    assert snap.totals.average_latency_seconds == pytest.approx(4.01 / 7)
    assert snap.timestamp == 1_700_000_000.0 and snap.uptime_seconds == 10.0
    assert snap.dropped_samples == 0


def test_a_fresh_server_divides_by_its_uptime(registry: MetricsRegistry, clock: FakeClock) -> None:
    clock.now += 2.0
    for _ in range(10):
        registry.record("/v1/completions", 0.01, 200)
    assert registry.snapshot().endpoints["/v1/completions"].latency.rate == 5.0


def test_windowed_values_expire_while_totals_stay(registry: MetricsRegistry, clock: FakeClock) -> None:
    clock.now += 10.0
    registry.record("/v1/completions", 0.5, 503)
    clock.now += 5.0
    snap = registry.snapshot()
    ep = snap.endpoints["/v1/completions"]
    assert ep.latency.count == 0 and ep.latency.rate == 0.0 and math.isnan(ep.latency.p99)
    assert ep.requests_total == 1 and ep.errors_total == {503: 1}
    assert snap.totals.error_rate_percentage == 0.0 and snap.totals.average_latency_seconds == 0.0
    assert snap.totals.health == "healthy"


def test_active_streams_count_open_streams(registry: MetricsRegistry) -> None:
    registry.stream_started()
    registry.stream_started()
    registry.record("/v1/chat/completions", 0.1, 200, 1, 1, ttft=0.01, stream_completed=True)
    snap = registry.snapshot()
    assert snap.streaming.active_streams == 1 and snap.streaming.completed_streams == 1


def test_the_cap_drops_and_reports(clock: FakeClock) -> None:
    registry = MetricsRegistry(window_seconds=5.0, max_samples=3, clock=clock)
    for _ in range(5):
        registry.record("/v1/embeddings", 0.01, 200)
    snap = registry.snapshot()
    # latency, prompt and completion token windows each dropped 2; totals lose nothing
    assert snap.dropped_samples == 6
    assert snap.endpoints["/v1/embeddings"].requests_total == 5


def test_snapshot_is_immutable(registry: MetricsRegistry) -> None:
    snap = registry.snapshot()
    with pytest.raises(AttributeError):
        snap.uptime_seconds = 1.0  # type: ignore[misc]


def test_histograms_are_cumulative_with_inclusive_upper_bounds(registry: MetricsRegistry) -> None:
    for duration in (0.0001, 0.00010001, 0.3, 500.0):
        registry.record("/v1/embeddings", duration, 200)
    histogram = registry.snapshot().endpoints["/v1/embeddings"].duration_histogram
    assert histogram.bounds[0] == 0.0001 and histogram.cumulative[0] == 1, "le is inclusive"
    assert histogram.cumulative[1] == 2
    assert histogram.cumulative[histogram.bounds.index(0.3)] == 3
    assert histogram.cumulative[-2] == 3 and histogram.cumulative[-1] == histogram.count == 4


def test_models_count_running_requests_and_finish_reasons(registry: MetricsRegistry) -> None:
    cells = registry.request_started("m")
    registry.request_started("m")
    registry.request_started("m")  # never routed to an engine (an embedding): in no vLLM family
    registry.routed(cells, 1)
    registry.routed(cells, 1)
    assert registry.in_flight == 3 and registry.snapshot().models["m"].running == 2
    registry.record("/v1/completions", 0.5, 200, 3, 4, model="m", finish_reason="length", kv=(1, 3, 0, 0, None))
    registry.record("/v1/completions", 0.5, 503, 3, model="m", kv=(1, 3, 0, 0, None))
    registry.record("/v1/embeddings", 0.5, 200, 3, model="m", finish_reason="stop")
    model = registry.snapshot().models["m"]
    assert model.running == 0 and registry.in_flight == 0
    assert model.success_total == {"length": 1}, "failed requests are not successes, embeddings are not counted"
    assert (model.prompt_tokens_total, model.generation_tokens_total) == (6, 4)
    assert list(model.engines) == ["1"]
    engine = model.engines["1"]
    assert engine.success_total == {"abort": 0, "length": 1, "stop": 0}
    assert engine.e2e_histogram.count == 1


def _busy(registry: MetricsRegistry) -> None:
    """Requests on two endpoints, two models on two engines, streams, errors."""
    for index in range(40):
        model = ("m-a", "m-b")[index % 2]
        registry.request_started(model)
        stream = index % 3 == 0
        if stream:
            registry.stream_started()
        registry.record(("/v1/chat/completions", "/v1/completions")[index % 2], 0.01 * (index + 1),
                        500 if index % 7 == 0 else 200, 10 + index, 5 + index,
                        ttft=0.005 if stream else None, stream_completed=True if stream else None,
                        model=model, finish_reason=None if index % 7 == 0 else "stop",
                        kv=(index % 2, 10 + index, 4, 8, (3, 100, 0, 0)))


def test_a_snapshot_in_slices_lets_the_loop_run_and_shows_one_instant(
    registry: MetricsRegistry, clock: FakeClock
) -> None:
    """``snapshot_async`` lets other tasks run between its slices, and what it shows is the
    registry at the instant it started: requests recorded meanwhile (as a scrape's slices
    interleave with serving) are in the next snapshot, not half in this one."""
    import asyncio

    from fakeai.exporters import render_json, render_prometheus

    _busy(registry)
    clock.now += 1.0

    async def scenario():
        recorded = 0

        async def serving() -> None:
            nonlocal recorded
            while True:
                registry.request_started("m-a")
                registry.record("/v1/chat/completions", 0.5, 200, 1, 1, model="m-a", finish_reason="stop",
                                kv=(0, 1, 0, 0, (3, 100, 0, 0)))
                recorded += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(serving())
        await asyncio.sleep(0)
        expected = registry.snapshot()
        before = recorded
        sliced = await registry.snapshot_async(slice_seconds=0.0)
        task.cancel()
        return expected, sliced, recorded - before

    expected, sliced, recorded = asyncio.run(scenario())
    assert recorded >= 3  # the loop ran between the slices (after the window reads, each endpoint, each engine)
    assert render_json(sliced) == render_json(expected)
    assert render_prometheus(sliced) == render_prometheus(expected)
    after = registry.snapshot()
    chat = "/v1/chat/completions"
    assert after.endpoints[chat].requests_total == expected.endpoints[chat].requests_total + recorded


def test_a_long_backlog_is_replayed_in_slices_and_counted_whole(registry: MetricsRegistry, clock: FakeClock) -> None:
    """A read after many records nobody read yet (a worker not scraped during a burst) lets the
    loop run while it replays them -- and then shows every one of them."""
    import asyncio

    from fakeai.metrics.registry import CATCH_UP_RECORDS

    backlog = 40 * CATCH_UP_RECORDS
    for index in range(backlog):
        registry.request_started("m-a")
        registry.record("/v1/chat/completions", 0.001 * (index % 97), 200, 3, 4, model="m-a", finish_reason="stop")

    async def scenario(read):
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        result = await read(slice_seconds=0.0)
        task.cancel()
        return result, ticks

    health, ticks = asyncio.run(scenario(registry.health_async))
    assert ticks >= backlog // CATCH_UP_RECORDS
    assert health.requests == backlog
    for index in range(backlog):  # another backlog, for a full snapshot this time
        registry.request_started("m-a")
        registry.record("/v1/chat/completions", 0.001 * (index % 89), 200, 3, 4, model="m-a", finish_reason="stop")
    snapshot, ticks = asyncio.run(scenario(registry.snapshot_async))
    assert ticks >= backlog // CATCH_UP_RECORDS
    chat = snapshot.endpoints["/v1/chat/completions"]
    assert chat.latency.count == chat.requests_total == 2 * backlog
    assert render_json_of(snapshot) == render_json_of(registry.snapshot())


def render_json_of(snapshot) -> bytes:
    from fakeai.exporters import render_json

    return render_json(snapshot)


def test_a_read_between_the_slices_of_another_does_not_mix_two_instants(
    registry: MetricsRegistry, clock: FakeClock
) -> None:
    """A probe (or another scrape) that replays new records while a sliced snapshot is reading
    its windows would put records after the snapshot's instant into the windows it has not read
    yet; the snapshot notices and reads every window again, at one new instant: the counts over
    the window agree with the counters it copied."""
    import asyncio

    _busy(registry)

    async def scenario():
        async def probing() -> None:
            while True:
                registry.request_started("m-b")
                registry.record("/v1/completions", 0.2, 200, 1, 1, model="m-b", finish_reason="stop")
                registry.health()
                await asyncio.sleep(0)

        task = asyncio.create_task(probing())
        await asyncio.sleep(0)
        snapshot = await registry.snapshot_async(slice_seconds=0.0)
        task.cancel()
        return snapshot

    snapshot = asyncio.run(scenario())
    for endpoint in snapshot.endpoints.values():
        assert endpoint.latency.count == endpoint.requests_total
    assert snapshot.endpoints["/v1/completions"].requests_total > 20  # the probe's requests are in it


def test_an_unchanged_histogram_is_the_same_reading_and_a_changed_one_a_new_exact_one(
    registry: MetricsRegistry, clock: FakeClock
) -> None:
    """Two snapshots with nothing recorded between them share each histogram's reading (the
    renderer then keeps its lines); one more request gives a new reading, with it counted."""
    _busy(registry)
    chat = "/v1/chat/completions"
    first, second = registry.snapshot(), registry.snapshot()
    assert second.endpoints[chat].duration_histogram is first.endpoints[chat].duration_histogram
    registry.record(chat, 0.5, 200, 1, 1, model="m-a", finish_reason="stop", kv=(0, 1, 0, 0, (3, 100, 0, 0)))
    third = registry.snapshot()
    before, after = first.endpoints[chat].duration_histogram, third.endpoints[chat].duration_histogram
    assert after is not before
    assert after.count == before.count + 1 and after.sum == pytest.approx(before.sum + 0.5)
    assert third.streaming.ttft_histogram is first.streaming.ttft_histogram  # no stream since


def test_a_catch_up_also_replays_what_is_recorded_while_it_yields(registry: MetricsRegistry) -> None:
    """A read's catch-up takes a backlog a batch at a time; requests recorded between its
    batches are replayed too, so the read's next step finds no backlog."""
    from fakeai.metrics.regions import RegionReader

    chat = "/v1/chat/completions"
    for _ in range(5):
        registry.record(chat, 0.1, 200, 1, 1)
    reader = RegionReader(registry.regions.own, registry.window_seconds, registry.max_samples)
    batches = reader.catch_up(2)
    next(batches)
    assert reader.cursor == 2
    for _ in range(3):  # recorded while the read lets the loop run
        registry.record(chat, 0.2, 200, 1, 1)
    for _ in batches:
        pass
    assert reader.cursor == registry.regions.own.journal_written() == 8
    (latency, *_), = reader.endpoints.values()
    assert latency.count(registry.clock()) == 8
