"""Scrape latency against the number of samples in the window, in one process.

    taskset -c 1 .venv/bin/python benchmarks/scrape_latency.py [--sizes 1e3,1e4,1e5,1e6] [--repeat 15]

For each size N a registry (one process, its own region) gets N finished requests in the
window: two endpoints alternately, one in three a stream with a TTFT, latencies lognormal,
token counts random integers; so each of the latency, prompt and completion windows (over
both endpoints) holds N samples and the streaming windows N/3. The window is made long
enough to hold them all (``window_seconds`` = N seconds, one request a second of the fake
clock) and ``max_samples`` large enough. Then, every figure the median of ``--repeat`` runs:

* ``summary``: the p50/p90/p99, count, sum and extremes of one endpoint's latency window;
* ``snapshot``: ``MetricsRegistry.snapshot()`` with nothing new to replay (a read alone);
* each format: a snapshot and its rendering (JSON, Prometheus, OpenMetrics, CSV, ``/health/detailed``)
  and ``/health`` (``registry.health()``): what one scrape costs on the event loop;
* ``longest step, cold``: the longest step of a snapshot taken in steps (what
  ``snapshot_async`` holds the event loop for at most, a slice being at least one step),
  with 200 requests recorded since the previous read and the CPU's caches flushed first
  (64 MB written), as serving leaves them; in CPU time (``time.thread_time``), so that a
  step the machine's other work preempted does not count longer than it is;
* ``replay``: ``--batch`` more requests recorded (the window slides: as many leave it),
  then the snapshot that replays them, less a snapshot with nothing to replay; per request
  (every window a request feeds) and per sample pushed.

The kernel in use is the one ``fakeai`` resolves to: run the script from another checkout
(``PYTHONPATH=/path/to/other/checkout``) to measure another kernel in the same conditions.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import time
from functools import partial
from pathlib import Path


from fakeai import window as window_module
from fakeai.exporters import render_csv, render_detailed_health, render_json, render_prometheus
from fakeai.metrics import MetricsRegistry

ENDPOINTS = ("/v1/chat/completions", "/v1/completions")
QS = (0.5, 0.9, 0.99)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(registry: MetricsRegistry, clock: Clock, rng: random.Random, index: int) -> int:
    """One finished request at ``index`` seconds on the fake clock; the samples it pushes."""
    clock.now = float(index)
    stream = index % 3 == 0
    registry.request_started("m")
    if stream:
        registry.stream_started()
    registry.record(
        ENDPOINTS[index % 2], rng.lognormvariate(-1.0, 0.6), 500 if index % 50 == 0 else 200,
        rng.randint(1, 4000), rng.randint(1, 1000),
        ttft=0.02 + rng.random() * 1e-3 if stream else None,
        stream_completed=True if stream else None, model="m", finish_reason="stop",
    )
    return 3 + (index % 50 == 0) + 3 * stream  # latency, prompt, completion, errors; ttft, itl, tps


def _median_seconds(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


_FLUSH = bytearray(64 << 20)


def _longest_step_cold(registry: MetricsRegistry, clock: Clock, rng: random.Random, until: int) -> float:
    """200 requests recorded (up to ``until``), the caches flushed, then a snapshot step by
    step: its longest step."""
    for index in range(until - 199, until + 1):
        _record(registry, clock, rng, index)
    for offset in range(0, len(_FLUSH), 64):
        _FLUSH[offset] = 1
    steps = registry._snapshot_steps()
    longest = 0.0
    clock = time.thread_time  # CPU time: a step the machine's other work preempted is not longer
    while True:
        started = clock()
        try:
            next(steps)
        except StopIteration:
            return max(longest, clock() - started)
        longest = max(longest, clock() - started)


def measure(size: int, repeat: int, batch: int) -> dict[str, float]:
    clock = Clock()
    rng = random.Random(size)
    registry = MetricsRegistry(window_seconds=float(size), max_samples=2 * size + 2 * batch, clock=clock,
                               started_at=0.0)
    for index in range(1, size + 1):
        _record(registry, clock, rng, index)
    registry.snapshot()  # replays the burst
    figures: dict[str, float] = {}
    reader = next(iter(registry.regions.readers(clock.now)))[0]
    latency = reader.endpoints[min(reader.endpoints)][0]
    summarize = getattr(window_module, "summarize", None)
    if summarize is not None:
        figures["summary"] = _median_seconds(lambda: summarize([latency], clock.now, QS), repeat)
    else:
        figures["summary"] = _median_seconds(lambda: latency.summary(clock.now, QS), repeat)
    figures["snapshot"] = _median_seconds(registry.snapshot, repeat)
    for name, render in (("json", render_json), ("prometheus", render_prometheus),
                         ("openmetrics", partial(render_prometheus, openmetrics=True)), ("csv", render_csv),
                         ("health/detailed", render_detailed_health)):
        figures[name] = _median_seconds(lambda render=render: render(registry.snapshot()), repeat)
    figures["health"] = _median_seconds(registry.health, repeat)
    index = size
    figures["longest step, cold"] = statistics.median(
        _longest_step_cold(registry, clock, rng, index := index + 200) for _ in range(repeat))
    per_request, per_sample = [], []
    for _ in range(max(3, repeat // 3)):
        pushed = 0
        for _ in range(batch):
            index += 1
            pushed += _record(registry, clock, rng, index)
        with_replay = _median_seconds(registry.snapshot, 1)
        without = _median_seconds(registry.snapshot, 3)
        per_request.append((with_replay - without) / batch)
        per_sample.append((with_replay - without) / pushed)
    figures["replay per request"] = statistics.median(per_request)
    figures["replay per sample"] = statistics.median(per_sample)
    figures["window bytes"] = float(sum(getattr(window, "memory_bytes", 0) for window in reader.windows()))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1e3,1e4,1e5,1e6", help="samples in the window, comma-separated")
    parser.add_argument("--repeat", type=int, default=15, help="runs of each read; the median is reported")
    parser.add_argument("--batch", type=int, default=1000, help="requests recorded before a replay is timed")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    sizes = [int(float(size)) for size in args.sizes.split(",")]
    results = {}
    print(f"kernel: {window_module.KERNEL} ({window_module.SlidingWindow.__module__}), medians of {args.repeat}")
    header = ("samples", "summary", "snapshot", "json", "prometheus", "openmetrics", "csv", "health/detailed",
              "health", "longest step", "replay/request", "replay/sample", "window MB")
    print(" | ".join(f"{column:>15}" for column in header))
    for size in sizes:
        figures = measure(size, args.repeat, args.batch)
        results[size] = figures
        cells = [f"{size:>15.0e}"]
        for name in ("summary", "snapshot", "json", "prometheus", "openmetrics", "csv", "health/detailed",
                     "health", "longest step, cold"):
            cells.append(f"{figures[name] * 1e3:>12.3f} ms")
        cells.append(f"{figures['replay per request'] * 1e9:>12.0f} ns")
        cells.append(f"{figures['replay per sample'] * 1e9:>12.0f} ns")
        cells.append(f"{figures['window bytes'] / 1e6:>15.1f}")
        print(" | ".join(cells), flush=True)
    print(f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps({"kernel": window_module.KERNEL, "figures": results}, indent=2))


if __name__ == "__main__":
    main()
