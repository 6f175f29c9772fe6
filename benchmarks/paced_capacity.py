"""Paced capacity: how many paced tokens a second one worker delivers on time.

    .venv/bin/python benchmarks/paced_capacity.py                 # this checkout, 200 to 550 streams
    .venv/bin/python benchmarks/paced_capacity.py --base-python /tmp/base/.venv/bin/python   # today vs a base

One ``fakeai serve`` per build (one worker; TTFT 20 ms, ITL 10 ms, no jitter, no prefill time)
pinned to core 0; this process, the load client, pinned to core 1. With ``--base-python`` a
second server runs another build (``python -P -m fakeai``: whatever fakeai that interpreter
has installed, e.g. a virtualenv with the previous commit); with ``--bare``, a server of
``benchmarks.apps:bare_paced_asgi`` on uvicorn (fixed chunks paced the same way, no framework
and no model: the ceiling of paced streaming in Python). The servers take turns at every
level, the order alternating from round to round, so a drift of the machine favours none.

At each level N (``--concurrency``), N streams of ``--tokens`` content chunks (default 300:
three seconds at 10 ms), each on its own connection, their requests written at random times
over one second (``starts``): from the last start to the first end, N streams are being paced
at once, N / ITL tokens a second. The client is compiled (``benchmarks/sse_client.c``, built
with the C compiler on first use; ``benchmarks.harness.compiled_paced_streams``) and times
every chunk as it is read. Per level and build, medians over ``--rounds``:

* the client-observed inter-token gap error (gap - ITL) p50 / p99 and the share of gaps more
  than 2 ms late, and the TTFT error p99;
* the server's CPU share over the run and its CPU time per delivered token (the whole
  process, requests included: 300 tokens a request amortise them);
* the client's own health: its CPU share (mostly the kernel's TCP receive work) and how late
  it wrote its requests behind their times (its lag). A Python asyncio client lagged 20 to
  38 ms at 400 to 600 streams here; the compiled one stays within a fraction of a
  millisecond, so the gap figures are the server's.

The capacity of a build is the highest level whose gap error p99 stays within 1 ms; its
tokens a second are N / ITL. Then the unpaced ceiling, which pacing's changes must not lower:
each build's streamed tokens a second at zero latency (wrk, 64 connections, 100 tokens a
stream), the builds taking turns. Results go to
``benchmarks/results/paced_capacity.json`` (``--json`` elsewhere) and a table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import harness  # noqa: E402
from benchmarks.compare import STREAM_BODY  # noqa: E402
from benchmarks.fidelity_ab import ITL, LATE, MODEL, TTFT, quantile  # noqa: E402  (the same paced server)

GAP_BAR = 0.001
"""The gap error p99 a level must stay within to count as delivered on time."""


def stream_body(tokens: int) -> bytes:
    return ('{"model":"%s","messages":[{"role":"user","content":"hi"}],"max_tokens":%d,"ignore_eos":true,'
            '"stream":true}' % (MODEL, tokens)).encode()


def server_command(python: str, itl: float) -> list[str]:
    return [python, "-P", "-m", "fakeai", "serve", "--port", "{port}", "--log-level", "warning", "--workers", "1",
            "--ttft-ms", str(TTFT * 1000), "--itl-ms", str(itl * 1000), "--ttft-jitter", "0", "--itl-jitter", "0",
            "--prefill-ms-per-token", "0"]


def starts(concurrency: int) -> list[float]:
    """When each stream's request is written: uniformly at random over one second (the same
    draw for every build and round), as requests arriving at a steady rate would be. Evenly
    spaced starts would put the streams' deadlines in a few phases of the ITL (every stream in
    one at 100 streams a second and a 10 ms ITL): bursts of tokens due at the same instant."""
    draw = random.Random(concurrency)
    return sorted(draw.random() for _ in range(concurrency))


def level(url: harness.Running, concurrency: int, tokens: int, itl: float) -> dict:
    """One level: ``concurrency`` streams started over one second; its figures."""
    host, port = url.removeprefix("http://").split(":")
    server_cpu = url.cpu_seconds()
    started = time.perf_counter()
    raw = harness.compiled_paced_streams(host, int(port), stream_body(tokens), starts(concurrency), tokens, TTFT, itl)
    elapsed = time.perf_counter() - started
    server_cpu = url.cpu_seconds() - server_cpu
    gaps, ttfts = raw["gap_errors"], raw["ttft_errors"]
    ms = 1000.0
    return {
        "concurrency": concurrency, "paced_tokens_per_second": concurrency / itl, "tokens": raw["tokens"],
        "streams_short": raw["streams_short"],
        "gap_error_p50_ms": quantile(gaps, 0.5) * ms, "gap_error_p99_ms": quantile(gaps, 0.99) * ms,
        "gaps_late_share": sum(gap > LATE for gap in gaps) / max(len(gaps), 1),
        "ttft_error_p99_ms": quantile(ttfts, 0.99) * ms,
        "server_cpu_share": server_cpu / elapsed, "server_cpu_us_per_token": server_cpu / max(raw["tokens"], 1) * 1e6,
        "client_cpu_share": raw["client_cpu_share"], "client_lag_max_ms": max(raw["client_lag"], default=0.0) * ms,
        "client_lag_p99_ms": quantile(raw["client_lag"], 0.99) * ms,
    }


def zero_latency_tokens_per_second(pythons: dict[str, str], rounds: int, seconds: int) -> dict[str, float]:
    """Streamed tokens a second at zero latency (wrk, 64 connections, ``compare.py``'s streamed
    body of 100 tokens) per build, its servers taking turns; medians over ``rounds``: pacing's
    changes must not cost the unpaced ceiling."""
    commands = {build: [python, "-P", "-m", "fakeai", "serve", "--port", "{port}", "--log-level", "warning",
                        "--zero-latency"] for build, python in pythons.items()}
    figures: dict[str, list[float]] = {build: [] for build in pythons}
    with harness.servers_of(commands) as urls:
        for url in urls.values():
            harness.wrk(url, STREAM_BODY, seconds=2)  # warm-up
        for round_number in range(rounds):
            for build in (list(urls) if round_number % 2 == 0 else list(reversed(urls))):
                figures[build].append(harness.wrk(urls[build], STREAM_BODY, seconds=seconds)["rps"] * 100)
    return {build: statistics.median(values) for build, values in figures.items()}


def summarize(runs: list[dict]) -> dict:
    """Medians over rounds of every figure of one build at one level (the worst lag and CPU)."""
    summary = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    summary["client_cpu_share"] = max(run["client_cpu_share"] for run in runs)
    summary["client_lag_max_ms"] = max(run["client_lag_max_ms"] for run in runs)
    summary["streams_short"] = sum(run["streams_short"] for run in runs)
    return summary


def capacity(levels: list[dict]) -> float:
    """The highest level's paced tokens a second whose gap error p99 is within the bar (0: none)."""
    return max((lv["paced_tokens_per_second"] for lv in levels if lv["gap_error_p99_ms"] <= GAP_BAR * 1000),
               default=0.0)


def print_table(results: dict) -> None:
    print()
    print(f"paced capacity (TTFT {TTFT * 1000:.0f} ms, ITL {results['itl_ms']:g} ms, {results['tokens']} tokens a "
          f"stream; medians over {results['rounds']} rounds)")
    header = ("build", "streams", "tokens/s", "gap p50", "gap p99", ">2ms late", "TTFT p99", "server CPU",
              "us/token", "client CPU", "client lag")
    print(" | ".join(f"{cell:>10}" for cell in header))
    for build, levels in results["builds"].items():
        for lv in levels:
            print(" | ".join([
                f"{build:>10}", f"{lv['concurrency']:>10}", f"{lv['paced_tokens_per_second']:>10,.0f}",
                f"{lv['gap_error_p50_ms']:>10.3f}", f"{lv['gap_error_p99_ms']:>10.3f}",
                f"{lv['gaps_late_share'] * 100:>9.2f}%", f"{lv['ttft_error_p99_ms']:>10.3f}",
                f"{lv['server_cpu_share'] * 100:>9.0f}%", f"{lv['server_cpu_us_per_token']:>10.1f}",
                f"{lv['client_cpu_share'] * 100:>9.0f}%", f"{lv['client_lag_max_ms']:>10.2f}",
            ]))
    zero = results["zero_latency_tokens_per_second"]
    for build, figure in results["capacity_tokens_per_second"].items():
        print(f"{build}: {figure:,.0f} paced tokens/s with gap error p99 within {GAP_BAR * 1000:g} ms"
              + (f"; zero latency: {zero[build]:,.0f} streamed tokens/s" if build in zero else ""))
    if "base" in zero:
        base, this = (results["capacity_tokens_per_second"][build] for build in ("base", "this"))
        zero_base, zero_this = zero["base"], zero["this"]
        print(f"this / base: paced capacity {this / base if base else float('inf'):.2f}, "
              f"zero latency {zero_this / zero_base:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--concurrency", default="200,250,300,350,400,450,500,550",
                        help="concurrent streams per level, comma-separated")
    parser.add_argument("--tokens", type=int, default=300, help="content chunks a stream")
    parser.add_argument("--itl-ms", type=float, default=ITL * 1000, help="inter-token latency")
    parser.add_argument("--rounds", type=int, default=3, help="runs of every level per build")
    parser.add_argument("--zero-latency-seconds", type=int, default=5, help="each zero-latency wrk run")
    parser.add_argument("--bare", action="store_true",
                        help="also measure benchmarks.apps:bare_paced_asgi (paced chunks, no framework, no model)")
    parser.add_argument("--base-python", help="an interpreter with another fakeai installed: measured alternately")
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results") / "paced_capacity.json")
    args = parser.parse_args()
    itl = args.itl_ms / 1000
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    pythons = {"this": harness.PYTHON} if args.base_python is None else {"base": args.base_python,
                                                                         "this": harness.PYTHON}
    os.sched_setaffinity(0, {int(harness.LOAD_CPU)})
    started = time.perf_counter()
    commands = {build: server_command(python, itl) for build, python in pythons.items()}
    if args.bare:
        commands["bare"] = harness.uvicorn_command("benchmarks.apps:bare_paced_asgi")
        os.environ["BARE_PACED_ITL_MS"] = str(args.itl_ms)
    runs: dict[str, dict[int, list[dict]]] = {build: {c: [] for c in concurrencies} for build in commands}
    with harness.servers_of(commands) as urls:
        for url in urls.values():
            level(url, 20, 50, itl)  # warm-up
        for round_number in range(args.rounds):
            order = list(urls) if round_number % 2 == 0 else list(reversed(urls))
            for concurrency in concurrencies:
                for build in order:
                    runs[build][concurrency].append(level(urls[build], concurrency, args.tokens, itl))
                    latest = runs[build][concurrency][-1]
                    print(f"round {round_number + 1}, {build}, {concurrency} streams: gap p99 "
                          f"{latest['gap_error_p99_ms']:.3f} ms, server CPU {latest['server_cpu_share'] * 100:.0f} %, "
                          f"{latest['server_cpu_us_per_token']:.1f} us/token, client CPU "
                          f"{latest['client_cpu_share'] * 100:.0f} %", flush=True)
                    time.sleep(0.3)  # the server closes the last connections
    print("zero latency ...", flush=True)
    zero_latency = zero_latency_tokens_per_second(pythons, args.rounds, args.zero_latency_seconds)
    builds = {build: [summarize(runs[build][c]) for c in concurrencies] for build in commands}
    results = {"ttft_ms": TTFT * 1000, "itl_ms": args.itl_ms, "tokens": args.tokens, "rounds": args.rounds,
               "pythons": pythons, "load_average": os.getloadavg(), "seconds": time.perf_counter() - started,
               "builds": builds, "capacity_tokens_per_second": {build: capacity(builds[build]) for build in builds},
               "zero_latency_tokens_per_second": zero_latency,
               "runs": runs}
    args.json.parent.mkdir(exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print_table(results)
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
