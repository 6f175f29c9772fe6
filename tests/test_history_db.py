"""The metrics history in SQLite: merged points, retention, queries, restarts, a stalled disk."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time

import httpx
import pytest

import fakeai.api.history_endpoint as history_endpoint
from fakeai.config import Settings
from fakeai.metrics.history import HISTORY_FIELDS, WEIGHT_FIELDS
from fakeai.metrics.history_db import COLUMNS, HistoryDatabase, HistoryDatabaseError
from tests.servers import eventually, running_app, running_cli
from tests.test_history import lease_holder

NAN = math.nan
CHAT = "/v1/chat/completions"
MODEL = "openai/gpt-oss-120b"


def record(**figures: float) -> tuple[float, ...]:
    """A point as the sampler hands it to the database: HISTORY_FIELDS then WEIGHT_FIELDS."""
    return tuple(figures[field] for field in (*HISTORY_FIELDS, *WEIGHT_FIELDS))


# Three points of one 60 s step [1200, 1260), and one of the next; every field chosen by hand.
P1 = record(timestamp=1201.0, requests_per_second=2.0, errors_per_second=0.0, error_rate_percentage=0.0,
            average_latency_seconds=0.1, latency_p50_seconds=0.1, latency_p99_seconds=0.2, ttft_p99_seconds=NAN,
            completion_tokens_per_second=10.0, active_streams=1, requests_in_flight=3, kv_cache_hit_rate=0.5,
            requests_running=2, requests_waiting=0, kv_prompt_tokens_per_second=100.0)
P2 = record(timestamp=1202.0, requests_per_second=4.0, errors_per_second=1.0, error_rate_percentage=25.0,
            average_latency_seconds=0.4, latency_p50_seconds=0.3, latency_p99_seconds=0.9, ttft_p99_seconds=0.05,
            completion_tokens_per_second=30.0, active_streams=0, requests_in_flight=5, kv_cache_hit_rate=NAN,
            requests_running=4, requests_waiting=3, kv_prompt_tokens_per_second=0.0)
P3 = record(timestamp=1203.0, requests_per_second=0.0, errors_per_second=0.0, error_rate_percentage=0.0,
            average_latency_seconds=0.0, latency_p50_seconds=NAN, latency_p99_seconds=NAN, ttft_p99_seconds=NAN,
            completion_tokens_per_second=0.0, active_streams=2, requests_in_flight=1, kv_cache_hit_rate=0.25,
            requests_running=1, requests_waiting=1, kv_prompt_tokens_per_second=300.0)
P4 = record(timestamp=1290.0, requests_per_second=6.0, errors_per_second=3.0, error_rate_percentage=50.0,
            average_latency_seconds=0.2, latency_p50_seconds=0.2, latency_p99_seconds=0.5, ttft_p99_seconds=0.07,
            completion_tokens_per_second=60.0, active_streams=4, requests_in_flight=2, kv_cache_hit_rate=1.0,
            requests_running=0, requests_waiting=0, kv_prompt_tokens_per_second=50.0)


def database(**overrides: float) -> HistoryDatabase:
    return HistoryDatabase(None, **{"seconds": 30.0, "downsample_seconds": 60.0, "retention_seconds": 1000.0,
                                    **overrides})


def as_dict(row: tuple, columns: tuple[str, ...] = COLUMNS) -> dict[str, float | None]:
    return dict(zip(columns, row))


def test_merged_points_are_what_their_definitions_say() -> None:
    db = database()
    db.insert([P1, P2, P3, P4], interval_seconds=1.0)
    # at 1300 the full-resolution span is [1270, 1300]: the step [1200, 1260) is merged, 1290 is not
    assert db.compact(now=1300.0) == 1
    merged, newest = (as_dict(row) for row in db.stored())
    assert newest == as_dict((1290.0, 1.0, 1.0, *P4[len(HISTORY_FIELDS):], *P4[1:len(HISTORY_FIELDS)]))
    assert merged == pytest.approx({
        "timestamp": 1203.0,  # the newest merged point's
        "step_seconds": 60.0,
        "covered_seconds": 3.0,
        "kv_prompt_tokens_per_second": 400 / 3,
        "requests_per_second": (2 + 4 + 0) / 3,  # time-weighted means of the rates
        "errors_per_second": 1 / 3,
        "error_rate_percentage": 100 * 1 / 6,  # 1 error of 6 requests, not the mean of 0, 25, 0
        "average_latency_seconds": (0.1 * 2 + 0.4 * 4) / 6,  # weighted by requests
        "latency_p50_seconds": 0.3,  # percentiles: the largest, nulls left out
        "latency_p99_seconds": 0.9,
        "ttft_p99_seconds": 0.05,
        "completion_tokens_per_second": 40 / 3,
        "active_streams": 2,  # gauges: the peak
        "requests_in_flight": 5,
        "kv_cache_hit_rate": (0.5 * 100 + 0.25 * 300) / 400,  # cached / looked-up tokens
        "requests_running": 4,
        "requests_waiting": 3,
    })
    # merging the merged point again gives what merging the four points in one go gives
    once = database()
    once.insert([P1, P2, P3, P4], interval_seconds=1.0)
    (in_one_go,) = once.query(since=0.0, step=120.0).points
    (again,) = db.query(since=0.0, step=120.0).points
    assert again == pytest.approx(in_one_go)
    assert as_dict(in_one_go, HISTORY_FIELDS)["error_rate_percentage"] == pytest.approx(100 * 4 / 12)
    # a step with nothing but null percentiles stays null; a lone point keeps its own figures
    (lone,) = db.query(since=1203.0, step=60.0).points[:1]
    assert as_dict(lone, HISTORY_FIELDS)["requests_per_second"] == pytest.approx(2.0)
    only_p3 = database()
    only_p3.insert([P3], interval_seconds=1.0)
    assert only_p3.query(since=0.0, step=60.0).points == [(1203.0, 0.0, 0.0, 0.0, 0.0, None, None, None, 0.0, 2.0,
                                                           1.0, 0.25, 1.0, 1.0)]


def test_retention_deletes_old_points_and_merging_keeps_recent_ones_whole() -> None:
    db = database(seconds=10.0, downsample_seconds=5.0, retention_seconds=40.0)
    points = [record(**{**as_dict(P1, (*HISTORY_FIELDS, *WEIGHT_FIELDS)), "timestamp": 1000.0 + index})
              for index in range(60)]
    db.insert(points, interval_seconds=1.0)
    assert db.expire(now=1060.0) == 20, "the points before 1020 are deleted"
    assert min(row[0] for row in db.stored()) == 1020.0
    db.compact(now=1060.0)
    stored = db.stored()
    # steps [1020, 1050) are merged (5 points each, at the newest one's time); from 1050 on, whole
    assert [(row[0], row[1], row[2]) for row in stored if row[0] < 1050] == [
        (1000.0 + end, 5.0, 5.0) for end in range(24, 50, 5)]
    assert [row[0] for row in stored if row[0] >= 1050] == [1000.0 + index for index in range(50, 60)]
    assert db.expire(now=1060.0) == 0 and db.compact(now=1060.0) == 0, "nothing left to do"


def test_a_query_answers_at_most_max_points_and_names_the_step_it_took() -> None:
    db = database()
    db.insert([record(**{**as_dict(P1, (*HISTORY_FIELDS, *WEIGHT_FIELDS)), "timestamp": 1000.0 + index})
               for index in range(100)], interval_seconds=1.0)
    full = db.query(since=1010.0)
    assert (len(full.points), full.step) == (90, None)
    capped = db.query(since=0.0, max_points=10)
    assert capped.step == pytest.approx(99 / 8) and len(capped.points) <= 10
    coarse = db.query(since=0.0, step=25.0, max_points=10)
    assert coarse.step == 25.0 and [point[0] for point in coarse.points] == [1024.0, 1049.0, 1074.0, 1099.0]
    assert db.query(since=2000.0).points == []


def test_a_file_that_is_not_a_history_database_is_refused(tmp_path) -> None:
    (tmp_path / "text.db").write_text("not a database at all, just words " * 100)
    with pytest.raises(HistoryDatabaseError, match="not an SQLite database"):
        HistoryDatabase(tmp_path / "text.db", seconds=1, downsample_seconds=1, retention_seconds=1)
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE notes (text)")
    other.commit()
    other.close()
    with pytest.raises(HistoryDatabaseError, match="not a fakeai history database"):
        HistoryDatabase(tmp_path / "other.db", seconds=1, downsample_seconds=1, retention_seconds=1)


def test_settings_keep_the_history_consistent() -> None:
    with pytest.raises(ValueError, match="history_retention_seconds"):
        Settings(history_seconds=600, history_retention_seconds=60)
    with pytest.raises(ValueError, match="history_downsample_seconds"):
        Settings(history_interval_seconds=5, history_downsample_seconds=1)


# -- served ----------------------------------------------------------------------------------------


FAST = dict(history_seconds=0.5, history_interval_seconds=0.05, zero_latency=True)


def history(client: httpx.Client, base_url: str, query: str = "") -> dict:
    response = client.get(base_url + "/metrics/history" + query)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_server_restarted_on_the_same_file_serves_the_points_before(tmp_path) -> None:
    path = tmp_path / "state" / "history.sqlite"  # its directory is made too
    settings = Settings(history_db=str(path), **{**FAST, "history_seconds": 30})
    with running_app(settings) as (base_url, _), httpx.Client(timeout=10) as client:
        client.post(base_url + CHAT, json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
        eventually(lambda: history(client, base_url, "?since=1h")["points"] >= 12, "points in the database")
    with sqlite3.connect(tmp_path / "state" / "history.sqlite") as stopped:
        before = [row[0] for row in stopped.execute("SELECT timestamp FROM points ORDER BY timestamp")]
    assert len(before) >= 12 and max(before) < time.time()
    with running_app(settings) as (base_url, _), httpx.Client(timeout=10) as client:
        # the live ring (what the dashboard shows) starts with the first server's points
        assert history(client, base_url)["series"]["timestamp"][: len(before)] == before
        everything = history(client, base_url, "?since=0")["series"]["timestamp"]
        assert everything[: len(before)] == before
        assert history(client, base_url, "?since=0")["series"]["requests_per_second"][len(before) - 1] > 0
        eventually(lambda: history(client, base_url, "?since=0")["points"] > len(before),
                   "new points after them")


def test_since_and_step_ask_the_database_and_bad_values_are_400s(tmp_path) -> None:
    settings = Settings(history_downsample_seconds=60, record_monitoring=True,
                        **{**FAST, "history_seconds": 60})
    with running_app(settings) as (base_url, _), httpx.Client(timeout=10) as client:
        for _ in range(3):
            client.post(base_url + CHAT, json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
        eventually(lambda: history(client, base_url, "?since=1h")["points"] >= 30, "30 points")
        raw = history(client, base_url, "?since=0")
        assert raw["step"] is None and raw["capacity"] == 5000 and raw["interval_seconds"] == 0.05
        stamps = raw["series"]["timestamp"]
        middle = stamps[len(stamps) // 2]
        later = history(client, base_url, f"?since={middle!r}")
        assert later["since"] == middle and later["series"]["timestamp"][0] == middle
        assert history(client, base_url, "?since=1h")["series"]["timestamp"][: len(stamps)] == stamps
        # step 0.5: each answer point merges the stored points of its half second
        merged = history(client, base_url, "?since=0&step=0.5")
        assert merged["step"] == 0.5
        buckets: dict[int, list[int]] = {}
        for index, stamp in enumerate(stamps):
            buckets.setdefault(int(stamp / 0.5), []).append(index)
        series = raw["series"]
        for index, members in enumerate(list(buckets.values())[:-1]):  # the last may have grown since
            assert merged["series"]["timestamp"][index] == stamps[members[-1]]
            rates = [series["requests_per_second"][member] for member in members]
            assert merged["series"]["requests_per_second"][index] == pytest.approx(sum(rates) / len(rates))
            waiting = [series["requests_in_flight"][member] for member in members]
            assert merged["series"]["requests_in_flight"][index] == max(waiting)
        assert history(client, base_url, "?step=1m")["step"] == 60.0, "a duration is a step too"
        assert client.head(base_url + "/metrics/history?since=1h").status_code == 200
        bad = ["since=", "since=yesterday", "since=-5", "since=1e9", "since=nan", "since=1w", "step=0",
               "step=0.01", "step=-1", "step=inf", "step=40000000", "step=", "limit=5", "since=1h&since=2h",
               "since=%ff%fe", "step=1h1m"]
        for query in bad:
            response = client.get(base_url + "/metrics/history?" + query)
            assert response.status_code == 400, (query, response.text)
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
            assert error["param"] in ("since", "step", "limit")
            assert error["code"] == ("unknown_parameter" if query.startswith("limit") else "invalid_value")
        counted = client.get(base_url + "/metrics").json()["errors_by_status"]["/metrics/history"]
        assert counted["400"] == len(bad), "with --record-monitoring every bad query is counted"


def test_a_locked_database_never_stalls_serving_and_the_points_it_misses_are_counted(
        tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(history_endpoint, "QUERY_SECONDS", 0.5)
    path = tmp_path / "history.sqlite"
    settings = Settings(history_db=str(path), **{**FAST, "history_seconds": 0.25})  # the queue holds 5 points
    with running_app(settings) as (base_url, _), httpx.Client(timeout=10) as client:
        eventually(lambda: history(client, base_url, "?since=1h")["points"] >= 3, "points written")
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # the writer now waits 5 s per try for SQLite's lock
        try:
            def dropped() -> float:
                return client.get(base_url + "/metrics").json()["history"]["points_dropped"]

            eventually(lambda: dropped() >= 5, "the full queue drops points and counts them")
            # meanwhile the event loop serves at once: nothing waits for the disk (each timeout < 5 s)
            for _ in range(10):
                assert httpx.get(base_url + "/health", timeout=1.0).status_code == 200
                answer = httpx.post(base_url + CHAT, timeout=1.0,
                                    json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
                assert answer.status_code == 200
            assert len(history(client, base_url)["series"]["timestamp"]) == 5, "the live ring goes on"
            stuck = client.get(base_url + "/metrics/history?since=1h")
            assert stuck.status_code == 503 and stuck.json()["error"]["code"] == "history_busy"
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        unlocked = time.time()
        eventually(lambda: history(client, base_url, "?since=1h")["series"]["timestamp"][-1] > unlocked,
                   "writing resumed", seconds=15)
        stored = client.get(base_url + "/metrics").json()["history"]["points_stored"]
        eventually(lambda: client.get(base_url + "/metrics").json()["history"]["points_stored"] > stored,
                   "stored points are counted")


def test_two_workers_write_one_point_per_interval_and_a_crash_loses_at_most_the_newest(tmp_path) -> None:
    path = tmp_path / "history.sqlite"
    interval = 0.1
    with running_cli("--workers", "2", "--zero-latency", "--history-db", str(path),
                     "--history-interval-seconds", str(interval)) as server:
        def stored() -> list[float]:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as reader:
                return [row[0] for row in reader.execute("SELECT timestamp FROM points ORDER BY timestamp")]

        eventually(lambda: len(stored()) >= 20, "twenty points", seconds=20)
        stamps = stored()
        gaps = [later - earlier for earlier, later in zip(stamps, stamps[1:])]
        # one writer: a point an interval apart (two would write twice as many, half as far apart)
        assert len(gaps) <= (stamps[-1] - stamps[0]) / interval + 1
        assert interval * 0.75 <= statistics.median(gaps) <= interval * 1.25
        # every worker answers from the one database
        answers = []
        for _ in server.each_worker(2):
            with httpx.Client(timeout=10) as client:
                answers.extend(client.get(server + f"/metrics/history?since={stamps[0]!r}").json() for _ in range(4))
        assert all(answer["series"]["timestamp"][: len(stamps)] == stamps for answer in answers)
        # a second server on the same file is refused before it starts
        second = subprocess.run(
            [sys.executable, "-m", "fakeai", "serve", "--port", "0", "--history-db", str(path)],
            capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert "history database of another fakeai server" in second.stderr
        # the writing worker crashes: of the points it showed, at most the newest is not in the file
        directory = server.shared_directory()
        writer = lease_holder(directory)
        shown = httpx.get(server + "/metrics/history").json()["series"]["timestamp"]
        os.kill(writer, signal.SIGKILL)
        killed_at = time.time()
        assert set(shown[:-1]) <= set(stored())
        # the worker that takes the lease over writes on into the same file
        eventually(lambda: stored()[-1] > killed_at, "points after the crash", seconds=20)
