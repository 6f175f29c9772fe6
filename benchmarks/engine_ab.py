"""What the engine model costs the paths that do not use it, and what it costs when on: A/B.

    .venv/bin/python benchmarks/engine_ab.py --base-python /path/to/other/venv/bin/python [--pairs 3]

``--base-python`` is the interpreter of another fakeai installation (say, main's, built in a
virtual environment of its own); this checkout's is the one running the script. Every server
is pinned to core 0 and started with ``python -P -m fakeai serve`` (so neither imports the
other's source from the working directory); the load generators run on core 1 (``harness``).
In order-alternated pairs, base then this or this then base:

* plain chat, in a process of its own over the ASGI interface (no network): CPU microseconds
  per request (what fakeai's own code costs, least disturbed by other load on the machine);
* paced streams, the same way: CPU microseconds per token of 100 streams of 100 tokens at a
  time (TTFT 5 ms, ITL 2 ms), the pacer and the engine model as the server runs them;
* plain chat RPS: wrk, 64 connections, ``--zero-latency``, 16-token answers;
* paced streaming: 100 streams of 100 tokens (TTFT 20 ms, ITL 10 ms, no jitter) from the raw
  asyncio client: the client-observed TTFT and inter-token gap errors (p50, p99) and the
  server's CPU time per 1,000 tokens;

and, for this checkout alone, the same paced streams (both ways) with the engine model on
(``--max-num-seqs 256``: nothing waits, every token is sampled by the engine's steps).
Prints medians over the pairs and the ratios this / base; writes
``benchmarks/results/engine_ab.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import harness  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHAT = ('{"model":"openai/gpt-oss-120b","messages":[{"role":"user","content":"Hello!"}],'
        '"max_tokens":16,"ignore_eos":true}')
STREAM = (b'{"model":"openai/gpt-oss-120b","messages":[{"role":"user","content":"hi"}],"max_tokens":100,'
          b'"ignore_eos":true,"stream":true}')
PACED = ("--ttft-ms", "20", "--itl-ms", "10", "--ttft-jitter", "0", "--itl-jitter", "0", "--prefill-ms-per-token", "0")


def command(python: str, *flags: str) -> list[str]:
    return [python, "-P", "-m", "fakeai", "serve", "--port", "{port}", "--log-level", "warning", *flags]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


IN_PROCESS = r"""
import asyncio, time
from fakeai.app import create_app
from fakeai.config import Settings

body = %r
scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
         "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
         "root_path": "", "headers": [(b"content-length", str(len(body)).encode())],
         "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}

async def receive():
    return {"type": "http.request", "body": body, "more_body": False}

async def send(message):
    pass

async def run():
    app = create_app(Settings(zero_latency=True))
    for _ in range(3000):
        await app(dict(scope), receive, send)
    started = time.process_time()
    for _ in range(%d):
        await app(dict(scope), receive, send)
    print((time.process_time() - started) / %d * 1e6)

asyncio.run(run())
"""


IN_PROCESS_PACED = r"""
import asyncio, time
from fakeai.app import create_app
from fakeai.config import Settings

body = %r
scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
         "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
         "root_path": "", "headers": [(b"content-length", str(len(body)).encode())],
         "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}
tokens = [0]

async def one(app):
    delivered = [False]
    never = asyncio.get_running_loop().create_future()

    async def receive():
        if not delivered[0]:
            delivered[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never

    async def send(message):
        if message["type"] == "http.response.body":
            tokens[0] += message.get("body", b"").count(b'"content":')

    await app(dict(scope), receive, send)

async def run():
    app = create_app(Settings(**%r))
    app.state.engine.start()  # the timerfd pacer, as at start-up
    await asyncio.gather(*(one(app) for _ in range(20)))
    tokens[0] = 0
    started = time.process_time()
    for _ in range(%d):
        await asyncio.gather(*(one(app) for _ in range(100)))
    print((time.process_time() - started) / tokens[0] * 1e6)

asyncio.run(run())
"""
PACED_SETTINGS = {"ttft_ms": 5.0, "itl_ms": 2.0, "ttft_jitter": 0.0, "itl_jitter": 0.0, "prefill_ms_per_token": 0.0}


def in_process_paced_us(python: str, rounds: int = 5, **settings: object) -> float:
    """CPU microseconds per streamed token of 100 paced streams at a time (5 ms TTFT, 2 ms ITL,
    100 tokens each), in a process of its own over the ASGI interface (no network)."""
    code = IN_PROCESS_PACED % (STREAM, {**PACED_SETTINGS, **settings}, rounds)
    output = subprocess.run(["taskset", "-c", harness.SERVER_CPU, python, "-P", "-c", code], capture_output=True,
                            text=True, check=True, cwd="/")
    return float(output.stdout.strip().splitlines()[-1])


def in_process_us(python: str, requests: int = 20_000) -> float:
    """CPU microseconds per plain chat request over the ASGI interface, in a process of its own
    (no network, no server: what fakeai itself costs, and little of the machine's load)."""
    code = IN_PROCESS % (CHAT.encode(), requests, requests)
    output = subprocess.run(["taskset", "-c", harness.SERVER_CPU, python, "-P", "-c", code], capture_output=True,
                            text=True, check=True, cwd="/")
    return float(output.stdout.strip().splitlines()[-1])


def plain_rps(python: str, seconds: int) -> float:
    with harness.server(command(python, "--zero-latency")) as url:
        harness.wrk(url, CHAT, seconds=2)  # warm-up
        return harness.wrk(url, CHAT, seconds=seconds)["rps"]


def paced_streams(python: str, *flags: str, streams: int = 100) -> dict:
    with harness.server(command(python, *PACED, *flags)) as url:
        harness.stream_timings(url, STREAM, 10)  # warm-up
        cpu = url.cpu_seconds()
        results = harness.stream_timings(url, STREAM, streams, stagger=0.001)
        cpu = url.cpu_seconds() - cpu
    ttft_errors = [(ttft - 0.020) * 1000 for ttft, _ in results]
    gap_errors = [(gap - 0.010) * 1000 for _, gaps in results for gap in gaps]
    tokens = sum(len(gaps) + 1 for _, gaps in results)
    return {"ttft_error_p50_ms": _quantile(ttft_errors, 0.5), "ttft_error_p99_ms": _quantile(ttft_errors, 0.99),
            "gap_error_p50_ms": _quantile(gap_errors, 0.5), "gap_error_p99_ms": _quantile(gap_errors, 0.99),
            "cpu_ms_per_1000_tokens": cpu * 1e6 / tokens, "tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-python", required=True)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    this = sys.executable
    runs: dict[str, list] = {"base_rps": [], "this_rps": [], "base_paced": [], "this_paced": [], "engine_paced": [],
                             "base_us": [], "this_us": [], "base_token_us": [], "this_token_us": [],
                             "engine_token_us": []}
    for pair in range(args.pairs):
        order = (("base", args.base_python), ("this", this)) if pair % 2 == 0 else (("this", this),
                                                                                    ("base", args.base_python))
        for name, python in order:
            runs[f"{name}_us"].append(in_process_us(python))
            runs[f"{name}_token_us"].append(in_process_paced_us(python))
            runs[f"{name}_rps"].append(plain_rps(python, args.seconds))
            runs[f"{name}_paced"].append(paced_streams(python))
        runs["engine_paced"].append(paced_streams(this, "--max-num-seqs", "256"))
        runs["engine_token_us"].append(in_process_paced_us(this, max_num_seqs=256))
        print(f"pair {pair + 1}: rps base {runs['base_rps'][-1]:.0f} this {runs['this_rps'][-1]:.0f}; in process "
              f"base {runs['base_us'][-1]:.1f} us this {runs['this_us'][-1]:.1f} us", flush=True)

    def median(key: str, field: str | None = None) -> float:
        values = runs[key] if field is None else [run[field] for run in runs[key]]
        return statistics.median(values)

    fields = ("ttft_error_p50_ms", "ttft_error_p99_ms", "gap_error_p50_ms", "gap_error_p99_ms",
              "cpu_ms_per_1000_tokens")
    summary = {
        "plain_cpu_us_per_request_in_process": {"base": median("base_us"), "this": median("this_us"),
                                                "ratio": median("this_us") / median("base_us")},
        "paced_cpu_us_per_token_in_process": {
            "base": median("base_token_us"), "this": median("this_token_us"),
            "engine_model": median("engine_token_us"), "ratio": median("this_token_us") / median("base_token_us"),
            "engine_model_ratio": median("engine_token_us") / median("base_token_us")},
        "plain_rps": {"base": median("base_rps"), "this": median("this_rps"),
                      "ratio": median("this_rps") / median("base_rps")},
        "paced": {field: {"base": median("base_paced", field), "this": median("this_paced", field),
                          "engine_model": median("engine_paced", field)} for field in fields},
    }
    summary["paced_cpu_ratio_this_over_base"] = (summary["paced"]["cpu_ms_per_1000_tokens"]["this"]
                                                 / summary["paced"]["cpu_ms_per_1000_tokens"]["base"])
    summary["paced_cpu_ratio_engine_model_over_base"] = (summary["paced"]["cpu_ms_per_1000_tokens"]["engine_model"]
                                                         / summary["paced"]["cpu_ms_per_1000_tokens"]["base"])
    print(json.dumps(summary, indent=2))
    output = ROOT / "benchmarks" / "results" / "engine_ab.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"summary": summary, "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
