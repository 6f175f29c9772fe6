"""Cost of recording and of reading the metrics.

* ``record``: one finished request into the registry (the whole per-request recording cost,
  windows, counters and histograms). Target: <= 1 us.
* ``snapshot`` and each exporter at a realistic size: 4 endpoints and 100k requests in the
  window (that is, 100k samples in each of the latency and token windows).
* end to end, non-streaming chat RPS with recording on against the same server with
  ``--record-metrics false`` in the same run. Target: <= 3 % fewer requests per second.
"""

from __future__ import annotations

import statistics

import pytest

from benchmarks import harness
from fakeai.exporters import render_csv, render_detailed_health, render_json, render_prometheus
from fakeai.metrics import MetricsRegistry

ENDPOINTS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models"]
RECORDS_PER_ROUND = 10_000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _filled_registry(requests: int) -> MetricsRegistry:
    clock = Clock()
    registry = MetricsRegistry(window_seconds=5.0, clock=clock)
    for index in range(requests):
        clock.now = 100.0 + index * (4.0 / requests)
        stream = index % 3 == 0
        registry.request_started("m")
        if stream:
            registry.stream_started()
        registry.record(ENDPOINTS[index % 4], 0.05 + (index % 97) * 0.001, 500 if index % 50 == 0 else 200,
                        100, 20, ttft=0.02 if stream else None, stream_completed=True if stream else None,
                        model="m", finish_reason="stop")
    return registry


def test_record(benchmark, report) -> None:
    registry = MetricsRegistry(window_seconds=5.0)
    record, start = registry.record, registry.request_started

    def run() -> None:
        for _ in range(RECORDS_PER_ROUND):
            start("m")
            record("/v1/chat/completions", 0.05, 200, 100, 20, None, None, "m", "stop")

    benchmark(run)
    report("record a request (with request_started)", benchmark, RECORDS_PER_ROUND)


@pytest.mark.parametrize("render", [None, render_json, render_prometheus, render_csv, render_detailed_health],
                         ids=["snapshot", "json", "prometheus", "csv", "health"])
def test_read(benchmark, report, render) -> None:
    registry = _filled_registry(100_000)
    if render is None:
        benchmark(registry.snapshot)
        report("snapshot, 100k requests in window", benchmark)
    else:
        snapshot = registry.snapshot()
        benchmark(render, snapshot)
        report(f"render {render.__name__}", benchmark)


def test_recording_cost_end_to_end() -> None:
    """Pairs of runs, recording on and off, interleaved; the median of the pairs' ratios.

    Also the server's CPU time per request, which the machine's noise disturbs less than
    requests per second.
    """
    from benchmarks.test_bench_serving import CHAT_BODY, RESULTS

    commands = {"on": harness.fakeai_command("--zero-latency"),
                "off": harness.fakeai_command("--zero-latency", "--record-metrics", "false")}
    rps: dict[str, list[float]] = {"on": [], "off": []}
    cpu_us: dict[str, list[float]] = {"on": [], "off": []}
    with harness.server(commands["on"]) as on, harness.server(commands["off"]) as off:
        servers = {"on": on, "off": off}
        for url in (on, off):
            harness.wrk(url, CHAT_BODY, seconds=2)
        for pair in range(10):  # alternate which goes first, so neither gets the same slot
            for name in (("on", "off") if pair % 2 == 0 else ("off", "on")):
                url = servers[name]
                cpu_before = url.cpu_seconds()
                result = harness.wrk(url, CHAT_BODY, seconds=4)
                rps[name].append(result["rps"])
                cpu_us[name].append((url.cpu_seconds() - cpu_before) / (result["rps"] * 4) * 1e6)
    ratios = [a / b for a, b in zip(rps["on"], rps["off"])]
    RESULTS["recording_cost"] = {
        "rps_on_over_off_median_of_pairs": statistics.median(ratios),
        "rps_recording_on": statistics.median(rps["on"]),
        "rps_recording_off": statistics.median(rps["off"]),
        "server_cpu_us_per_request_on": statistics.median(cpu_us["on"]),
        "server_cpu_us_per_request_off": statistics.median(cpu_us["off"]),
    }
    print("\n" + "\n".join(f"{k}: {v}" for k, v in RESULTS["recording_cost"].items()))
