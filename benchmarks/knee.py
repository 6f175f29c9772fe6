"""The saturation knee: a concurrency sweep against one engine with ``--max-num-seqs 64``.

    .venv/bin/python benchmarks/knee.py [--quick] [--levels 8,16,...] [--seconds 8]

One server (pinned to core 0, ``harness``), one simulated engine (``--kv-workers 1``) that runs
at most 64 requests at once, 10 ms decode steps, 20 ms before a request reaches the engine,
no jitter. Closed-loop clients on core 1: at each concurrency C, C users each send a streamed
chat completion of exactly 50 tokens and send the next one as soon as it ends, for a warm-up
and then ``--seconds`` of measurement. Per level it reports:

* the clients' throughput (requests and tokens per second) and TTFT (p50, p99), from requests
  sent and finished inside the measurement;
* the server's own figures over the same interval: the mean queue time (the change of
  ``vllm:request_queue_time_seconds``' sum over its count) and the mean of
  ``vllm:num_requests_waiting`` and ``_running`` sampled every 100 ms;
* what the clients' timings alone say of the queue: the mean TTFT less the mean TTFT at the
  lowest level (the unloaded engine), and by Little's law the mean number waiting (the
  clients' request rate x that queue time).

Below 64 the batch is not full: throughput grows with C and TTFT stays flat; past 64 the
throughput flattens at the engine's rate (64 requests / 50 steps of 10 ms = 128 requests/s)
and TTFT grows by the queue (C - 64) / 128 s. Writes ``benchmarks/results/knee.json`` and the
plot ``docs/knee.svg`` (an SVG written here: the project carries no plotting library).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import harness  # noqa: E402
from benchmarks.svgplot import Chart, write_svg  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MAX_NUM_SEQS = 64
TOKENS = 50
ITL_MS = 10.0
TTFT_MS = 20.0
SERVER_FLAGS = (
    "--kv-workers", "1", "--max-num-seqs", str(MAX_NUM_SEQS), "--itl-ms", str(ITL_MS), "--ttft-ms", str(TTFT_MS),
    "--itl-jitter", "0", "--ttft-jitter", "0", "--models", "openai/gpt-oss-120b", "--window-seconds", "60",
)
BODY = json.dumps({"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "Hello, how are you?"}],
                   "max_tokens": TOKENS, "ignore_eos": True, "stream": True}).encode()


class _Request:
    """One streamed request: when it was sent, its first token, its end, its tokens."""

    __slots__ = ("ended", "first", "sent", "tokens")

    def __init__(self) -> None:
        self.sent = time.perf_counter()
        self.first = self.ended = 0.0
        self.tokens = 0


class _User(asyncio.Protocol):
    """One client's keep-alive connection, one streamed request at a time (as benchmark clients
    such as AIPerf send them). A response ends with its ``[DONE]`` event and the chunked body's
    last chunk."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.current: _Request | None = None
        self.done: asyncio.Future[None] | None = None
        self.tail = b""
        self.closed = False

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def send(self, request: bytes) -> asyncio.Future[None]:
        self.current = _Request()
        self.done = asyncio.get_running_loop().create_future()
        self.tail = b""
        self.transport.write(request)  # type: ignore[union-attr]
        return self.done

    def data_received(self, data: bytes) -> None:
        current = self.current
        if current is None:
            return
        count = data.count(b'"content":"')
        if count:
            if not current.tokens:
                current.first = time.perf_counter()
            current.tokens += count
        self.tail = (self.tail + data)[-64:]
        if b"[DONE]" in self.tail and self.tail.endswith(b"\r\n0\r\n\r\n"):
            current.ended = time.perf_counter()
            self.current = None
            if self.done is not None and not self.done.done():
                self.done.set_result(None)

    def connection_lost(self, exc) -> None:  # type: ignore[override]
        self.closed = True
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


async def _phase(host: str, port: int, concurrency: int, warmup: float, seconds: float) -> dict:
    loop = asyncio.get_running_loop()
    request = harness.chat_request(host, BODY, close=False)
    start = time.perf_counter()
    measure_from, measure_to = start + warmup, start + warmup + seconds
    finished: list[_Request] = []
    samples: list[tuple[float, float]] = []

    async def user(delay: float) -> None:
        await asyncio.sleep(delay)
        connection: _User | None = None
        while time.perf_counter() < measure_to:
            if connection is None or connection.closed:  # the server closes an idle one after 5 s
                _, connection = await loop.create_connection(_User, host, port)  # type: ignore[assignment]
            sent = connection.send(request)  # type: ignore[union-attr]
            measured = connection.current  # type: ignore[union-attr]
            await sent
            finished.append(measured)  # type: ignore[arg-type]
        if connection is not None and connection.transport is not None:
            connection.transport.close()

    async def server_figures() -> tuple[dict, dict]:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as client:
            await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
            before = _families((await client.get("/metrics/prometheus")).text)
            while time.perf_counter() < measure_to:
                document = (await client.get("/metrics", headers={"Accept": "application/json"})).json()
                samples.append((document["summary"]["requests_running"], document["summary"]["requests_waiting"]))
                await asyncio.sleep(0.1)
            after = _families((await client.get("/metrics/prometheus")).text)
            return before, after

    figures = asyncio.ensure_future(server_figures())
    await asyncio.gather(*(user(index * 0.002) for index in range(concurrency)))
    before, after = await figures
    counted = [r for r in finished if r.tokens == TOKENS and measure_from <= r.sent and r.ended <= measure_to]
    ttfts = sorted(r.first - r.sent for r in counted)
    queue_count = after["vllm:request_queue_time_seconds_count"] - before["vllm:request_queue_time_seconds_count"]
    queue_sum = after["vllm:request_queue_time_seconds_sum"] - before["vllm:request_queue_time_seconds_sum"]
    ttft_count = after["vllm:time_to_first_token_seconds_count"] - before["vllm:time_to_first_token_seconds_count"]
    ttft_sum = after["vllm:time_to_first_token_seconds_sum"] - before["vllm:time_to_first_token_seconds_sum"]
    # every request that finished in the interval counts in throughput
    done_inside = [r for r in finished if r.tokens == TOKENS and measure_from <= r.ended <= measure_to]
    return {
        "concurrency": concurrency,
        "requests": len(counted),
        "requests_per_second": len(done_inside) / seconds,
        "tokens_per_second": len(done_inside) * TOKENS / seconds,
        "ttft_p50_s": _quantile(ttfts, 0.5),
        "ttft_p99_s": _quantile(ttfts, 0.99),
        "ttft_mean_s": statistics.fmean(ttfts) if ttfts else float("nan"),
        "server_queue_mean_s": queue_sum / queue_count if queue_count else float("nan"),
        "server_ttft_mean_s": ttft_sum / ttft_count if ttft_count else float("nan"),
        "server_requests_finished": queue_count,
        "server_running_mean": statistics.fmean(s[0] for s in samples) if samples else float("nan"),
        "server_waiting_mean": statistics.fmean(s[1] for s in samples) if samples else float("nan"),
        "incomplete": sum(1 for r in finished if r.tokens != TOKENS),
    }


def _families(text: str) -> dict[str, float]:
    """The unlabelled-by-value samples of a Prometheus exposition, summed over label sets."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        values[name] = values.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return values


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def sweep(levels: list[int], warmup: float, seconds: float) -> list[dict]:
    import uvloop

    results = []
    with harness.server(harness.fakeai_command(*SERVER_FLAGS)) as base_url:
        host, port = base_url.removeprefix("http://").split(":")
        os.sched_setaffinity(0, {int(harness.LOAD_CPU)})
        try:
            for concurrency in levels:
                result = uvloop.run(_phase(host, int(port), concurrency, warmup, seconds))
                results.append(result)
                print(f"C={concurrency:4d}: {result['requests_per_second']:7.1f} req/s "
                      f"{result['tokens_per_second']:8.0f} tok/s  TTFT p50 {result['ttft_p50_s'] * 1000:7.1f} ms "
                      f"p99 {result['ttft_p99_s'] * 1000:7.1f} ms (mean {result['ttft_mean_s'] * 1000:6.1f}, server's "
                      f"{result['server_ttft_mean_s'] * 1000:6.1f})  server queue {result['server_queue_mean_s'] * 1000:7.1f}"
                      f" ms  running {result['server_running_mean']:5.1f} waiting {result['server_waiting_mean']:6.1f}",
                      flush=True)
        finally:
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    unloaded = results[0]["ttft_mean_s"]
    for result in results:
        result["client_queue_mean_s"] = max(result["ttft_mean_s"] - unloaded, 0.0)
        result["client_waiting_mean"] = result["requests_per_second"] * result["client_queue_mean_s"]
    return results


def plot(results: list[dict], path: Path) -> None:
    xs = [r["concurrency"] for r in results]
    throughput = Chart("Throughput (completion tokens/s)", "concurrent clients", "tokens/s")
    throughput.line("clients' throughput", xs, [r["tokens_per_second"] for r in results], "#0969da")
    throughput.marker(MAX_NUM_SEQS, "--max-num-seqs 64")
    ttft = Chart("Time to first token (ms)", "concurrent clients", "ms")
    ttft.line("p99, clients", xs, [r["ttft_p99_s"] * 1000 for r in results], "#cf222e")
    ttft.line("p50, clients", xs, [r["ttft_p50_s"] * 1000 for r in results], "#8250df")
    ttft.line("mean, server (vllm:time_to_first_token)", xs, [r["server_ttft_mean_s"] * 1000 for r in results],
              "#1a7f37")
    ttft.points("mean, clients", xs, [r["ttft_mean_s"] * 1000 for r in results], "#bf8700")
    ttft.marker(MAX_NUM_SEQS, "")
    queue = Chart("Queue time (ms)", "concurrent clients", "ms")
    queue.line("server (vllm:request_queue_time mean)", xs, [r["server_queue_mean_s"] * 1000 for r in results],
               "#1a7f37")
    queue.points("clients (mean TTFT - unloaded TTFT)", xs, [r["client_queue_mean_s"] * 1000 for r in results],
                 "#bf8700")
    queue.marker(MAX_NUM_SEQS, "")
    waiting = Chart("Requests waiting", "concurrent clients", "requests")
    waiting.line("server (vllm:num_requests_waiting mean)", xs, [r["server_waiting_mean"] for r in results], "#1a7f37")
    waiting.points("clients (Little's law: rate x queue time)", xs, [r["client_waiting_mean"] for r in results],
                   "#bf8700")
    waiting.marker(MAX_NUM_SEQS, "")
    write_svg(path, [throughput, ttft, queue, waiting],
              title=f"fakeai engine model: --max-num-seqs {MAX_NUM_SEQS}, {TOKENS}-token answers, {ITL_MS:g} ms steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="four levels, 3 s each")
    parser.add_argument("--levels", default="8,16,32,48,64,80,96,128,160,192")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "knee.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "knee.svg")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    seconds, warmup = args.seconds, args.warmup
    if args.quick:
        levels, seconds, warmup = [8, 64, 96, 128], 3.0, 1.0
    results = sweep(levels, warmup, seconds)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"server_flags": list(SERVER_FLAGS), "tokens": TOKENS, "levels": results},
                                      indent=2) + "\n")
    plot(results, args.plot)
    print(f"wrote {args.output} and {args.plot}")


if __name__ == "__main__":
    main()
