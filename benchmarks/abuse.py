"""Hostile and careless clients against a real server under a memory limit: does it hold?

Runs ``fakeai serve`` pinned to one core under ``prlimit`` (an address-space limit: a server
that tried to build a gigabyte reply would fail, not swap; and a soft limit of 1,024 open
files), drives each abuse from the other core with raw asyncio sockets, and reports for
every phase:

* the server's peak resident memory (VmHWM of every server process),
* the worst and the 99th-percentile latency of a probe that asks ``/health`` every 20 ms
  throughout, from a process of its own (a stalled event loop or a starved accept queue
  shows here),
* whether every request the phase sent was counted, under its endpoint, with the status the
  client saw (or, for clients that left, 499), and whether any 5xx was answered.

Phases: oversized requests (each limit exceeded by a tiny body), a disconnect storm (clients
that leave mid-stream and mid-wait), never-reading streaming clients, slowloris (request
heads trickled a byte a second on 1,100 connections), malformed HTTP.

Usage: ``python benchmarks/abuse.py [--memory-limit 3G] [--workers N] [--json results.json]``.
It takes about a minute; every server it starts binds 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
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


def probe_health(port: int, stop, results) -> None:
    """``/health`` every 20 ms on one keep-alive connection, in a process of its own so the
    load the phase generates on this side does not delay it; sends (latencies, failures)."""
    raw = b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
    latencies: list[float] = []
    failures: Counter = Counter()
    sock = None
    while not stop.is_set():
        started = time.perf_counter()
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                stream = sock.makefile("rb")
            sock.sendall(raw)
            status = int(stream.readline().split(b" ", 2)[1])
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            stream.read(length)
            if status != 200:
                failures[status] += 1
            latencies.append(time.perf_counter() - started)
        except (OSError, ValueError, IndexError) as exc:
            failures[type(exc).__name__] += 1
            if sock is not None:
                sock.close()
            sock = None
        time.sleep(0.02)
    results.send((latencies, dict(failures)))


def probe_summary(latencies: list[float], failures: dict) -> dict:
    ordered = sorted(latencies)
    return {
        "probes": len(ordered),
        "worst_ms": round(1000 * ordered[-1], 2) if ordered else None,
        "p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 2) if ordered else None,
        "median_ms": round(1000 * statistics.median(ordered), 2) if ordered else None,
        "failures": failures,
    }


# -- the phases -----------------------------------------------------------------------------


@dataclass
class Sent:
    """What a phase sent: requests per endpoint and the status each should be counted with."""

    requests: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)  # (endpoint, status) -> count
    streams_failed: int = 0
    note: dict = field(default_factory=dict)

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
    """Clients that leave before the end: half mid-stream (a reset once the first token has
    come), half while a plain answer is still being prepared."""
    sent = Sent()
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 200, "ignore_eos": True}
    stream = request_bytes(CHAT, {**chat, "stream": True})
    plain = request_bytes(CHAT, chat)

    async def leave(raw: bytes, wait_for: bytes | None) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        await writer.drain()
        if wait_for:
            await reader.readuntil(wait_for)  # the stream has started
        else:
            await asyncio.sleep(0.5)  # the answer is due after TTFT + 199 x ITL, about 2 s
        writer.transport.abort()  # a reset, as a killed client would

    await asyncio.gather(*(leave(stream, b"data: ") for _ in range(clients // 2)),
                         *(leave(plain, None) for _ in range(clients // 2)))
    sent.add(CHAT, 499, clients)
    sent.streams_failed += clients // 2
    return sent


async def never_reading(port: int, clients: int = 100) -> Sent:
    """Zero-latency streams of long answers to clients whose receive buffers are never read;
    the sockets stay open until the server has cut every one of them."""
    sent = Sent()
    raw = request_bytes(CHAT, {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                               "max_tokens": 100_000, "ignore_eos": True, "stream": True})

    def connect() -> list[socket.socket]:  # blocking calls, off the event loop the probe runs on
        opened = []
        for _ in range(clients):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(raw)
            opened.append(sock)
        return opened

    sockets = await asyncio.to_thread(connect)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        while True:
            doc = (await client.get("/metrics")).json()
            if doc["streaming_stats"]["active_streams"] == 0 and doc["summary"]["requests_in_flight"] == 0:
                break
            await asyncio.sleep(0.2)
    sent.note = {"cut_after_seconds": round(time.monotonic() - started, 1)}
    for sock in sockets:
        sock.close()
    sent.add(CHAT, 499, clients)
    sent.streams_failed += clients
    return sent


async def slowloris(port: int, connections: int = 1100) -> Sent:
    """Request heads trickled a byte a second on more connections than a 1,024-file limit
    allows; each should get a 408 at the header deadline (counted under ``malformed``)."""
    sent = Sent()
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"

    async def trickle() -> int:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return -1
        answer = asyncio.ensure_future(reader.read())
        try:
            for offset in range(len(head)):
                writer.write(head[offset : offset + 1])
                done, _ = await asyncio.wait([answer], timeout=1.0)
                if done:
                    break
            data = await asyncio.wait_for(answer, 30)
            return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
        except (ConnectionError, asyncio.TimeoutError):
            return 0
        finally:
            writer.close()

    answers = Counter(await asyncio.gather(*(trickle() for _ in range(connections))))
    for status, count in answers.items():
        if status > 0:
            sent.add("malformed", status, count)
    sent.note = {"connections": connections, "answers": {str(k): v for k, v in answers.items()}}
    return sent


MALFORMED = [
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n",
    b"GET /" + b"a" * 2_000_000 + b" HTTP/1.1\r\nhost: x\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    b"NOT AN HTTP REQUEST\r\n\r\n",
]


async def malformed(port: int) -> Sent:
    """Requests uvicorn's parser refuses: each gets an OpenAI-shaped 400 or 431 (``malformed``)."""
    sent = Sent()
    for raw in MALFORMED:
        for _ in range(5):
            status = await exchange(port, raw, timeout=10)
            sent.add("malformed", status)
    return sent


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


def with_probe(port: int, phase: Callable[[], Awaitable]) -> tuple[object, dict]:
    stop = multiprocessing.Event()
    receiving, sending = multiprocessing.Pipe(duplex=False)
    probe = multiprocessing.Process(target=probe_health, args=(port, stop, sending), daemon=True)
    probe.start()
    try:
        result = asyncio.run(phase())
    finally:
        stop.set()
        latencies, failures = receiving.recv()
        probe.join()
    return result, probe_summary(latencies, failures)


def settle(base_url: str, seconds: float = 60.0) -> None:
    """Until nothing is in flight any more (the server has finished what the clients left)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        doc = httpx.get(base_url + "/metrics", timeout=30).json()
        if doc["summary"]["requests_in_flight"] == 0 and doc["streaming_stats"]["active_streams"] == 0:
            return
        time.sleep(0.1)
    raise TimeoutError("requests still in flight a minute after the phase")


def run_phase(base_url: str, name: str, phase: Callable[[int], Awaitable], report: dict) -> None:
    port = int(base_url.rsplit(":", 1)[1])
    before = counted(base_url)
    started = time.monotonic()
    result, probe = with_probe(port, lambda: phase(port))
    sent = result
    settle(base_url)
    entry = {"seconds": round(time.monotonic() - started, 1), "probe": probe, **sent.note,
             **delta(before, counted(base_url), sent)}
    report[name] = entry
    print(f"{name}: {json.dumps(entry)}", flush=True)


def size_in_bytes(text: str) -> int:
    """``3G``, ``512M`` or a number of bytes (prlimit itself takes bytes only)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memory-limit", default="3G", help="prlimit --as for the server (default 3G)")
    parser.add_argument("--workers", default="1")
    parser.add_argument("--json", help="write the report here too")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the client holds thousands of sockets
    report: dict = {"memory_limit": args.memory_limit, "workers": args.workers}
    serve = ["prlimit", f"--as={size_in_bytes(args.memory_limit)}", "--nofile=1024:", PYTHON, "-m", "fakeai", "serve", "--host", "127.0.0.1",
             "--port", "{port}", "--workers", args.workers, "--log-level", "warning"]
    with server([*serve, "--zero-latency", "--send-timeout-seconds", "10"]) as base_url:
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
