"""What recording one plain chat request costs, hot, in one process: time and instructions.

    taskset -c 1 .venv/bin/python -m benchmarks.record_cost            # timed, then callgrind (~2 min)
    taskset -c 1 .venv/bin/python -m benchmarks.record_cost --no-callgrind

Everything the request path records for a plain chat answer of ``--tokens`` tokens (16, the
RPS benchmark's), two ways over the same kernel:

* ``facts``: as the server records it: ``writer.admit`` (the model's running gauge, the
  endpoint's cells), ``writer.route_request`` (the KV worker's state, the engine's running
  gauge) and ``writer.finish`` (every series, vLLM's per-request histograms, one inter-token
  observation per planned gap), reading the request's ``RequestFacts``; the handler's own
  notes in the facts (arrival, end, first and last token) are set each time too.
* ``explicit``: the same kernel work through the registry's wrappers and ``writer.record``
  with its 26 arguments (``request_started``, ``endpoint_series``, ``routed`` with the
  worker's state, ``record``): the calls the request path made before the facts, without the
  recorder's own Python around the last one (reading the exchange, the 499 and stream rules),
  so the old way's figure here is below what it cost in the server.

Timed: rounds of 2,000 requests, the two ways alternated (first one, then the other), medians
and the median of the per-round ratios: a busy machine moves both alike. Callgrind: the
instructions one recorded request costs (a run of 22,000 less a run of 2,000, so start-up
cancels), which a busy machine does not move at all. Needs valgrind for the second part.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from fakeai.metrics import MetricsRegistry
from fakeai.region import RequestFacts

MODEL, ENDPOINT = "openai/gpt-oss-120b", "/v1/chat/completions"
STATE = (12, 4096, 1, 0)
"""A KV worker's (blocks, capacity, running, evictions), as the router publishes it."""


def recording_loop(way: str, tokens: int) -> Callable[[int], None]:
    """A function recording ``count`` requests the ``way`` given, into a registry of its own."""
    registry = MetricsRegistry(window_seconds=5.0)
    writer = registry.writer
    offsets = [0.02 + 0.01 * index for index in range(tokens)]
    if way == "facts":
        facts = RequestFacts()
        registry.admit(facts, MODEL, ENDPOINT)  # the model's name mapped, once
        facts.prompt_tokens, facts.completion_tokens, facts.longest, facts.max_tokens, facts.n = (
            100, tokens, tokens, tokens, 1)
        facts.finish_reason, facts.status, facts.offsets, facts.choice_tokens = "length", 200, offsets, [tokens]
        admit, route, finish = writer.admit, writer.route_request, writer.finish

        def run(count: int) -> None:
            for index in range(count):
                now = 100.0 + index * 1e-4
                facts.started, facts.finished_at = now, now + 0.05
                facts.first_token_at, facts.last_token_at = now + offsets[0], now + offsets[-1]
                admit(facts, MODEL, ENDPOINT)
                route(facts, 0, STATE, 100, 64, 64)
                finish(facts, STATE, None)

        return run
    start, series, routed = registry.request_started, registry.endpoint_series, registry.routed
    record, choice_tokens, nan = writer.record, [tokens], float("nan")

    def run_explicit(count: int) -> None:
        for index in range(count):
            now = 100.0 + index * 1e-4
            model = start(MODEL)
            endpoint = series(ENDPOINT)
            engine = routed(model, 0, STATE)
            record(now + 0.05, 0.05, 200, 100, tokens, endpoint, model, 0.02, nan, "length", 0, 0, 100, 64, 64,
                   STATE, engine, offsets[-1] - offsets[0], 1, tokens, tokens, offsets, choice_tokens)

    return run_explicit


def timed(tokens: int, rounds: int, count: int = 2_000) -> None:
    loops = {way: recording_loop(way, tokens) for way in ("facts", "explicit")}
    times: dict[str, list[float]] = {way: [] for way in loops}
    for round_index in range(rounds):
        order = ("facts", "explicit") if round_index % 2 else ("explicit", "facts")
        for way in order:
            started = time.perf_counter()
            loops[way](count)
            times[way].append((time.perf_counter() - started) / count * 1e9)
    for way, values in times.items():
        print(f"{way:<9} median {statistics.median(values):6.0f} ns a request "
              f"(rounds' p10 {statistics.quantiles(values, n=10)[0]:.0f}, p90 {statistics.quantiles(values, n=10)[-1]:.0f})")
    ratio = statistics.median(a / b for a, b in zip(times["facts"], times["explicit"], strict=True))
    print(f"facts / explicit, median of the rounds' ratios: {ratio:.3f}")


def instructions(way: str, tokens: int) -> float:
    def total(count: int) -> int:
        with tempfile.TemporaryDirectory() as directory:
            out = os.path.join(directory, "callgrind.out")
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m",
                            "benchmarks.record_cost", "--run", way, "--tokens", str(tokens), "--count", str(count)],
                           check=True, capture_output=True)
            with open(out) as counts:
                return next(int(line.split()[1]) for line in counts if line.startswith("totals:"))
    return (total(22_000) - total(2_000)) / 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--run", choices=("facts", "explicit"), help=argparse.SUPPRESS)  # callgrind's child
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        recording_loop(args.run, args.tokens)(args.count)
        return
    timed(args.tokens, args.rounds)
    if not args.no_callgrind:
        if shutil.which("valgrind") is None:
            raise SystemExit("valgrind is not installed")
        for way in ("facts", "explicit"):
            print(f"{way:<9} {instructions(way, args.tokens):8,.0f} instructions a request (callgrind)")


if __name__ == "__main__":
    main()
