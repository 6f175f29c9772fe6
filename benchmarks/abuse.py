"""Hostile and careless clients against a real server under a memory limit: does it hold?

Runs ``fakeai serve`` pinned to one core under ``prlimit --as`` (an address-space limit: a
server that tried to build a gigabyte reply would fail, not swap), drives each abuse from
the other core with raw asyncio sockets, and reports for every phase:

* the server's peak resident memory (VmHWM of every server process),
* the worst and the 99th-percentile latency of a probe that asks ``/health`` every 20 ms
  throughout (a stalled event loop or a starved accept queue shows here),
* whether every request the phase sent was counted, under its endpoint, with the status the
  client saw (or, for clients that left, 499), and whether any 5xx was answered.

Phases: oversized requests (each limit exceeded by a tiny body), a disconnect storm (clients
that leave mid-stream and mid-wait), never-reading streaming clients, slowloris (request
heads trickled a byte at a time, more connections than the server's limit), malformed HTTP.

Usage: ``python benchmarks/abuse.py [--memory-limit 3G] [--json results.json]``. It takes
about two minutes; every server it starts binds 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.harness import PYTHON, server  # noqa: E402

CHAT, COMPLETIONS, EMBEDDINGS = "/v1/chat/completions", "/v1/completions", "/v1/embeddings"
MODEL = "openai/gpt-oss-120b"


# -- raw HTTP -------------------------------------------------------------------------------


def request_bytes(path: str, body: dict | bytes, *, close: bool = True) -> bytes:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"content-length: {len(payload)}\r\n{'connection: close' if close else ''}\r\n\r\n")
    return head.encode() + payload


async def exchange(port: int, raw: bytes, *, read: bool = True, timeout: float = 60.0) -> int:
    """Send ``raw`` on a new connection; the status line's code (0: closed without one)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        if not read:
            return 0
        data = await asyncio.wait_for(reader.read(), timeout)
        return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    except (ConnectionError, asyncio.TimeoutError):
        return 0
    finally:
        writer.close()


# -- what the server says -------------------------------------------------------------------


def counted(base_url: str) -> tuple[dict[str, int], dict[str, dict[str, int]], int, int]:
    """Requests per endpoint, errors per endpoint and status, completed and failed streams."""
    doc = httpx.get(base_url + "/metrics", timeout=30).json()
    requests = {path: figures["requests"] for path, figures in doc["totals"].items()}
    streams = doc["streaming_stats"]
    return requests, doc["errors_by_status"], streams["completed_streams"], streams["failed_streams"]


def resident_peak_mb(pid: int) -> float:
    """VmHWM of the server and its children (workers), in MB."""
    total = 0
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            pids += [int(child) for child in listing.read().split()]
    except FileNotFoundError:
        pass
    for one in pids:
        try:
            with open(f"/proc/{one}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total / 1024


@dataclass
class Probe:
    """``/health`` every 20 ms on one keep-alive connection: latencies and failures."""

    port: int
    latencies: list[float] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)

    async def run(self, stop: asyncio.Event) -> None:
        raw = b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
        reader = writer = None
        while not stop.is_set():
            started = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(raw)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                await reader.readexactly(length)
                status = int(head.split(b" ", 2)[1])
                if status != 200:
                    self.failures[status] += 1
                self.latencies.append(time.perf_counter() - started)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, StopIteration, ValueError) as exc:
                self.failures[type(exc).__name__] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
            await asyncio.sleep(0.02)
        if writer is not None:
            writer.close()

    def summary(self) -> dict:
        ordered = sorted(self.latencies)
        return {
            "probes": len(ordered),
            "worst_ms": round(1000 * ordered[-1], 2) if ordered else None,
            "p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 2) if ordered else None,
            "median_ms": round(1000 * statistics.median(ordered), 2) if ordered else None,
            "failures": dict(self.failures),
        }


# -- the phases -----------------------------------------------------------------------------


@dataclass
class Sent:
    """What a phase sent: requests per endpoint and the status each should be counted with."""

    requests: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)  # (endpoint, status) -> count
    streams_failed: int = 0
    streams_completed: int = 0

    def add(self, endpoint: str, status: int, count: int = 1) -> None:
        self.requests[endpoint] += count
        self.statuses[(endpoint, status)] += count


async def oversized(port: int) -> Sent:
    """Each request is tiny on the wire and would be huge to answer: every one must be a 400."""
    sent = Sent()
    cases = [
        (EMBEDDINGS, {"model": "text-embedding-3-small", "input": ["x"] * 3000, "dimensions": 16384}),
        (CHAT, {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "n": 128, "max_tokens": 131000,
                "ignore_eos": True, "stream": True}),
        (COMPLETIONS, {"model": MODEL, "prompt": ["x"] * 10000, "n": 128, "max_tokens": 16}),
    ]
    for endpoint, body in cases:
        statuses = await asyncio.gather(*(exchange(port, request_bytes(endpoint, body)) for _ in range(10)))
        for status in statuses:
            sent.add(endpoint, status)
    return sent


async def disconnect_storm(port: int, clients: int = 400) -> Sent:
    """Clients that send a streamed or a plain request and leave before its end."""
    sent = Sent()
    stream = request_bytes(CHAT, {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                                  "max_tokens": 200, "ignore_eos": True, "stream": True})

    async def leave_mid_stream() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(stream)
        await reader.readuntil(b"data: ")  # the stream has started
        writer.transport.abort()  # a reset, as a killed client would

    await asyncio.gather(*(leave_mid_stream() for _ in range(clients)))
    sent.add(CHAT, 499, clients)
    sent.streams_failed += clients
    return sent


async def never_reading(port: int, clients: int = 100) -> Sent:
    """Zero-latency streams of long answers to clients whose receive buffers are never read."""
    sent = Sent()
    raw = request_bytes(CHAT, {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                               "max_tokens": 100_000, "ignore_eos": True, "stream": True})
    sockets = []
    for _ in range(clients):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(raw)
        sockets.append(sock)
    sent.add(CHAT, 499, clients)
    sent.streams_failed += clients
    return sent, sockets  # type: ignore[return-value]


async def slowloris(port: int, connections: int = 1100, seconds: float = 20.0) -> list[socket.socket]:
    """Request heads trickled a byte every second over more connections than the server takes."""
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    writers = []
    for _ in range(connections):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            break
        writers.append(writer)
    deadline = time.monotonic() + seconds
    offset = 0
    while time.monotonic() < deadline and offset < len(head):
        for writer in writers:
            if not writer.is_closing():
                writer.write(head[offset : offset + 1])
        offset += 1
        await asyncio.sleep(1.0)
    closed_by_server = sum(1 for writer in writers if writer.transport.is_closing() or writer.is_closing())
    for writer in writers:
        writer.close()
    return closed_by_server, len(writers)  # type: ignore[return-value]


MALFORMED = [
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n",
    b"GET /" + b"a" * 2_000_000 + b" HTTP/1.1\r\nhost: x\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    b"NOT AN HTTP REQUEST\r\n\r\n",
]


async def malformed(port: int) -> Counter:
    statuses = Counter()
    for raw in MALFORMED:
        for _ in range(5):
            statuses[await exchange(port, raw, timeout=10)] += 1
    return statuses


# -- running it -----------------------------------------------------------------------------


def delta(before, after, sent: Sent) -> dict:
    requests_before, errors_before, completed_before, failed_before = before
    requests_after, errors_after, completed_after, failed_after = after
    counted_requests = {path: requests_after.get(path, 0) - requests_before.get(path, 0) for path in requests_after}
    counted_statuses = Counter()
    for path, by_status in errors_after.items():
        for status, count in by_status.items():
            grown = count - errors_before.get(path, {}).get(status, 0)
            if grown:
                counted_statuses[(path, int(status))] = grown
    expected_errors = {key: count for key, count in sent.statuses.items() if key[1] >= 400}
    return {
        "sent": dict(sent.requests),
        "counted": {path: count for path, count in counted_requests.items() if count},
        "errors_expected": {f"{path} {status}": count for (path, status), count in expected_errors.items()},
        "errors_counted": {f"{path} {status}": count for (path, status), count in counted_statuses.items()},
        "failed_streams": failed_after - failed_before,
        "completed_streams": completed_after - completed_before,
        "exact": (all(counted_requests.get(path, 0) == count for path, count in sent.requests.items())
                  and dict(counted_statuses) == expected_errors
                  and failed_after - failed_before == sent.streams_failed),
        "any_5xx": any(status >= 500 for (_, status) in counted_statuses),
    }


async def with_probe(port: int, phase: Callable[[], Awaitable]) -> tuple[object, dict]:
    stop = asyncio.Event()
    probe = Probe(port)
    probing = asyncio.ensure_future(probe.run(stop))
    try:
        result = await phase()
    finally:
        stop.set()
        await probing
    return result, probe.summary()


def settle(base_url: str, seconds: float = 60.0) -> None:
    """Until nothing is in flight any more (the server has finished what the clients left)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        doc = httpx.get(base_url + "/metrics", timeout=30).json()
        if doc["summary"]["requests_in_flight"] == 0 and doc["streaming_stats"]["active_streams"] == 0:
            return
        time.sleep(0.1)
    raise TimeoutError("requests still in flight a minute after the phase")


def run_phase(base_url: str, name: str, phase: Callable[[int], Awaitable], report: dict) -> object:
    port = int(base_url.rsplit(":", 1)[1])
    before = counted(base_url)
    started = time.monotonic()
    result, probe = asyncio.run(with_probe(port, lambda: phase(port)))
    if isinstance(result, tuple):  # sockets to keep open until the server has cut them
        sent, sockets = result
        settle(base_url, 120)
        for sock in sockets:
            sock.close()
    else:
        sent = result
        if isinstance(sent, Sent):
            settle(base_url)
    entry = {"seconds": round(time.monotonic() - started, 1), "probe": probe, "peak_rss_mb": None}
    if isinstance(sent, Sent):
        entry.update(delta(before, counted(base_url), sent))
    else:
        entry["result"] = sent if not isinstance(sent, Counter) else {str(k): v for k, v in sent.items()}
    report[name] = entry
    print(f"{name}: {json.dumps(entry)}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memory-limit", default="3G", help="prlimit --as for the server (default 3G)")
    parser.add_argument("--workers", default="1")
    parser.add_argument("--json", help="write the report here too")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the client holds thousands of sockets
    report: dict = {"memory_limit": args.memory_limit, "workers": args.workers}
    serve = ["prlimit", f"--as={args.memory_limit}", PYTHON, "-m", "fakeai", "serve", "--host", "127.0.0.1",
             "--port", "{port}", "--workers", args.workers, "--log-level", "warning"]
    with server([*serve, "--zero-latency"]) as base_url:
        run_phase(base_url, "oversized", oversized, report)
        run_phase(base_url, "never_reading", never_reading, report)
        run_phase(base_url, "malformed_http", malformed, report)
        report["zero_latency_server_peak_rss_mb"] = round(resident_peak_mb(base_url.pid), 1)
    with server(serve) as base_url:
        run_phase(base_url, "disconnect_storm", disconnect_storm, report)
        run_phase(base_url, "slowloris", slowloris, report)
        report["paced_server_peak_rss_mb"] = round(resident_peak_mb(base_url.pid), 1)
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
