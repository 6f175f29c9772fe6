"""Cost of recording and of reading the metrics.

* ``record``: one finished request into the registry (the whole per-request recording cost,
  windows, counters and histograms), through ``registry.record``; ``record_generation_request``:
  the server's own path (``admit``, ``route_request``, ``finish``). Target: <= 1 us
  (``benchmarks/record_cost.py`` times it against the explicit path, and counts instructions).
* ``snapshot`` and each exporter at a realistic size: 4 endpoints and 100k requests in the
  window (that is, 100k samples in each of the latency and token windows).
* end to end, non-streaming chat RPS with recording on against the same server with
  ``--record-metrics false`` in the same run. Target: <= 3 % fewer requests per second.
  Two server processes differ by a few percent even when identical, so the same harness
  also measures an A/A pair (two identical servers): its ratio is the noise floor.
* in one process, no network: the same chat request through an app with recording on and
  one with it off, alternately (no process-level bias): the cost per request in us and as a
  share of the whole request.
"""

from __future__ import annotations

import statistics

import pytest

from benchmarks import harness
from benchmarks.record_cost import recording_loop
from benchmarks.test_bench_serving import CHAT_BODY
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


@pytest.mark.parametrize("tokens", [1, 16, 128])
def test_record_generation_request(benchmark, report, tokens: int) -> None:
    """Everything recorded for one plain chat request, as the request path records it
    (``benchmarks.record_cost``'s ``facts`` way): ``writer.admit``, ``writer.route_request``
    and ``writer.finish`` with every series, vLLM's per-request histograms and one inter-token
    observation per planned gap of the answer (``tokens`` - 1 of them)."""
    run = recording_loop("facts", tokens)
    benchmark(run, RECORDS_PER_ROUND)
    report(f"record a plain chat request of {tokens} tokens (everything the request path records)", benchmark,
           RECORDS_PER_ROUND)


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


def _paired_ratio(commands: dict[str, list[str]], pairs: int = 10) -> tuple[float, dict[str, list[float]]]:
    """Median of per-pair RPS ratios first/second, the order inside each pair alternating."""
    names = list(commands)
    rps: dict[str, list[float]] = {name: [] for name in names}
    cpu_us: dict[str, list[float]] = {name: [] for name in names}
    with harness.server(commands[names[0]]) as first, harness.server(commands[names[1]]) as second:
        servers = dict(zip(names, (first, second)))
        for url in servers.values():
            harness.wrk(url, CHAT_BODY, seconds=2)
        for pair in range(pairs):
            for name in (names if pair % 2 == 0 else names[::-1]):
                url = servers[name]
                cpu_before = url.cpu_seconds()
                result = harness.wrk(url, CHAT_BODY, seconds=4)
                rps[name].append(result["rps"])
                cpu_us[name].append((url.cpu_seconds() - cpu_before) / (result["rps"] * 4) * 1e6)
    ratio = statistics.median(a / b for a, b in zip(rps[names[0]], rps[names[1]]))
    return ratio, {f"cpu_us_per_request_{name}": statistics.median(values) for name, values in cpu_us.items()}


def test_recording_cost_end_to_end() -> None:
    from benchmarks.test_bench_serving import RESULTS

    on, on_cpu = _paired_ratio({"on": harness.fakeai_command("--zero-latency"),
                                "off": harness.fakeai_command("--zero-latency", "--record-metrics", "false")})
    same = harness.fakeai_command("--zero-latency", "--record-metrics", "false")
    floor, _ = _paired_ratio({"a": same, "b": same})
    RESULTS["recording_cost_end_to_end"] = {"rps_on_over_off": on, "rps_a_over_a_noise_floor": floor, **on_cpu}
    print("\n" + "\n".join(f"{k}: {v}" for k, v in RESULTS["recording_cost_end_to_end"].items()))


def test_recording_cost_in_one_process() -> None:
    """Recording on vs off in one process, alternating, over the ASGI interface (no network)."""
    import asyncio
    import time

    from benchmarks.test_bench_serving import RESULTS
    from fakeai.app import create_app
    from fakeai.config import Settings

    body = CHAT_BODY.encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
             "root_path": "", "headers": [(b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        pass

    async def per_request(app, count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            await app(dict(scope), receive, send)
        return (time.perf_counter() - started) / count * 1e6

    async def run() -> dict[str, float]:
        apps = {"on": create_app(Settings(zero_latency=True)),
                "off": create_app(Settings(zero_latency=True, record_metrics=False))}
        times: dict[str, list[float]] = {"on": [], "off": []}
        for app in apps.values():
            await per_request(app, 2000)
        for pair in range(10):
            for name in (("on", "off") if pair % 2 == 0 else ("off", "on")):
                times[name].append(await per_request(apps[name], 5000))
        return {name: statistics.median(values) for name, values in times.items()}

    medians = asyncio.run(run())
    RESULTS["recording_cost_in_one_process"] = {
        "us_per_request_on": medians["on"],
        "us_per_request_off": medians["off"],
        "recording_us": medians["on"] - medians["off"],
    }
    print("\n" + "\n".join(f"{k}: {v}" for k, v in RESULTS["recording_cost_in_one_process"].items()))
