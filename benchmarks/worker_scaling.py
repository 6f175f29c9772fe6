"""Worker scaling: throughput, recording cost and scrape cost as ``--workers`` grows.

    .venv/bin/python -m benchmarks.worker_scaling                       # this 2-core machine: 1,2 workers
    .venv/bin/python -m benchmarks.worker_scaling --workers 1,2,4,8 --server-cores 0-7 --client-cores 8-15

For each worker count N, one ``fakeai serve --workers N --zero-latency`` pinned to
``--server-cores`` (``taskset -c``; every worker shares those cores), loaded by wrk pinned to
``--client-cores`` with one wrk thread per client core and 64 connections per worker:

* **plain**: non-streamed chat (``benchmarks.compare``'s body, 16 tokens), requests/s;
* **streamed**: streamed chat of 100 tokens at zero latency, tokens/s (requests/s x 100);
* **recording off**: plain chat again with ``--record-metrics false`` (the same workers), and
  so the server CPU recording costs per request (server CPU time per request, on - off);
* **scrape**: with the window holding what the loads recorded, ``--scrapes`` sequential
  ``GET /metrics/prometheus`` on fresh connections (whichever worker the kernel gives each),
  median and p99 latency.

The server's CPU time per request is the CPU of the whole process tree (the supervisor and
every worker, from ``/proc``) over the requests wrk completed; where the cores are the
limit, requests/s follows it. Rounds (``--rounds``) alternate the order of the worker counts
and the medians are reported, so a drift of the machine favours none of them. On a machine
where the server has one core per worker, requests/s should grow about linearly with N up to
the server cores; on this 2-core VM the server has one core, so N > 1 only shares it and
the figure shows what the extra processes cost (as the "2 workers" row of docs/benchmarks.md does).

A client that is not the bottleneck: wrk is compiled and its threads run on their own cores;
the script prints wrk's own CPU use per round (user + system over the run's wall time, per
wrk thread), which must stay well under 100 % for the server figures to mean anything.

Results go to ``benchmarks/results/worker_scaling.json`` (``--json`` elsewhere) and a table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks import harness
from benchmarks.compare import CHAT_BODY

STREAM_BODY = json.dumps({
    "model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "Tell me a story."}],
    "max_tokens": 100, "stream": True, "ignore_eos": True,
})


def _cores(spec: str) -> list[int]:
    cores: list[int] = []
    for part in spec.split(","):
        first, _, last = part.partition("-")
        cores += range(int(first), int(last or first) + 1)
    return cores


def tree_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` and its live descendants (the server's workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited while listed
        process = int(entry.name)
        children.setdefault(int(fields[1]), []).append(process)
        times[process] = (int(fields[11]) + int(fields[12])) / ticks
    total, pending = 0.0, [pid]
    while pending:
        process = pending.pop()
        total += times.get(process, 0.0)
        pending += children.get(process, [])
    return total


def wrk(url: str, body: str, *, seconds: int, connections: int, threads: int, client_cores: str) -> dict:
    """wrk POSTing ``body`` to the chat endpoint; requests/s, errors and wrk's own CPU share."""
    lua = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[%s]]\n' % body
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(lua)
        script.flush()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        output = subprocess.run(
            ["taskset", "-c", client_cores, "wrk", f"-t{threads}", f"-c{max(connections, threads)}", f"-d{seconds}s", "--timeout", "10s",
             "-s", script.name, url + "/v1/chat/completions"],
            capture_output=True, text=True, check=True,
        ).stdout
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors or "Socket errors" in output:
        raise RuntimeError(f"wrk saw errors:\n{output}")
    client_cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / wall / threads
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
            "client_cpu_share": client_cpu}


def scrape_latencies(url: str, scrapes: int) -> list[float]:
    latencies = []
    for _ in range(scrapes):
        with httpx.Client(base_url=url) as client:  # a fresh connection: any worker may answer
            started = time.perf_counter()
            client.get("/metrics/prometheus").raise_for_status()
            latencies.append(time.perf_counter() - started)
    return latencies


def one_round(workers: int, args: argparse.Namespace, threads: int) -> dict:
    figures = {}
    load = dict(seconds=args.seconds, connections=64 * workers, threads=threads, client_cores=args.client_cores)
    for recording in ("true", "false"):
        command = harness.fakeai_command("--zero-latency", "--workers", str(workers), "--record-metrics", recording,
                                         "--window-seconds", "3600")
        with harness.server(command) as url:
            wrk(url, CHAT_BODY, **{**load, "seconds": 2})  # warm-up
            cpu = tree_cpu_seconds(url.pid)
            plain = wrk(url, CHAT_BODY, **load)
            cpu_per_request = (tree_cpu_seconds(url.pid) - cpu) / (plain["rps"] * args.seconds)
            if recording == "false":
                figures["plain_rps_recording_off"] = plain["rps"]
                figures["cpu_us_per_request_recording_off"] = cpu_per_request * 1e6
                continue
            figures["plain_rps"] = plain["rps"]
            figures["cpu_us_per_request"] = cpu_per_request * 1e6
            figures["client_cpu_share"] = plain["client_cpu_share"]
            streamed = wrk(url, STREAM_BODY, **load)
            figures["streamed_tokens_per_second"] = streamed["rps"] * 100
            figures["client_cpu_share"] = max(figures["client_cpu_share"], streamed["client_cpu_share"])
            latencies = sorted(scrape_latencies(url, args.scrapes))
            figures["scrape_ms_median"] = statistics.median(latencies) * 1e3
            figures["scrape_ms_p99"] = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1e3
    figures["recording_cpu_us_per_request"] = figures["cpu_us_per_request"] - figures["cpu_us_per_request_recording_off"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated (default 1,2)")
    parser.add_argument("--server-cores", default="0", help="cores the server runs on, taskset style (default 0)")
    parser.add_argument("--client-cores", default="1", help="cores wrk runs on, one thread each (default 1)")
    parser.add_argument("--seconds", type=int, default=5, help="seconds of each load (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, order alternating (default 3)")
    parser.add_argument("--scrapes", type=int, default=30, help="scrapes per round (default 30)")
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results") / "worker_scaling.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk)")
    harness.SERVER_CPU = args.server_cores
    counts = [int(count) for count in args.workers.split(",")]
    threads = len(_cores(args.client_cores))
    print(f"server cores {args.server_cores}, client cores {args.client_cores} ({threads} wrk threads), "
          f"{os.cpu_count()} cores on this machine", flush=True)
    rounds: dict[int, list[dict]] = {count: [] for count in counts}
    for index in range(args.rounds):
        for count in counts if index % 2 == 0 else counts[::-1]:
            figures = one_round(count, args, threads)
            rounds[count].append(figures)
            print(f"round {index + 1}, {count} worker(s): " + ", ".join(f"{k} {v:,.1f}" for k, v in figures.items()),
                  flush=True)
    medians = {count: {key: statistics.median(r[key] for r in results) for key in results[0]}
               for count, results in rounds.items()}
    columns = ("plain_rps", "plain_rps_recording_off", "cpu_us_per_request", "recording_cpu_us_per_request",
               "streamed_tokens_per_second", "scrape_ms_median", "scrape_ms_p99", "client_cpu_share")
    print("\nmedians over rounds")
    print(f"{'workers':>8} | " + " | ".join(f"{column:>28}" for column in columns))
    for count, figures in medians.items():
        print(f"{count:>8} | " + " | ".join(f"{figures[column]:>28,.2f}" for column in columns))
    first = medians[counts[0]]
    for count in counts[1:]:
        print(f"{count} workers / {counts[0]}: plain {medians[count]['plain_rps'] / first['plain_rps']:.2f}x, "
              f"streamed {medians[count]['streamed_tokens_per_second'] / first['streamed_tokens_per_second']:.2f}x, "
              f"scrape median {medians[count]['scrape_ms_median'] / first['scrape_ms_median']:.2f}x")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"server_cores": args.server_cores, "client_cores": args.client_cores,
                                     "rounds": {str(k): v for k, v in rounds.items()},
                                     "medians": {str(k): v for k, v in medians.items()}}, indent=2))
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
