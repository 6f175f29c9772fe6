"""Scrape latency over HTTP with one worker process and with four, the window full.

    .venv/bin/python benchmarks/scrape_workers.py            # --workers 1,4 at 1e5 and 1e6 samples, 50 scrapes
    .venv/bin/python benchmarks/scrape_workers.py --quick    # 1e4 samples, 20 scrapes (under 2 minutes)

For each worker count, one ``fakeai serve --workers N --zero-latency`` (every worker pinned
to core 0 with ``taskset -c 0``: four workers share it), a window of an hour and room for
every sample. This process, wrk and the client are pinned to core 1.

For each size, wrk (128 connections, non-streamed chat, ``max_tokens: 1``) fills the chat
endpoint's latency window (the union over every worker, as ``GET /metrics`` counts it) to
that size; the kernel spreads wrk's connections over the workers (not necessarily evenly),
so each worker's journal holds a share. Then, for each format -- ``/metrics/prometheus``, ``/metrics`` (JSON),
``/metrics/csv``, ``/health``, ``/health/detailed`` -- ``--scrapes`` sequential GETs, each
timed from its request's write to its response's last byte, on keep-alive connections taken
in turn from a pool of 2 per worker (which worker accepts a connection is the kernel's
choice: connections are opened until ``ss`` shows every worker holding 2), so the scrapes
fall on every worker alike. Each worker's first Prometheus scrape after the fill replays what
the fill recorded in every region since that worker last read them (the fill's own counts,
over connections of their own, may have been answered by any worker): timed apart, the worst
is shown as "first". Then ``--warmup`` untimed scrapes per format, then the timed ones. With
``--load-rps R`` a fixed-rate stream of chat requests runs in the background (from a process
of its own on core 1) while scraping, so every scrape also replays what was recorded since
the previous one; by default the server is otherwise idle.

Reported: median and p99 per (workers, size, format), and the ratio 4 workers / 1 worker of
the medians and of the p99s (the issue's target: at most 4x). Results go to
``benchmarks/results/scrape_workers.json`` (``--json`` elsewhere) and a table to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import harness  # noqa: E402
from benchmarks.fidelity_ab import FILL_BODY, fill, quantile  # noqa: E402
from benchmarks.monitoring_load import PROMETHEUS_ACCEPT, Connection  # noqa: E402

FORMATS = (
    ("prometheus", "/metrics/prometheus", PROMETHEUS_ACCEPT),
    ("json", "/metrics", b"application/json"),
    ("csv", "/metrics/csv", b"*/*"),
    ("health", "/health", b"*/*"),
    ("health/detailed", "/health/detailed", b"*/*"),
)
_BACKGROUND = (
    "import sys; sys.path.insert(0, {root!r}); from benchmarks import harness; "
    "harness.fixed_rate({url!r}, {body!r}, rate={rate}, seconds=3600, connections=16)"
)


def _server_pids(port: int) -> dict[int, int]:
    """For each established connection to ``port``: the client's port -> the server pid holding it."""
    listing = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True, check=True).stdout
    owners = {}
    for line in listing.splitlines():
        fields = line.split()
        pid = re.search(r"pid=(\d+)", line)
        if len(fields) >= 4 and pid:
            owners[int(fields[3].rsplit(":", 1)[1])] = int(pid.group(1))
    return owners


async def _connections_to_every_worker(host: str, port: int, workers: int, each: int) -> list[Connection]:
    """``each`` keep-alive connections accepted by every worker, in turn (worker 1, 2, ..., 1, 2, ...):
    which worker accepts a connection is the kernel's choice, so connect until each has them."""
    by_pid: dict[int, list[Connection]] = {}
    for _ in range(50 * workers * each):
        connection = Connection(host, port)
        await connection.connect()
        await asyncio.sleep(0.001)  # accepted
        client_port = connection.writer.get_extra_info("sockname")[1]  # type: ignore[union-attr]
        pid = _server_pids(port).get(client_port)
        if pid is None:
            await asyncio.sleep(0.05)
            pid = _server_pids(port).get(client_port)
        kept = by_pid.setdefault(pid, []) if pid is not None else []
        if pid is not None and len(kept) < each:
            kept.append(connection)
        else:
            connection.writer.close()  # type: ignore[union-attr]
        if len(by_pid) == workers and all(len(kept) == each for kept in by_pid.values()):
            break
    if len(by_pid) < workers:
        raise RuntimeError(f"only {len(by_pid)} of {workers} workers accepted a connection")
    return [kept[index] for index in range(each) for kept in by_pid.values() if index < len(kept)]


async def _scrape_all(url: str, workers: int, scrapes: int, warmup: int) -> dict:
    host, port = url.removeprefix("http://").split(":")
    pool = await _connections_to_every_worker(host, int(port), workers, 2)
    turn = 0
    figures: dict = {}

    async def timed(path: str, accept: bytes) -> float:
        nonlocal turn
        connection = pool[turn % len(pool)]
        turn += 1
        sent = time.perf_counter()
        status, _ = await connection.get(path, accept)
        if status != 200:
            raise RuntimeError(f"{path}: HTTP {status}")
        return time.perf_counter() - sent

    # the pool starts with one connection per worker: each one's first scrape after the fill
    figures["first_scrape_ms"] = [await timed(FORMATS[0][1], FORMATS[0][2]) * 1000 for _ in range(workers)]
    for name, path, accept in FORMATS:
        for _ in range(warmup):
            await timed(path, accept)
        latencies = [await timed(path, accept) for _ in range(scrapes)]
        figures[name] = {"median_ms": quantile(latencies, 0.5) * 1000, "p99_ms": quantile(latencies, 0.99) * 1000,
                         "max_ms": max(latencies) * 1000, "scrapes": len(latencies)}
    return figures


def measure(workers: int, sizes: list[int], scrapes: int, warmup: int, load_rps: float) -> list[dict]:
    import uvloop

    room = max(sizes) + max(sizes) // 5 + 10_000
    flags = ("--workers", str(workers), "--zero-latency", "--window-seconds", "3600",
             "--max-window-samples", str(room))
    rows = []
    with harness.server(harness.fakeai_command(*flags)) as url:
        for size in sizes:
            print(f"{workers} worker(s): filling the window to {size:.0e} samples ...", flush=True)
            filled = fill(url, size)
            print(f"  {filled['latency_window']:,} samples in {filled['seconds']:.0f} s", flush=True)
            background = None
            if load_rps:
                root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
                background = subprocess.Popen(
                    ["taskset", "-c", harness.LOAD_CPU, harness.PYTHON, "-c",
                     _BACKGROUND.format(root=root, url=str(url), body=FILL_BODY.encode(), rate=load_rps)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)
            try:
                figures = uvloop.run(_scrape_all(url, workers, scrapes, warmup))
            finally:
                if background is not None:
                    background.terminate()
                    background.wait()
            rows.append({"workers": workers, "size": size, "fill": filled, **figures})
            for name, _, _ in FORMATS:
                print(f"  {name:<16} median {figures[name]['median_ms']:8.3f} ms, p99 {figures[name]['p99_ms']:8.3f} ms",
                      flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--quick", action="store_true", help="1e4 samples, 20 scrapes: a check")
    parser.add_argument("--workers", default="1,4", help="worker counts, comma-separated (default 1,4)")
    parser.add_argument("--sizes", help="samples in the latency window, comma-separated (default 1e5,1e6)")
    parser.add_argument("--scrapes", type=int, help="timed scrapes per format (default 50)")
    parser.add_argument("--warmup", type=int, default=8, help="untimed scrapes per format first (default 8)")
    parser.add_argument("--load-rps", type=float, default=0.0,
                        help="chat requests a second in the background while scraping (default 0: idle)")
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results") / "scrape_workers.json",
                        help="where the figures are written")
    args = parser.parse_args()
    sizes = [int(float(size)) for size in (args.sizes or ("1e4" if args.quick else "1e5,1e6")).split(",")]
    scrapes = args.scrapes or (20 if args.quick else 50)
    worker_counts = [int(count) for count in args.workers.split(",")]
    os.sched_setaffinity(0, {int(harness.LOAD_CPU)})
    started = time.perf_counter()
    rows = []
    for workers in worker_counts:
        rows.extend(measure(workers, sizes, scrapes, args.warmup, args.load_rps))
    results = {"scrapes": scrapes, "warmup": args.warmup, "load_rps": args.load_rps, "rows": rows,
               "load_average_after": os.getloadavg(), "seconds": time.perf_counter() - started}
    print()
    print(f"scrape latency over HTTP, ms (median / p99 of {scrapes} sequential scrapes"
          f"{f', {args.load_rps:g} req/s in the background' if args.load_rps else ', idle server'})")
    header = ("workers", "samples", *(name for name, _, _ in FORMATS), "first (worst)")
    print(" | ".join(f"{cell:>17}" for cell in header))
    for row in rows:
        cells = [f"{row['workers']:>17}", f"{row['fill']['latency_window']:>17,}"]
        cells += [f"{row[name]['median_ms']:>8.3f} /{row[name]['p99_ms']:>7.3f}" for name, _, _ in FORMATS]
        cells.append(f"{max(row['first_scrape_ms']):>17.1f}")
        print(" | ".join(cells))
    low, high = min(worker_counts), max(worker_counts)
    if low != high:
        results["ratios"] = {}
        print(f"ratio {high} workers / {low} worker (median / p99; target <= 4x)")
        for size in sizes:
            one = next(row for row in rows if row["workers"] == low and row["size"] == size)
            many = next(row for row in rows if row["workers"] == high and row["size"] == size)
            ratios = {name: {"median": many[name]["median_ms"] / one[name]["median_ms"],
                             "p99": many[name]["p99_ms"] / one[name]["p99_ms"]} for name, _, _ in FORMATS}
            results["ratios"][str(size)] = ratios
            cells = [f"{'':>17}", f"{size:>17.0e}"]
            cells += [f"{ratios[name]['median']:>7.2f}x /{ratios[name]['p99']:>6.2f}x" for name, _, _ in FORMATS]
            print(" | ".join(cells))
    print(f"total {results['seconds']:.0f} s")
    args.json.parent.mkdir(exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
