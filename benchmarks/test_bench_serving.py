"""End-to-end serving benchmarks (issue 3): throughput and timing fidelity over loopback.

Server on core 0, load generator on core 1, baselines measured in the same run:
* non-streaming chat RPS at zero latency: fakeai vs a minimal Litestar + msgspec route
  (target >= 0.9x) and a bare ASGI app (the ceiling);
* streamed tokens per second at zero latency, 100-token answers, 64 concurrent streams
  (target >= 100k tokens/s on one core);
* timing fidelity at 100 and 1000 concurrent streams, TTFT 100 ms and ITL 20 ms
  (target: TTFT p99 error <= 2 ms, ITL p99 error <= 1 ms below saturation);
* p99 latency at a fixed rate of half the measured maximum.
Results print as a table and are written to ``benchmarks/results/serving.json``.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import time

import pytest

from benchmarks import harness

RESULTS: dict[str, object] = {}
CHAT_BODY = '{"model":"openai/gpt-oss-120b","messages":[{"role":"user","content":"Hello!"}],"max_tokens":16,"ignore_eos":true}'
STREAM_BODY = ('{"model":"openai/gpt-oss-120b","messages":[{"role":"user","content":"Hello!"}],'
               '"max_tokens":100,"ignore_eos":true,"stream":true}')
SECONDS = 10


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@pytest.fixture(scope="module", autouse=True)
def write_results():
    yield
    out = pathlib.Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "serving.json").write_text(json.dumps(RESULTS, indent=2))
    print("\n" + json.dumps(RESULTS, indent=2))


def test_non_streaming_rps_against_baselines() -> None:
    runs = {}
    targets = {
        "fakeai": harness.fakeai_command("--zero-latency"),
        "minimal_litestar": harness.uvicorn_command("benchmarks.apps:minimal_litestar", factory=True),
        "bare_asgi": harness.uvicorn_command("benchmarks.apps:bare_asgi"),
    }
    for name, command in targets.items():
        ready = "/health" if name == "fakeai" else "/v1/chat/completions"
        with harness.server(command, ready_path=ready, ready_method="GET" if name == "fakeai" else "POST") as url:
            harness.wrk(url, CHAT_BODY, seconds=2)  # warm up
            runs[name] = [harness.wrk(url, CHAT_BODY, seconds=SECONDS) for _ in range(3)]
            assert all(run["non_2xx"] == 0 for run in runs[name]), runs[name][0]["output"]
    medians = {name: statistics.median(run["rps"] for run in results) for name, results in runs.items()}
    RESULTS["non_streaming_rps"] = medians
    RESULTS["fakeai_vs_minimal_litestar"] = medians["fakeai"] / medians["minimal_litestar"]
    RESULTS["fakeai_vs_bare_asgi"] = medians["fakeai"] / medians["bare_asgi"]


def test_streamed_tokens_per_second() -> None:
    with harness.server(harness.fakeai_command("--zero-latency")) as url:
        harness.wrk(url, STREAM_BODY, seconds=2, connections=64)
        runs = [harness.wrk(url, STREAM_BODY, seconds=SECONDS, connections=64) for _ in range(3)]
    assert all(run["non_2xx"] == 0 for run in runs)
    RESULTS["streamed_tokens_per_second"] = statistics.median(run["rps"] for run in runs) * 100


@pytest.mark.parametrize("concurrency", [100, 500, 1000])
def test_timing_fidelity(concurrency: int) -> None:
    """Streams of 50 tokens (about 1.1 s each), started 1 ms apart."""
    flags = ("--ttft-ms", "100", "--itl-ms", "20", "--ttft-jitter", "0", "--itl-jitter", "0",
             "--prefill-ms-per-token", "0")
    body = STREAM_BODY.replace('"max_tokens":100', '"max_tokens":50').encode()
    with harness.server(harness.fakeai_command(*flags)) as url:
        harness.stream_timings(url, body, 10)
        cpu_before, started = url.cpu_seconds(), time.perf_counter()
        results = harness.stream_timings(url, body, concurrency, stagger=0.001)
        busy = (url.cpu_seconds() - cpu_before) / (time.perf_counter() - started)
    assert len(results) == concurrency
    ttft_errors = [(ttft - 0.100) * 1000 for ttft, _ in results]
    itl_errors = [(gap - 0.020) * 1000 for _, gaps in results for gap in gaps]
    RESULTS[f"fidelity_{concurrency}_streams_ms"] = {
        "ttft_error_p50": _quantile(ttft_errors, 0.5),
        "ttft_error_p99": _quantile(ttft_errors, 0.99),
        "itl_abs_error_p50": _quantile([abs(e) for e in itl_errors], 0.5),
        "itl_abs_error_p99": _quantile([abs(e) for e in itl_errors], 0.99),
        "server_cpu_utilisation": busy,
        "peak_tokens_per_second": min(concurrency, 1080) * 50,
    }


def test_p99_at_half_the_maximum_rate() -> None:
    """Open-loop load at half of wrk's maximum; latency counted from each request's due time."""
    with harness.server(harness.fakeai_command("--zero-latency")) as url:
        harness.wrk(url, CHAT_BODY, seconds=2)
        maximum = harness.wrk(url, CHAT_BODY, seconds=SECONDS)["rps"]
        result = harness.fixed_rate(url, CHAT_BODY.encode(), rate=maximum / 2, seconds=SECONDS)
    RESULTS["half_max_rate"] = {"max_rps": maximum, **result}
