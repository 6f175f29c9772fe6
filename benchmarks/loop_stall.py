"""The worst event-loop stall one request at fakeai's limits causes, and what it costs in memory.

    python benchmarks/loop_stall.py            # every case, default limits
    python benchmarks/loop_stall.py --repeat 3 # each case three times (the worst is kept)

fakeai is served by uvicorn (uvloop, httptools) on this process's event loop, next to a
probe that asks to wake every millisecond and notes how late it wakes: the loop's lag. Each
case sends the largest requests the default limits allow, from a client in another process
(so the client's own work never stalls the server's loop); the probe's worst lag while the
case runs is the longest the server kept everyone else waiting. Also reported: bytes
received, seconds, and how much the process's peak RSS (VmHWM) grew during the case.

An idle loop's lag (the first row) is the probe's own resolution: libuv's timers have
millisecond granularity, and other processes share the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

import uvicorn
import uvloop

from fakeai.app import create_app
from fakeai.config import Settings

MODEL = "openai/gpt-oss-120b"
EMBEDDING_MODEL = "text-embedding-3-small"
LIMITS = Settings()
CONTEXT = LIMITS.max_context_tokens
PROMPT_TOKENS = 7  # "hi" as one user message, rendered with the chat template
LONGEST = CONTEXT - PROMPT_TOKENS
PER_CHOICE = min(LONGEST, LIMITS.max_generated_tokens_per_request // 8)

_CLIENT = r"""
import json, sys, time, httpx
url, limit = sys.argv[1], int(sys.argv[2])
body = sys.stdin.buffer.read()
started = time.monotonic()
received = 0
with httpx.Client(timeout=600) as client:
    with client.stream("POST", url, content=body, headers={"content-type": "application/json"}) as response:
        for chunk in response.iter_raw(65536):
            received += len(chunk)
            if limit and received >= limit:
                break
print(json.dumps({"status": response.status_code, "bytes": received, "seconds": time.monotonic() - started}))
"""


def chat(**fields: object) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **fields}


# (name, zero latency?, path, body, bytes to read before leaving (0: all))
CASES = [
    ("chat stream n=8 x max_tokens, zero latency", True, "/v1/chat/completions",
     chat(n=8, max_tokens=PER_CHOICE, ignore_eos=True, stream=True), 0),
    ("chat plain n=8 x max_tokens, zero latency", True, "/v1/chat/completions",
     chat(n=8, max_tokens=PER_CHOICE, ignore_eos=True), 0),
    ("chat stream n=1 x context, with latency (planning; left after 2 kB)", False, "/v1/chat/completions",
     chat(max_tokens=LONGEST, ignore_eos=True, stream=True), 2000),
    ("completions 1024 prompts x 1024 tokens, zero latency", True, "/v1/completions",
     {"model": MODEL, "prompt": ["hi"] * LIMITS.max_prompts_per_request,
      "max_tokens": LIMITS.max_generated_tokens_per_request // LIMITS.max_prompts_per_request, "ignore_eos": True}, 0),
    ("completions echo, 8 prompts of 32k tokens x n=4", True, "/v1/completions",
     {"model": MODEL, "prompt": ["abcd" * 32_000] * 8, "n": 4, "max_tokens": 768, "echo": True, "ignore_eos": True},
     0),
    ("completions 1024 prompts x 292 tokens (prompt tokens at the limit)", True, "/v1/completions",
     {"model": MODEL, "prompt": [f"{i:08d}" * 146 for i in range(1024)], "max_tokens": 1}, 0),
    ("refused: completions 9.6 MB body, 1024 prompts of 2.3k tokens", True, "/v1/completions",
     {"model": MODEL, "prompt": [f"{i:08d}" * 1170 for i in range(1024)], "max_tokens": 1}, 0),
    ("refused (413): completions 14.7 MB body, 4.9M token ids", True, "/v1/completions",
     {"model": MODEL, "prompt": [1] * 4_900_000, "max_tokens": 1}, 0),
    ("embeddings 2048 inputs x 3072 dimensions, float", True, "/v1/embeddings",
     {"model": EMBEDDING_MODEL, "input": [f"text {i}" for i in range(2048)], "dimensions": 3072}, 0),
    ("embeddings 2048 inputs x 3072 dimensions, base64", True, "/v1/embeddings",
     {"model": EMBEDDING_MODEL, "input": [f"text {i}" for i in range(2048)], "dimensions": 3072,
      "encoding_format": "base64"}, 0),
    ("refused: chat stream n=128 x 131000 tokens", True, "/v1/chat/completions",
     chat(n=128, max_tokens=131_000, ignore_eos=True, stream=True), 0),
    ("refused: embeddings 3000 inputs x 16384 dimensions", True, "/v1/embeddings",
     {"model": EMBEDDING_MODEL, "input": ["x"] * 3000, "dimensions": 16384}, 0),
]


def peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class LagProbe:
    """Wakes every millisecond and keeps the worst lateness since the last ``reset``."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.perf_counter() - asked - 0.001)

    def reset(self) -> None:
        self.worst = 0.0

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def serve(settings: Settings) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=0, loop="none", http="httptools", log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, port


async def run_case(port: int, path: str, body: dict, leave_after: int, probe: LagProbe) -> dict:
    payload = json.dumps(body).encode()
    client = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CLIENT, f"http://127.0.0.1:{port}{path}", str(leave_after),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    await asyncio.sleep(0.5)  # the client has started (forking it stalls this loop: not the server's doing)
    rss_before = peak_rss_mib()
    probe.reset()
    output, _ = await client.communicate(payload)
    await asyncio.sleep(0.05)  # the server finishes (records) what the client saw end
    result = json.loads(output)
    result["lag_ms"] = probe.worst * 1000
    result["rss_growth_mib"] = peak_rss_mib() - rss_before
    return result


async def main(repeat: int) -> None:
    probe = LagProbe()
    probe.start()
    await asyncio.sleep(0.5)
    probe.reset()
    await asyncio.sleep(2.0)
    idle = probe.worst * 1000
    rows = [("idle loop (probe resolution)", "", "", "", f"{idle:.1f}", "")]
    for zero_latency in (True, False):
        server, task, port = await serve(Settings(zero_latency=zero_latency))
        for name, zero, path, body, leave_after in CASES:
            if zero != zero_latency:
                continue
            worst: dict | None = None
            for _ in range(repeat):
                result = await run_case(port, path, body, leave_after, probe)
                if worst is None or result["lag_ms"] > worst["lag_ms"]:
                    worst = result
            assert worst is not None
            rows.append((name, str(worst["status"]), f"{worst['bytes'] / 1e6:.1f}", f"{worst['seconds']:.2f}",
                         f"{worst['lag_ms']:.1f}", f"{worst['rss_growth_mib']:.0f}"))
        server.should_exit = True
        await task
    probe.stop()
    header = ("case", "status", "MB received", "seconds", "worst loop lag ms", "peak RSS growth MiB")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * width for width in widths), *rows]:
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case; the worst is reported")
    arguments = parser.parse_args()
    uvloop.install()
    asyncio.run(main(arguments.repeat))
