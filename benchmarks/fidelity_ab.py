"""Timing fidelity A/B: paced streams quiet, then under monitoring load, with a full window.

    .venv/bin/python benchmarks/fidelity_ab.py            # 1e5 then 1e6 samples; 100 and 300 streams; 3 pairs
    .venv/bin/python benchmarks/fidelity_ab.py --quick    # 1e4 samples; 100 streams; 1 pair (under 2 minutes)

One run, one server: ``fakeai serve`` (one worker) pinned to core 0 with ``taskset -c 0``,
TTFT 20 ms, ITL 10 ms, no jitter, no prefill time, a window of an hour (``--window-seconds
3600``) and room for every sample (``--max-window-samples``). This process, and everything it
starts (wrk, the monitoring clients), is pinned to core 1.

1. **Fill.** wrk (128 connections) sends cheap requests -- non-streamed chat, ``max_tokens:
   1``, each waiting its 20 ms TTFT -- in rounds until the chat endpoint's latency window
   (``responses["/v1/chat/completions"].count`` in ``GET /metrics``, the N of
   ``benchmarks/scrape_latency.py``) holds the size asked for. How many samples one request
   adds over every window ``/metrics`` shows, the rate and the time it took are reported.
   (Zero latency would fill faster, but it is a server-wide setting; the requests wrk cuts at
   the end of a round are recorded as 499s, and count as samples like any other.)
2. **Streams.** For each concurrency, ``--pairs`` pairs of runs, quiet and scraped, the order
   alternating (quiet first in even pairs, scraped first in odd ones) so that a drift of the
   machine's load favours neither. A run opens one connection per stream, then writes the
   requests (``stream: true``, ``max_tokens: 100``, ``ignore_eos: true``: exactly 100 content
   chunks) ``--start-interval-ms`` apart (default 1 ms: 1,000 new streams a second, within
   what one worker admits; a faster burst queues at admission and the TTFT then measures the
   queue, the same quiet and scraped), and timestamps every content chunk as it is read. The
   client is the compiled one (``benchmarks/sse_client.c``: nanosecond timers for the writes,
   a few microseconds a read); ``--client python`` uses the asyncio one, which waits for each
   write on the loop's timers (up to a millisecond late) and itself lagged up to 10 ms at 300
   streams. Neither busy-waits: one that spun would starve the monitoring load, which yields
   the core to it. Per stream,
   the TTFT error is the first content chunk's arrival - its request's write - 20 ms; per gap,
   the error is the gap between two content chunks - 10 ms (two chunks read together make a
   gap of 0: -10 ms).
3. **Monitoring load** (scraped runs only): ``benchmarks/monitoring_load.py`` in a process of
   its own on core 1 at Linux's ``SCHED_IDLE`` priority (it runs when the stream client does
   not need the core, so the client's timestamps are not delayed by the scheduler: what the
   streams show is the server's doing; the scrapes' own latencies then include waiting for
   the core), started and warmed up (page and assets loaded) before the streams: a
   10 Hz ``GET /metrics/prometheus`` scraper and one open dashboard refreshing ``/metrics`` and
   ``/metrics/history`` every ``--dashboard-refresh`` seconds, as ``dashboard.js`` does. The
   history sampler runs in the server in every run, quiet ones included (it cannot be turned
   off; once a second by default).

Reported per (window size, concurrency): the median over pairs of each run's p50/p99/max
TTFT and gap errors and share of gaps more than 2 ms late, quiet and scraped, and the
scraped - quiet difference of the p99s (the target: within 0.3 ms) beside the same difference
between two quiet runs (the median over consecutive pairs of |p99 - the next pair's p99|:
what the machine's own noise makes of two runs with nothing changed); the scrapes' latency as
the scraper saw it (p50/p99 over every scrape of the size); how contended the machine was (the
share of the run some task waited for a CPU, Linux's PSI: 0 % on an otherwise idle machine,
as other processes share the cores it grows and the figures mean less) and the most time
the host took from the server's core in any run of the case (the virtual machine's steal: a
host busy with other tenants delays the server by milliseconds that no change to fakeai can
win back; a pair with steal compares two different machines); the server's own view: the share of
its paced waiters (tokens, answers' ends) its timer served more than 1 ms after their deadlines,
from ``fakeai_paced_lateness_seconds`` read before and after each run (the client's core and
its lag do not enter it); and the load client's
own health: its event loop's lag (a task asking to wake every 1 ms; libuv's timers have 1 ms
granularity, so up to about 1 ms is the probe's resolution) and its CPU use. Results go to
``benchmarks/results/fidelity_ab.json`` (``--json`` elsewhere) and a table to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import harness  # noqa: E402

TTFT = 0.020
ITL = 0.010
START_INTERVAL = 0.001
"""Seconds between two streams' requests."""
TOKENS = 100
LATE = 0.002  # a gap this much longer than the ITL is "late"
MODEL = "openai/gpt-oss-120b"
FILL_BODY = '{"model":"%s","messages":[{"role":"user","content":"hi"}],"max_tokens":1}' % MODEL
STREAM_BODY = ('{"model":"%s","messages":[{"role":"user","content":"hi"}],"max_tokens":%d,"ignore_eos":true,'
               '"stream":true}' % (MODEL, TOKENS)).encode()
FILL_ENDPOINT = "/v1/chat/completions"
MONITOR = Path(__file__).with_name("monitoring_load.py")


def cpu_pressure_total() -> float:
    """Seconds some runnable task of this machine waited for a CPU since boot (Linux PSI; NaN
    without it): its growth over a run says how contended the machine was meanwhile."""
    try:
        with open("/proc/pressure/cpu") as pressure:
            return int(pressure.readline().rsplit("total=", 1)[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return float("nan")


def steal_seconds(cpu: str) -> float:
    """Seconds CPU ``cpu`` of this virtual machine was ready to run but the host ran something
    else (``/proc/stat``'s steal; NaN without it): the server's core losing time to other
    tenants, which no change to fakeai can win back. PSI does not see it."""
    try:
        with open("/proc/stat") as stat:
            for line in stat:
                fields = line.split()
                if fields[0] == f"cpu{cpu}":
                    return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        pass
    return float("nan")


def quantile(values: list[float], q: float) -> float:
    """numpy's ``linear`` quantile of ``values`` (NaN when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# -- filling the window ------------------------------------------------------------------------


def window_counts(url: str) -> dict[str, int]:
    """Requests finished since start, samples in the fill endpoint's latency window, and samples
    in every window ``GET /metrics`` shows (each endpoint's latency, prompt, completion and error
    windows; the streaming TTFT, ITL and tokens-per-second windows)."""
    metrics = httpx.get(url + "/metrics", headers={"accept": "application/json"}, timeout=60).json()
    every = sum(stats["count"] for section in ("responses", "tokens", "prompt_tokens", "errors")
                for stats in metrics[section].values())
    every += sum(metrics["streaming_stats"][name]["count"] for name in ("ttft", "itl", "tokens_per_second"))
    return {"requests": sum(totals["requests"] for totals in metrics["totals"].values()),
            "latency_window": metrics["responses"].get(FILL_ENDPOINT, {}).get("count", 0),
            "every_window": every, "dropped": metrics["dropped_samples"]}


def paced_lateness(url: str) -> tuple[float, float]:
    """The server's own count of paced waiters served (``fakeai_paced_lateness_seconds``), and
    how many of them more than 1 ms after their deadlines."""
    lines = httpx.get(url + "/metrics/prometheus", timeout=60).text.splitlines()
    family = "fakeai_paced_lateness_seconds"
    served = float(next(line for line in lines if line.startswith(family + "_count ")).split()[1])
    on_time = float(next(line for line in lines if line.startswith(family + '_bucket{le="0.001"}')).split()[1])
    return served, served - on_time


def fill(url: str, target: int) -> dict:
    """wrk rounds of cheap requests until the fill endpoint's latency window holds ``target``."""
    before = window_counts(url)
    started = time.perf_counter()
    rate = 0.0  # requests a second, once the first round (2 s) has measured it
    counts = before
    while counts["latency_window"] < target:
        missing = target - counts["latency_window"]
        seconds = max(1, min(30, round(missing / rate))) if rate else 2
        round_started = time.perf_counter()
        harness.wrk(url, FILL_BODY, seconds=seconds, connections=128)
        previous, counts = counts, window_counts(url)
        rate = max(100.0, (counts["latency_window"] - previous["latency_window"])
                   / (time.perf_counter() - round_started))
    seconds = time.perf_counter() - started
    requests = counts["requests"] - before["requests"]
    return {"target": target, "latency_window": counts["latency_window"], "requests": requests,
            "seconds": seconds, "requests_per_second": requests / seconds,
            "samples_per_request": (counts["every_window"] - before["every_window"]) / max(1, requests),
            "samples_in_every_window": counts["every_window"], "dropped_samples": counts["dropped"]}


# -- paced streams ---------------------------------------------------------------------------


def _paced_streams(host: str, port: int, concurrency: int, interval: float, monitor: subprocess.Popen | None,
                   client: str) -> dict:
    if client == "python":
        import uvloop

        async def start_monitoring() -> None:
            if monitor is not None:
                _go(monitor)
                await asyncio.sleep(0.05)  # its first scrape and dashboard refresh are under way

        return uvloop.run(harness.paced_streams(host, port, STREAM_BODY, concurrency, interval, TOKENS, TTFT, ITL,
                                                before_start=start_monitoring))
    if monitor is not None:
        _go(monitor)  # (the compiled client connects, then waits 50 ms before its first write)
    return harness.compiled_paced_streams(host, port, STREAM_BODY, [index * interval for index in range(concurrency)],
                                          TOKENS, TTFT, ITL)


def _go(monitor: subprocess.Popen) -> None:
    monitor.stdin.write(b"go\n")  # type: ignore[union-attr]
    monitor.stdin.flush()  # type: ignore[union-attr]


def _start_monitor(url: str, refresh: float, hz: float) -> subprocess.Popen:
    # SCHED_IDLE: the monitoring clients run on core 1 only while the stream client (the
    # measurement) does not need it, so what the streams show is the server's doing, not the
    # scheduler's (a Prometheus server does not share the benchmark client's core).
    monitor = subprocess.Popen(
        ["taskset", "-c", harness.LOAD_CPU, harness.PYTHON, str(MONITOR), url, "--scrape-hz", str(hz),
         "--dashboard-refresh", str(refresh)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        preexec_fn=lambda: os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0)))
    if monitor.stdout.readline().strip() != b"ready":  # type: ignore[union-attr]
        raise RuntimeError("the monitoring client did not start")
    return monitor


def run(url: str, concurrency: int, scraped: bool, refresh: float, interval: float = START_INTERVAL,
        hz: float = 10.0, client: str = "compiled") -> dict:
    """One run of ``concurrency`` paced streams, with or without monitoring load; its figures."""
    host, port = url.removeprefix("http://").split(":")
    monitor = _start_monitor(url, refresh, hz) if scraped else None
    server_cpu = url.cpu_seconds()  # type: ignore[attr-defined]
    pressure = cpu_pressure_total()
    steal = steal_seconds(harness.SERVER_CPU)
    served, late = paced_lateness(url)
    started = time.perf_counter()
    try:
        raw = _paced_streams(host, int(port), concurrency, interval, monitor, client)
    finally:
        scrapes: dict = {}
        if monitor is not None:
            output, _ = monitor.communicate(b"stop\n", timeout=60)
            scrapes = json.loads(output.splitlines()[-1])
    elapsed = time.perf_counter() - started
    server_share = (url.cpu_seconds() - server_cpu) / elapsed  # type: ignore[attr-defined]
    pressure_share = (cpu_pressure_total() - pressure) / elapsed
    steal_share = (steal_seconds(harness.SERVER_CPU) - steal) / elapsed
    served_after, late_after = paced_lateness(url)
    ttft, gaps, lags = raw["ttft_errors"], raw["gap_errors"], raw["client_lag"]
    ms = 1000.0
    figures = {
        "concurrency": concurrency, "scraped": scraped, "seconds": raw["seconds"],
        "streams": len(ttft), "streams_not_100_chunks": raw["streams_short"], "gaps": len(gaps),
        "ttft_error_ms": {"p50": quantile(ttft, 0.5) * ms, "p99": quantile(ttft, 0.99) * ms, "max": max(ttft) * ms},
        "gap_error_ms": {"p50": quantile(gaps, 0.5) * ms, "p99": quantile(gaps, 0.99) * ms, "max": max(gaps) * ms},
        "gaps_late_share": sum(gap > LATE for gap in gaps) / len(gaps),
        "client_lag_ms": {"p99": quantile(lags, 0.99) * ms, "max": max(lags, default=0.0) * ms},
        "client_cpu_share": raw["client_cpu_share"], "server_cpu_share": server_share,
        "machine_cpu_pressure": pressure_share, "server_core_steal": steal_share,
        "server_late_share": (late_after - late) / max(served_after - served, 1.0),
    }
    if monitor is not None:
        figures["scrape_seconds"] = scrapes["scrape_seconds"]
        figures["dashboard_refreshes"] = len(scrapes["dashboard_refresh_seconds"])
        figures["monitoring_failures"] = scrapes["failures"]
    return figures


# -- the whole A/B -----------------------------------------------------------------------------


def summarize(runs: list[dict]) -> dict:
    """Medians over pairs of the quiet and scraped figures, and their differences."""
    summary: dict = {}
    for kind in ("quiet", "scraped"):
        chosen = [run for run in runs if run["scraped"] == (kind == "scraped")]
        summary[kind] = {
            f"{figure}_{q}_ms": statistics.median(run[f"{figure}_ms"][q] for run in chosen)
            for figure in ("ttft_error", "gap_error") for q in ("p50", "p99", "max")
        }
        summary[kind]["gaps_late_share"] = statistics.median(run["gaps_late_share"] for run in chosen)
        summary[kind]["client_lag_max_ms"] = max(run["client_lag_ms"]["max"] for run in chosen)
        summary[kind]["client_cpu_share_max"] = max(run["client_cpu_share"] for run in chosen)
        summary[kind]["machine_cpu_pressure"] = statistics.median(run["machine_cpu_pressure"] for run in chosen)
        summary[kind]["server_core_steal_max"] = max(run["server_core_steal"] for run in chosen)
        summary[kind]["server_late_share"] = statistics.median(run["server_late_share"] for run in chosen)
        summary[kind]["streams_not_100_chunks"] = sum(run["streams_not_100_chunks"] for run in chosen)
    quiet = [run for run in runs if not run["scraped"]]
    for figure in ("gap_error", "ttft_error"):
        summary[f"{figure}_p99_ms_scraped_minus_quiet"] = (summary["scraped"][f"{figure}_p99_ms"]
                                                            - summary["quiet"][f"{figure}_p99_ms"])
        # The same comparison between two quiet runs (each pair's and the next pair's): what
        # this machine's own noise makes of a difference with nothing changed between the runs.
        summary[f"{figure}_p99_ms_quiet_vs_quiet"] = statistics.median(
            [abs(later[f"{figure}_ms"]["p99"] - earlier[f"{figure}_ms"]["p99"])
             for earlier, later in zip(quiet, quiet[1:])] or [float("nan")])
    scrapes = [seconds for run in runs if run["scraped"] for seconds in run["scrape_seconds"]]
    summary["scrapes"] = len(scrapes)
    summary["scrape_ms"] = {"p50": quantile(scrapes, 0.5) * 1000, "p99": quantile(scrapes, 0.99) * 1000,
                            "max": max(scrapes, default=float("nan")) * 1000}
    summary["monitoring_failures"] = [f for run in runs if run["scraped"] for f in run["monitoring_failures"]]
    return summary


def print_table(results: dict) -> None:
    print()
    print("fidelity A/B (errors in ms: client-observed minus TTFT 20 ms / ITL 10 ms; medians over pairs)")
    header = ("samples", "streams", "run", "gap p50", "gap p99", "gap max", ">2ms late", "TTFT p50", "TTFT p99",
              "TTFT max", "client lag max", "CPU pressure", "steal max", "srv >1ms")
    print(" | ".join(f"{cell:>10}" for cell in header))
    for case in results["cases"]:
        summary = case["summary"]
        for kind in ("quiet", "scraped"):
            figures = summary[kind]
            print(" | ".join([
                f"{case['window_samples']:>10.2e}", f"{case['concurrency']:>10}", f"{kind:>10}",
                *(f"{figures[f'gap_error_{q}_ms']:>10.3f}" for q in ("p50", "p99", "max")),
                f"{figures['gaps_late_share'] * 100:>9.2f}%",
                *(f"{figures[f'ttft_error_{q}_ms']:>10.3f}" for q in ("p50", "p99", "max")),
                f"{figures['client_lag_max_ms']:>10.2f}", f"{figures['machine_cpu_pressure'] * 100:>9.0f}%",
                f"{figures['server_core_steal_max'] * 100:>9.1f}%",
                f"{figures['server_late_share'] * 100:>9.2f}%",
            ]))
        print(f"{'':>10}   {'':>10}   {'difference':>10}   {'':>10}   "
              f"{summary['gap_error_p99_ms_scraped_minus_quiet']:>+10.3f}   {'':>10}   {'':>10}   {'':>10}   "
              f"{summary['ttft_error_p99_ms_scraped_minus_quiet']:>+10.3f}   "
              f"(target: within 0.3 ms)   scrape p50 {summary['scrape_ms']['p50']:.2f} ms, "
              f"p99 {summary['scrape_ms']['p99']:.2f} ms over {summary['scrapes']} scrapes")
        print(f"{'':>10}   {'':>10}   {'quiet/quiet':>10}   {'':>10}   "
              f"{summary['gap_error_p99_ms_quiet_vs_quiet']:>10.3f}   {'':>10}   {'':>10}   {'':>10}   "
              f"{summary['ttft_error_p99_ms_quiet_vs_quiet']:>10.3f}   "
              f"(median |difference| between one pair's quiet run and the next's: this machine's noise)")
    for fill_result in results["fills"]:
        print(f"fill to {fill_result['target']:.0e}: {fill_result['latency_window']:,} samples in the latency window, "
              f"{fill_result['requests']:,} requests in {fill_result['seconds']:.0f} s "
              f"({fill_result['requests_per_second']:,.0f}/s), {fill_result['samples_per_request']:.2f} samples "
              f"per request over every window; {fill_result['samples_in_every_window']:,} in all")
    print(f"total {results['seconds']:.0f} s; load average {results['load_average_before']} before, "
          f"{results['load_average_after']} after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--quick", action="store_true", help="1e4 samples, 100 streams, 1 pair: a check")
    parser.add_argument("--sizes", help="samples in the latency window, comma-separated (default 1e5,1e6)")
    parser.add_argument("--concurrency", help="concurrent streams, comma-separated (default 100,300)")
    parser.add_argument("--pairs", type=int, help="quiet/scraped pairs per case (default 3)")
    parser.add_argument("--dashboard-refresh", type=float, default=1.0,
                        help="seconds between the dashboard's refreshes (the page's shortest choice: 1; "
                             "0: no dashboard)")
    parser.add_argument("--scrape-hz", type=float, default=10.0,
                        help="Prometheus scrapes a second in the scraped runs (0: no scraper)")
    parser.add_argument("--start-interval-ms", type=float, default=START_INTERVAL * 1000,
                        help="ms between two streams' requests (default 1)")
    parser.add_argument("--client", choices=("compiled", "python"), default="compiled",
                        help="the stream client: benchmarks/sse_client.c (default) or the asyncio one")
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results") / "fidelity_ab.json",
                        help="where the figures (every run's included) are written")
    args = parser.parse_args()
    sizes = [int(float(size)) for size in (args.sizes or ("1e4" if args.quick else "1e5,1e6")).split(",")]
    concurrencies = [int(c) for c in (args.concurrency or ("100" if args.quick else "100,300")).split(",")]
    pairs = args.pairs or (1 if args.quick else 3)
    started = time.perf_counter()
    os.sched_setaffinity(0, {int(harness.LOAD_CPU)})
    results: dict = {"client": args.client, "ttft_ms": TTFT * 1000, "itl_ms": ITL * 1000, "tokens": TOKENS, "pairs": pairs,
                     "dashboard_refresh_seconds": args.dashboard_refresh, "scrape_hz": args.scrape_hz, "start_interval_ms": args.start_interval_ms,
                     "load_average_before": os.getloadavg(), "fills": [], "cases": []}
    room = max(sizes) + max(sizes) // 10 + 2 * pairs * sum(concurrencies) * len(sizes) + 10_000
    flags = ("--workers", "1", "--ttft-ms", "20", "--itl-ms", "10", "--ttft-jitter", "0", "--itl-jitter", "0",
             "--prefill-ms-per-token", "0", "--window-seconds", "3600", "--max-window-samples", str(room))
    results["server_flags"] = list(flags)
    with harness.server(harness.fakeai_command(*flags)) as url:
        run(url, 10, scraped=False, refresh=args.dashboard_refresh, client=args.client)  # warm-up
        for size in sizes:
            print(f"filling the window to {size:.0e} samples ...", flush=True)
            results["fills"].append(fill(url, size))
            print(f"  {results['fills'][-1]['seconds']:.0f} s", flush=True)
            for concurrency in concurrencies:
                runs = []
                for pair in range(pairs):
                    for scraped in ((False, True) if pair % 2 == 0 else (True, False)):
                        runs.append(run(url, concurrency, scraped, args.dashboard_refresh, args.start_interval_ms / 1000,
                                        args.scrape_hz, args.client))
                        time.sleep(0.3)  # the server closes the last connections
                        latest = runs[-1]
                        print(f"  {size:.0e} samples, {concurrency} streams, {'scraped' if scraped else 'quiet':>7}: "
                              f"gap p99 {latest['gap_error_ms']['p99']:.3f} ms, TTFT p99 "
                              f"{latest['ttft_error_ms']['p99']:.3f} ms", flush=True)
                results["cases"].append({"window_samples": window_counts(url)["latency_window"],
                                         "concurrency": concurrency, "summary": summarize(runs), "runs": runs})
    results["seconds"] = time.perf_counter() - started
    results["load_average_after"] = os.getloadavg()
    args.json.parent.mkdir(exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print_table(results)
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
