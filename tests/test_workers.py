"""Several worker processes, one set of numbers: exact counts and percentiles whichever worker
answers, across a worker killed and restarted, and nothing left behind."""

from __future__ import annotations

import csv
import io
import mmap
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakeai.metrics.regions import ProcessWatch, pid_alive
from fakeai.region import Region
from tests.servers import CLIServer, eventually, running_cli

MODEL = "openai/gpt-oss-120b"
CHAT, COMPLETIONS, EMBEDDINGS = "/v1/chat/completions", "/v1/completions", "/v1/embeddings"
QUANTILES = (0.5, 0.9, 0.99)


def journal_durations(directory: Path) -> dict[int, list[float]]:
    """Server-side durations of every request, read straight from each process's journal."""
    found = {}
    for path in directory.glob("*.region"):
        with open(path, "r+b") as file:
            region = Region(mmap.mmap(file.fileno(), 0))
        records, _, lost = region.records(0)
        assert lost == 0
        found[region.pid] = [record[1] for record in records]
    return found


class Workload:
    """Exactly known traffic on fresh connections (so the kernel spreads them over workers)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.sent: dict[str, int] = {CHAT: 0, COMPLETIONS: 0, EMBEDDINGS: 0}
        self.statuses: dict[str, dict[int, int]] = {CHAT: {}, COMPLETIONS: {}, EMBEDDINGS: {}}
        self.prompt_tokens: dict[str, int] = {CHAT: 0, COMPLETIONS: 0, EMBEDDINGS: 0}
        self.completion_tokens: dict[str, int] = {CHAT: 0, COMPLETIONS: 0, EMBEDDINGS: 0}
        self.streams = 0

    def post(self, path: str, body: dict) -> None:
        with httpx.Client(timeout=30, headers={"Connection": "close"}) as client:
            response = client.post(self.base_url + path, json=body)
            text = response.text
        self.sent[path] += 1
        self.statuses[path][response.status_code] = self.statuses[path].get(response.status_code, 0) + 1
        if response.status_code != 200:
            return
        if body.get("stream"):
            self.streams += 1
            usage = [line for line in text.splitlines() if '"usage"' in line][-1]
            usage = httpx.Response(200, content=usage.removeprefix("data: ")).json()["usage"]
        else:
            usage = response.json()["usage"]
        self.prompt_tokens[path] += usage["prompt_tokens"]
        self.completion_tokens[path] += usage.get("completion_tokens", 0)

    def wait_until_recorded(self, totals: dict[str, int] | None = None) -> None:
        """Until the server has counted every request sent (``totals``: those sent before).

        The server records a request after its last byte went out, so a client can see its
        answer end (the connection closed) just before the server has counted it.
        """
        expected = {path: sent + (totals or {}).get(path, 0) for path, sent in self.sent.items()}

        def recorded() -> bool:
            counts = scrape(self.base_url, "/metrics").json()["totals"]
            return all(counts.get(path, {}).get("requests", 0) == sent for path, sent in expected.items())

        eventually(recorded, "every request sent was recorded")

    def run(self, rounds: int) -> None:
        chat = {"model": MODEL, "messages": [{"role": "user", "content": "Tell me something."}]}
        for index in range(rounds):
            self.post(CHAT, {**chat, "max_tokens": 5 + index % 7})
            self.post(CHAT, {**chat, "max_tokens": 4, "stream": True, "stream_options": {"include_usage": True}})
            self.post(COMPLETIONS, {"model": MODEL, "prompt": "Once upon a time " * (1 + index % 3), "max_tokens": 3})
            if index % 4 == 0:
                self.post(EMBEDDINGS, {"model": "text-embedding-3-small", "input": "hello world"})


def scrape(base_url: str, path: str, **headers: str) -> httpx.Response:
    with httpx.Client(timeout=10, headers={"Connection": "close", **headers}) as client:
        response = client.get(base_url + path)
    response.raise_for_status()
    return response


def check_every_format(base_url: CLIServer, workers: int, workload: Workload, durations: list[float]) -> None:
    for _ in base_url.each_worker(workers):  # every worker answers with the same numbers
        doc = scrape(base_url, "/metrics").json()
        for path, sent in workload.sent.items():
            assert doc["totals"][path]["requests"] == sent
            assert doc["responses"][path]["count"] == sent
            assert doc["totals"][path]["prompt_tokens"] == workload.prompt_tokens[path]
            assert doc["totals"][path]["completion_tokens"] == workload.completion_tokens[path]
            errors = {str(status): count for status, count in workload.statuses[path].items() if status >= 400}
            assert doc["errors_by_status"][path] == errors
        assert doc["streaming_stats"]["completed_streams"] == workload.streams
        assert doc["summary"]["requests_in_flight"] == 0
        assert sum(doc["totals"][path]["requests"] for path in workload.sent) == len(durations)
        assert max(doc["responses"][path]["max"] for path in workload.sent) == max(durations)
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(scrape(base_url, "/metrics/prometheus").text)
            for sample in family.samples
        }
        for path, sent in workload.sent.items():
            assert samples[("fakeai_requests_total", (("endpoint", path),))] == sent
            assert samples[("fakeai_tokens_total", (("endpoint", path), ("kind", "prompt")))] == workload.prompt_tokens[path]
            assert samples[("fakeai_tokens_total", (("endpoint", path), ("kind", "completion")))] == (
                workload.completion_tokens[path])
            assert samples[("fakeai_request_duration_seconds_count", (("endpoint", path),))] == sent
        rows = {(row["metric_type"], row["endpoint"]): row
                for row in csv.DictReader(io.StringIO(scrape(base_url, "/metrics/csv").text))}
        health = scrape(base_url, "/health/detailed").json()
        for path in workload.sent:
            for quantile in ("p50", "p90", "p99"):
                assert float(rows[("responses", path)][f"{quantile}_latency"]) == doc["responses"][path][quantile]
            assert health["endpoints"][path]["latency_p50_ms"] == doc["responses"][path]["p50"] * 1000.0
        assert health["processes"] == doc["processes"]


@pytest.mark.parametrize("workers", [1, 2])
def test_counts_and_percentiles_are_exact_whichever_worker_answers(workers: int) -> None:
    with running_cli("--workers", str(workers), "--zero-latency", "--fail-first", "3", "--window-seconds", "600",
                     "--history-interval-seconds", "0.5") as server:
        directory = server.shared_directory()
        workload = Workload(server)
        workload.run(20)
        for _ in server.each_worker(workers):  # which worker accepts a connection is otherwise the kernel's choice
            workload.run(2)
        workload.wait_until_recorded()
        # a worker writes a request's journal entry (read below, and feeding the windows)
        # just after the counters the wait above saw
        eventually(lambda: sum(map(len, journal_durations(directory).values())) == sum(workload.sent.values()),
                   "every request is in a journal")
        injected = [status for path in workload.sent for status in workload.statuses[path] if status >= 400]
        assert sum(workload.statuses[path][status] for path in workload.sent for status in injected
                   if status in workload.statuses[path]) == 3, "--fail-first counts the server's requests"
        by_worker = journal_durations(directory)
        assert len(by_worker) == workers
        assert all(len(durations) > 0 for durations in by_worker.values()), "every worker served requests"
        durations = [duration for worker in by_worker.values() for duration in worker]
        assert len(durations) == sum(workload.sent.values())
        check_every_format(server, workers, workload, durations)
        # the window's percentiles per endpoint are numpy's over every worker's durations of it
        doc = scrape(server, "/metrics").json()
        assert doc["processes"] == workers
        chat_durations = []
        for path in directory.glob("*.region"):
            with open(path, "r+b") as file:
                region = Region(mmap.mmap(file.fileno(), 0))
            ids = {first for name, first, _ in region.keys() if name == f"c|requests|{CHAT}"}
            chat_durations += [record[1] for record in region.records(0)[0] if record[6] in ids]
        expected = np.quantile(np.array(chat_durations), QUANTILES)
        shown = [doc["responses"][CHAT][q] for q in ("p50", "p90", "p99")]
        assert shown == pytest.approx(list(expected), rel=1e-12, abs=1e-15)
    assert not directory.exists(), "the shared-memory files went with the server"


def test_a_killed_worker_loses_nothing_and_counts_nothing_twice() -> None:
    with running_cli("--workers", "2", "--zero-latency", "--window-seconds", "1") as server:
        directory = server.shared_directory()
        server.wait_for_workers(2)  # the server answers once its first worker does
        first = Workload(server)
        first.run(12)
        first.wait_until_recorded()
        before = scrape(server, "/metrics").json()["totals"]
        victims = [pid for pid in journal_durations(directory) if pid in server.worker_pids()]
        assert len(victims) == 2
        os.kill(victims[0], signal.SIGKILL)

        def replaced() -> bool:
            workers = server.worker_pids()  # once: the victim may be gone by a second look
            return len(workers) == 2 and victims[0] not in workers

        eventually(replaced, "the supervisor restarted the worker", seconds=30)
        (new_worker,) = set(server.worker_pids()) - set(victims)
        # The survivor answers at once; the new worker counts once its app is built (seconds on
        # a busy machine). Until the supervisor has reaped it, the killed one counts as alive:
        # wait for the new one's region, then for a count of two with it.
        eventually(lambda: any(directory.glob(f"{new_worker}-*.region"))
                   and scrape(server, "/metrics").json()["processes"] == 2, "the new worker is serving", seconds=30)
        after_kill = scrape(server, "/metrics").json()
        assert after_kill["totals"] == before, "nothing recorded was lost"
        second = Workload(server)
        second.run(12)
        second.wait_until_recorded({path: figures["requests"] for path, figures in before.items()})
        totals = scrape(server, "/metrics").json()["totals"]
        for path in first.sent:
            assert totals[path]["requests"] == first.sent[path] + second.sent[path]
            assert totals[path]["prompt_tokens"] == first.prompt_tokens[path] + second.prompt_tokens[path]
        # the dead worker's region is compacted once its window has passed, and still counts
        dead = next(path for path in directory.glob(f"{victims[0]}-*.region"))
        eventually(lambda: (scrape(server, "/metrics"), dead.stat().st_size)[1] < 4 * 1024 * 1024,
                   "the dead worker's region was compacted", seconds=15)
        final = scrape(server, "/metrics").json()
        assert final["totals"] == totals and final["processes"] == 2 and final["summary"]["requests_in_flight"] == 0
    assert not directory.exists()


def test_a_killed_process_counts_as_dead_before_its_parent_reaps_it() -> None:
    """A killed worker is a zombie until its supervisor reaps it, and ``kill(pid, 0)`` still
    finds a zombie: the requests it had in flight would count until then."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    watch = ProcessWatch(child.pid)  # what a scrape asks (a pidfd), beside the plain check
    try:
        assert pid_alive(child.pid) and watch.alive()
        child.kill()  # and not reaped: no wait() or poll() until the end

        def state() -> bytes:
            with open(f"/proc/{child.pid}/stat", "rb") as stat:
                return stat.read().rpartition(b")")[2].split()[0]

        eventually(lambda: state() == b"Z", "the child is a zombie")
        assert not pid_alive(child.pid) and not watch.alive()
    finally:
        child.kill()
        child.wait()
    assert not pid_alive(child.pid) and not watch.alive() and not ProcessWatch(child.pid).alive()
