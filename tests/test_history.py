"""The metrics history: points taken from snapshots, bounded, served at /metrics/history."""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import mmap
import multiprocessing
import os
import resource
import signal
import statistics
import struct
import time
from pathlib import Path

import httpx
import msgspec
import pytest

from fakeai.api.sampling import HistorySampler
from fakeai.config import Settings
from fakeai.exporters.history import history_json_steps
from fakeai.metrics import MetricsRegistry
from fakeai.metrics.history import HISTORY_FIELDS, MetricsHistory
from fakeai.metrics.history_ring import HEADER_BYTES, LEASE_FILE, SLOT_BYTES, SamplingLease, SharedHistory
from fakeai.region import Region
from tests.servers import eventually, running_app, running_cli


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_points_are_the_snapshots_figures_and_the_ring_is_bounded() -> None:
    clock = Clock()
    registry = MetricsRegistry(window_seconds=10.0, clock=clock, wall_clock=lambda: 1_700_000_000.0 + clock.now)
    history = MetricsHistory(seconds=3.0, interval_seconds=1.0)
    assert history.capacity == 3
    history.add(registry.snapshot())  # nothing yet: rates 0, percentiles NaN
    clock.now += 10.0
    for duration, status in ((0.1, 200), (0.3, 200), (0.2, 500), (0.4, 200)):
        registry.request_started("m")
        registry.record("/v1/chat/completions", duration, status, 10, 20, model="m", finish_reason="stop")
        registry.request_started("m")
        registry.record("/v1/completions", duration / 10, 200, 10, 5, model="m", finish_reason="stop")
    registry.request_started("m")
    registry.record("/v1/embeddings", 0.0, 200, 100, 0, model="m", finish_reason="stop", kv=(0, 100, 25, 25, None))
    history.add(registry.snapshot())
    series = columns(history)
    assert list(series) == list(HISTORY_FIELDS)
    assert math.isnan(series["latency_p99_seconds"][0]) and series["requests_per_second"][0] == 0.0
    # 9 requests in a 10 s window; the latency percentiles are over every endpoint's samples
    assert series["requests_per_second"][1] == pytest.approx(0.9)
    assert series["error_rate_percentage"][1] == pytest.approx(100 / 9)
    every = sorted([0.1, 0.3, 0.2, 0.4, 0.01, 0.03, 0.02, 0.04, 0.0])
    assert series["latency_p50_seconds"][1] == pytest.approx(every[4])
    assert series["latency_p99_seconds"][1] == pytest.approx(every[7] + (every[8] - every[7]) * 0.92)
    assert series["completion_tokens_per_second"][1] == pytest.approx((4 * 20 + 4 * 5) / 10)
    assert series["kv_cache_hit_rate"][1] == 0.25
    assert series["timestamp"] == [1_700_000_100.0, 1_700_000_110.0]
    for _ in range(5):
        history.add(registry.snapshot())
    assert len(history) == 3, "only the newest points are kept"


def test_history_endpoint_fills_at_the_interval_up_to_its_capacity() -> None:
    settings = Settings(history_seconds=0.5, history_interval_seconds=0.1, zero_latency=True)
    with running_app(settings) as (base_url, _), httpx.Client(timeout=10) as client:
        client.post(base_url + "/v1/chat/completions",
                    json={"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}]})
        answered = time.time()  # the server recorded the request in the step that sent its answer

        def filled_since_the_answer() -> bool:
            # a slow first answer can come after the ring is full: wait for a point taken after it
            document = client.get(base_url + "/metrics/history").json()
            return document["points"] == 5 and document["series"]["timestamp"][-1] > answered

        eventually(filled_since_the_answer, "the ring filled up")
        document = client.get(base_url + "/metrics/history").json()
        assert (document["interval_seconds"], document["seconds"], document["capacity"]) == (0.1, 0.5, 5)
        timestamps = document["series"]["timestamp"]
        assert len(timestamps) == 5 and timestamps == sorted(timestamps)
        assert document["series"]["requests_per_second"][-1] > 0, "the newest point counts the request"
        assert client.head(base_url + "/metrics/history").status_code == 200


# -- one history per server: the shared ring and its one writer ------------------------------


def columns(history: MetricsHistory | SharedHistory) -> dict[str, list[float]]:
    """Field -> its values, oldest first (the layout ``/metrics/history`` serves)."""
    points = history.points()
    return {field: [point[index] for point in points] for index, field in enumerate(HISTORY_FIELDS)}


def point(index: int) -> tuple[float, ...]:
    return tuple(float(index) for _ in HISTORY_FIELDS)


@pytest.mark.parametrize("shared", [False, True], ids=["one process", "shared ring"])
def test_a_full_history_is_rendered_in_steps_from_one_reading(tmp_path, shared: bool) -> None:
    """An hour of points is read, laid out and encoded in steps (the endpoint lets the event loop
    serve between them), into the same document as one encoding of its columns. A point the
    sampler adds after the first step is not in it: in one process the points were copied at
    once; from the shared ring, the oldest slot it overwrites, not yet read, is left out."""
    history = SharedHistory(tmp_path, seconds=3600.0, interval_seconds=1.0) if shared else MetricsHistory(3600.0, 1.0)
    for index in range(3600):
        history.add_point(tuple(math.nan if (index + field) % 7 == 0 else index + field / 10
                                for field in range(len(HISTORY_FIELDS))))
    points = history.points()
    shown = points[1:] if shared else points
    whole = msgspec.json.encode({"interval_seconds": 1.0, "seconds": 3600.0, "capacity": 3600, "points": len(shown),
                                 "series": {field: [point[index] for point in shown]
                                            for index, field in enumerate(HISTORY_FIELDS)}})
    parts: list[bytes] = []
    taken = 0
    for taken, _ in enumerate(history_json_steps(parts, history), 1):
        if taken == 1:  # the shared ring has read no slot yet
            history.add_point(tuple(float(field) for field in range(len(HISTORY_FIELDS))))
    assert taken > len(HISTORY_FIELDS) * (2 if shared else 1)  # two per figure (3,600 values), more reading the ring
    document = b"".join(parts)
    assert document == whole
    assert msgspec.json.decode(document)["series"]["timestamp"][-1] == 3599.0


def test_shared_ring_shows_every_process_the_same_newest_points(tmp_path) -> None:
    writer = SharedHistory(tmp_path, seconds=3.0, interval_seconds=1.0)
    reader = SharedHistory(tmp_path, seconds=3.0, interval_seconds=1.0)
    assert (reader.capacity, len(reader), reader.next_due) == (3, 0, None)
    assert columns(reader) == {field: [] for field in HISTORY_FIELDS}
    for index in range(7):
        writer.add_point(point(index), next_due=100.0 + index)
    assert columns(reader) == columns(writer)
    assert columns(reader)["timestamp"] == [4.0, 5.0, 6.0], "the newest capacity points, oldest first"
    assert (len(reader), reader.written, reader.next_due) == (3, 7, 106.0)
    with pytest.raises(ValueError):
        SharedHistory(tmp_path, seconds=5.0, interval_seconds=1.0)  # another shape: not this ring


def test_a_point_being_written_or_left_half_written_is_never_shown(tmp_path) -> None:
    writer = SharedHistory(tmp_path, seconds=3.0, interval_seconds=1.0)
    for index in range(5):
        writer.add_point(point(index))
    # a writer starts point 5 over the slot of point 2 and is killed half way through
    at = HEADER_BYTES + (5 % 3) * SLOT_BYTES
    struct.pack_into("=Q", writer._map, at, 2 * 5 + 1)
    struct.pack_into("=3d", writer._map, at + 8, 5.0, 5.0, 5.0)
    reader = SharedHistory(tmp_path, seconds=3.0, interval_seconds=1.0)
    assert columns(reader)["timestamp"] == [3.0, 4.0]
    assert all(len(values) == 2 for values in columns(reader).values())
    reader.add_point(point(5))  # the next lease holder writes it again, whole
    assert columns(writer)["timestamp"] == [3.0, 4.0, 5.0]
    assert writer.points()[-1] == point(5)


def _write_points(directory: str, count: int) -> None:
    ring = SharedHistory(directory, seconds=8.0, interval_seconds=1.0)
    for index in range(count):
        ring.add_point(point(index))


def test_points_read_while_another_process_writes_are_whole_and_in_order(tmp_path) -> None:
    SharedHistory(tmp_path, seconds=8.0, interval_seconds=1.0)
    writer = multiprocessing.get_context("fork").Process(target=_write_points, args=(str(tmp_path), 200_000))
    reader = SharedHistory(tmp_path, seconds=8.0, interval_seconds=1.0)
    writer.start()
    reads = 0
    try:
        while writer.is_alive() or reads == 0:
            points = reader.points()
            reads += 1
            assert all(len(set(each)) == 1 for each in points), "no point mixes two writes"
            firsts = [each[0] for each in points]
            assert firsts == sorted(firsts) and len(set(firsts)) == len(firsts)
    finally:
        writer.join()
    assert writer.exitcode == 0
    assert columns(reader)["timestamp"] == [float(index) for index in range(200_000 - 8, 200_000)]
    assert reads > 10


def test_one_lease_holder_at_a_time_and_the_next_takes_over(tmp_path) -> None:
    first, second = SamplingLease(tmp_path), SamplingLease(tmp_path)
    assert first.held() and first.held(), "taken, then kept"
    assert not second.held()
    first.release()
    assert second.held() and not first.held()


def test_the_sampler_outlives_running_out_of_file_descriptors(tmp_path, caplog) -> None:
    """EMFILE while taking the lease: the sampler logs it once, keeps going, and samples once
    a descriptor is free again."""
    registry = MetricsRegistry(window_seconds=10.0)
    history = SharedHistory(tmp_path, seconds=10.0, interval_seconds=0.05)
    lease = SamplingLease(tmp_path)
    attempts = []
    take = lease.held
    lease.held = lambda: (attempts.append(1), take())[1]
    sampler = HistorySampler(registry, history, lease)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def lease_failures() -> list[logging.LogRecord]:
        return [record for record in caplog.records if "lease" in record.getMessage()]

    async def scenario() -> None:
        lowest_free = os.open(os.devnull, os.O_RDONLY)
        os.close(lowest_free)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # no open() can succeed
        try:
            sampler.start()
            deadline = time.monotonic() + 5.0
            while len(attempts) < 3:
                assert time.monotonic() < deadline, "the sampler tried again, interval after interval"
                await asyncio.sleep(0.01)
            assert history.written == 0 and len(lease_failures()) == 1
            assert not sampler._task.done(), "the sampler is still running"
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        deadline = time.monotonic() + 5.0
        while history.written < 3:
            assert time.monotonic() < deadline, "sampling resumed"
            await asyncio.sleep(0.01)
        await sampler.stop()

    with caplog.at_level(logging.ERROR, logger="fakeai"):
        asyncio.run(scenario())
    failures = lease_failures()
    assert len(failures) == 1 and isinstance(failures[0].exc_info[1], OSError)
    assert failures[0].exc_info[1].errno == errno.EMFILE


def test_a_failed_point_does_not_end_the_history() -> None:
    registry = MetricsRegistry(window_seconds=10.0)
    history = MetricsHistory(seconds=10.0, interval_seconds=0.05)
    sampler = HistorySampler(registry, history)
    real_snapshot = registry.snapshot_async
    calls = []

    async def failing_twice():
        calls.append(1)
        if len(calls) <= 2:
            raise RuntimeError("a failing tick")
        return await real_snapshot()

    registry.snapshot_async = failing_twice

    async def scenario() -> None:
        sampler.start()
        deadline = time.monotonic() + 5.0
        while len(history) < 2:
            assert time.monotonic() < deadline, "points after the failures"
            await asyncio.sleep(0.01)
        await sampler.stop()

    asyncio.run(scenario())
    assert len(calls) >= 4


def lease_holder(directory: Path) -> int | None:
    """The pid holding the history sampling lease (its flock, as /proc/locks lists it)."""
    inode = (directory / LEASE_FILE).stat().st_ino
    with open("/proc/locks") as locks:
        for line in locks:
            fields = line.split()
            if fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[1] == str(inode):
                return int(fields[4])
    return None


def fetch_history(base_url: str) -> dict:
    with httpx.Client(timeout=10, headers={"Connection": "close"}) as client:  # fresh: any worker answers
        return client.get(base_url + "/metrics/history").json()


def one_ring(documents: list[dict]) -> bool:
    """Whether answers fetched one after the other are views of one ring: each later answer has
    every point of the earlier one (the same figures at the same timestamp) still in its span."""
    def points(document: dict) -> dict[float, tuple]:
        series = document["series"]
        return {timestamp: tuple(series[field][index] for field in HISTORY_FIELDS)
                for index, timestamp in enumerate(series["timestamp"])}

    for earlier, later in zip(documents, documents[1:]):
        older, newer = points(earlier), points(later)
        if any(newer.get(timestamp) != figures for timestamp, figures in older.items() if timestamp >= min(newer)):
            return False
    return True


def history_answers_by_worker(directory: Path) -> dict[int, int]:
    """``/metrics/history`` requests each worker process answered (recorded in its region)."""
    answered = {}
    for path in directory.glob("*.region"):
        with open(path, "r+b") as file:
            region = Region(mmap.mmap(file.fileno(), 0))
        cells = region.cells()
        answered[region.pid] = sum(int(cells[first]) for name, first, _ in region.keys()
                                   if name == "c|requests|/metrics/history")
    return answered


def test_a_server_of_two_workers_samples_one_history_and_another_worker_takes_over() -> None:
    interval = 0.2
    with running_cli("--workers", "2", "--zero-latency", "--history-interval-seconds", str(interval),
                     "--history-seconds", "60", "--record-monitoring", "true") as server:
        directory = server.shared_directory()
        eventually(lambda: fetch_history(server)["points"] >= 12, "a dozen points", seconds=20)
        timestamps = fetch_history(server)["series"]["timestamp"]
        gaps = [later - earlier for earlier, later in zip(timestamps, timestamps[1:])]
        # one sampler: points an interval apart (two would make twice as many, half as far apart)
        assert len(gaps) <= (timestamps[-1] - timestamps[0]) / interval + 1
        assert interval * 0.75 <= statistics.median(gaps) <= interval * 1.25
        documents = []
        for _ in server.each_worker(2):
            documents.extend(fetch_history(server) for _ in range(6))
        assert one_ring(documents), "every worker answers from the same ring"
        sampler = lease_holder(directory)
        workers = server.worker_pids()
        assert sampler in workers and len(workers) == 2
        eventually(lambda: all(history_answers_by_worker(directory).get(pid, 0) >= 6 for pid in workers),
                   "both workers answered /metrics/history")
        written = SharedHistory(directory, 60.0, interval).written
        os.kill(sampler, signal.SIGKILL)
        eventually(lambda: lease_holder(directory) not in (None, sampler), "another worker took the lease",
                   seconds=20)
        assert lease_holder(directory) in server.worker_pids()
        eventually(lambda: SharedHistory(directory, 60.0, interval).written >= written + 5, "points keep coming",
                   seconds=20)
        eventually(lambda: len(server.worker_pids()) == 2, "the supervisor restarted the worker", seconds=30)
        documents = [fetch_history(server) for _ in range(12)]
        assert one_ring(documents)
        newest = documents[-1]["series"]["timestamp"]
        assert newest == sorted(newest) and len(set(newest)) == len(newest)
