"""End-to-end measurement: servers pinned to one core, load generators to the other.

``Server`` starts a server process under ``taskset`` and waits for it to answer; ``wrk``
runs Debian's wrk with a Lua body and returns requests per second; ``stream_timings`` is a
raw asyncio SSE client (uvloop, no HTTP library) that timestamps every event of many
concurrent streams, cheap enough to measure thousands of streams from one core.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import httpx

SERVER_CPU = "0"
LOAD_CPU = "1"
PYTHON = sys.executable


async def timer_lateness(until: float, lateness: list[float]) -> None:
    """Until ``time.perf_counter()`` passes ``until``: a 1 ms timer again and again, each wake's
    lateness (seconds) appended to ``lateness`` -- how long the event loop was kept from it."""
    while time.perf_counter() < until:
        asked = time.perf_counter()
        await asyncio.sleep(0.001)
        lateness.append(time.perf_counter() - asked - 0.001)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Running(str):
    """A running server's base URL, with its process id."""

    pid: int

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server has used so far."""
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def server(command: Sequence[str], *, env: dict[str, str] | None = None, ready_path: str = "/health",
           ready_method: str = "GET", start_seconds: float = 60) -> Iterator[Running]:
    """Run ``command`` (with ``{port}`` filled in) pinned to ``SERVER_CPU``; yields its base URL
    once it answers (within ``start_seconds``)."""
    port = free_port()
    argv = ["taskset", "-c", SERVER_CPU, *(part.format(port=port) for part in command)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FAKEAI_")}
    environment.update(env or {})
    # A file, not a pipe: a server that logs every request would block once a pipe is full.
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(argv, env=environment, stdout=log, stderr=subprocess.STDOUT)
    base_url = Running(f"http://127.0.0.1:{port}")
    base_url.pid = process.pid  # taskset execs the server in place: same pid
    deadline = time.monotonic() + start_seconds
    try:
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{argv} exited: {log.read().decode(errors='replace')[-2000:]}")
            try:
                httpx.request(ready_method, base_url + ready_path, timeout=5, json={})
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{argv} did not start") from None
                time.sleep(0.05)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextlib.contextmanager
def servers_of(commands: dict[str, Sequence[str]]) -> Iterator[dict[str, Running]]:
    """``server`` for each named command at once; yields their base URLs by name."""
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(server(command)) for name, command in commands.items()}


def fakeai_command(*flags: str) -> list[str]:
    return [PYTHON, "-m", "fakeai", "serve", "--port", "{port}", "--log-level", "warning", *flags]


def uvicorn_command(target: str, *, factory: bool = False) -> list[str]:
    command = [PYTHON, "-m", "uvicorn", target, "--port", "{port}", "--loop", "uvloop", "--http", "httptools",
               "--log-level", "warning", "--no-access-log"]
    return command + (["--factory"] if factory else [])


def wrk(url: str, body: str, *, seconds: int = 10, connections: int = 64, path: str = "/v1/chat/completions",
        timeout_seconds: int = 2) -> dict:
    """Requests per second (and errors) of wrk POSTing ``body`` from ``LOAD_CPU`` (a request
    unanswered after ``timeout_seconds`` is a socket error)."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (Debian package wrk)")
    lua = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[%s]]\n' % body
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(lua)
        script.flush()
        output = subprocess.run(
            ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
             f"--timeout={timeout_seconds}s", "--latency", "-s", script.name, url + path],
            capture_output=True, text=True, check=True,
        ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {"rps": rps, "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else "", "output": output}


def chat_request(host: str, body: bytes, close: bool = True) -> bytes:
    """A raw HTTP/1.1 chat completions request carrying ``body`` (``Connection: close`` unless
    ``close`` is false)."""
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n%s\r\n%s" % (host.encode(), len(body), b"Connection: close\r\n" if close else b"",
                                                    body))


# -- a raw SSE client for timing fidelity ----------------------------------------------------


class _Stream(asyncio.Protocol):
    def __init__(self, request: bytes, done: asyncio.Future) -> None:
        self.request = request
        self.done = done
        self.events: list[float] = []
        self.sent_at = 0.0
        self.tail = b""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.sent_at = time.perf_counter()
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        data = self.tail + data
        self.events.extend([now] * data.count(b'"content":'))
        self.tail = data[-16:]
        self.tail = self.tail[self.tail.rfind(b"\n") + 1 :] if b"\n" in self.tail else self.tail
        if b"[DONE]" in data and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc) -> None:  # type: ignore[override]
        if not self.done.done():
            self.done.set_result(None)


async def _streams(host: str, port: int, body: bytes, concurrency: int, stagger: float) -> list[_Stream]:
    loop = asyncio.get_running_loop()
    request = chat_request(host, body)

    async def one(delay: float) -> _Stream:
        await asyncio.sleep(delay)
        done = loop.create_future()
        _, protocol = await loop.create_connection(lambda: _Stream(request, done), host, port)
        await done
        return protocol  # type: ignore[return-value]

    return await asyncio.gather(*(one(i * stagger) for i in range(concurrency)))


def stream_timings(base_url: str, body: bytes, concurrency: int, stagger: float = 0.0005) -> list[tuple[float, list[float]]]:
    """``(ttft, gaps)`` per stream, for ``concurrency`` streams started ``stagger`` s apart."""
    import uvloop

    host, port = base_url.removeprefix("http://").split(":")
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    try:
        streams = uvloop.run(_streams(host, int(port), body, concurrency, stagger))
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    results = []
    for stream in streams:
        events = stream.events
        if events:
            results.append((events[0] - stream.sent_at, [b - a for a, b in zip(events, events[1:])]))
    return results


# -- paced streams, every content chunk timed ------------------------------------------------

CONTENT = b'"content":'


class PacedStream(asyncio.Protocol):
    """One stream on its own connection: write the request when told, keep what is read with the
    time it was read (counted afterwards: the less work per read, the less the client lags)."""

    def __init__(self, request: bytes, done: asyncio.Future) -> None:
        self.request = request
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0
        self.reads: list[tuple[float, bytes]] = []

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def send(self) -> None:
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        self.reads.append((time.perf_counter(), data))

    def connection_lost(self, exc) -> None:  # type: ignore[override]
        if not self.done.done():
            self.done.set_result(None)

    def arrivals(self) -> list[float]:
        """When each content chunk was read (chunks read together share a time)."""
        arrivals: list[float] = []
        tail = b""
        for read_at, data in self.reads:
            data = tail + data
            found = data.count(CONTENT)
            if found:
                arrivals.extend([read_at] * found)
                # a match cut in two by a read starts after the last whole one, in the last bytes
                after = data.rfind(CONTENT) + len(CONTENT)
                tail = data[max(after, len(data) - len(CONTENT) + 1):]
            else:
                tail = data[-(len(CONTENT) - 1):]
        return arrivals


async def _lag_probe(lags: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        asked = time.perf_counter()
        await asyncio.sleep(0.001)  # libuv's timers count whole milliseconds: less would not sleep
        lags.append(time.perf_counter() - asked - 0.001)


async def paced_streams(host: str, port: int, body: bytes, concurrency: int, interval: float, tokens: int,
                        ttft: float, itl: float, before_start: Callable[[], Awaitable[None]] | None = None) -> dict:
    """``concurrency`` streams of ``body`` (``tokens`` content chunks each, due ``ttft`` then every
    ``itl`` seconds), each on its own connection, opened first and then written ``interval``
    seconds apart; every content chunk timed as it is read. ``before_start`` runs once the
    connections are open, before the first write.

    Returns the TTFT errors (first chunk's read - its request's write - ``ttft``), the gap
    errors (between two chunks of a stream - ``itl``: two read together make ``-itl``), the
    streams that did not get ``tokens`` chunks, the client's own loop lag (a task asking to
    wake every millisecond) and CPU share, and the seconds from the first write to the last
    stream's end. The client waits for each write on the loop's timers, never in a busy-wait:
    a client that spun would stamp its reads late."""
    loop = asyncio.get_running_loop()
    request = chat_request(host, body)
    streams: list[PacedStream] = []
    for _ in range(concurrency):
        _, stream = await loop.create_connection(lambda: PacedStream(request, loop.create_future()), host, port)
        streams.append(stream)  # type: ignore[arg-type]
    await asyncio.sleep(0.05)  # the server has accepted them all
    if before_start is not None:
        await before_start()
    lags: list[float] = []
    stop = asyncio.Event()
    gc.disable()  # no collector pause in the client while it timestamps
    try:
        probe = asyncio.ensure_future(_lag_probe(lags, stop))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        for index, stream in enumerate(streams):
            due = started + index * interval
            while (ahead := due - time.perf_counter()) > 0:
                # the loop reads meanwhile; libuv's timers count whole milliseconds, so a write
                # goes out up to a millisecond after its time (the TTFT counts from the write)
                await asyncio.sleep(max(ahead, 0.001))
            stream.send()
        await asyncio.wait_for(asyncio.gather(*(stream.done for stream in streams)), 60 + tokens * itl)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        gc.enable()
    stop.set()
    await probe
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    timed = [(stream.sent_at, stream.arrivals()) for stream in streams]
    return {**_stream_errors(timed, tokens, ttft, itl), "client_lag": lags, "client_cpu_share": cpu / wall,
            "seconds": wall}


def _stream_errors(timed: list[tuple[float, list[float]]], tokens: int, ttft: float, itl: float) -> dict:
    """From each stream's write and content chunks' arrivals: the TTFT errors, the gap errors,
    the streams that did not get ``tokens`` chunks and the chunks received."""
    ttft_errors, gap_errors, short, received = [], [], 0, 0
    for sent_at, arrivals in timed:
        received += len(arrivals)
        if len(arrivals) != tokens:
            short += 1
        if arrivals:
            ttft_errors.append(arrivals[0] - sent_at - ttft)
            gap_errors.extend(b - a - itl for a, b in zip(arrivals, arrivals[1:]))
    return {"ttft_errors": ttft_errors, "gap_errors": gap_errors, "streams_short": short, "tokens": received}


SSE_CLIENT_SOURCE = Path(__file__).with_name("sse_client.c")


def sse_client() -> Path:
    """The compiled stream client (``sse_client.c``), built with the C compiler into ``build/``
    (ignored by git) when missing or older than its source."""
    binary = Path(__file__).resolve().parent.parent / "build" / "sse_client"
    if not binary.exists() or binary.stat().st_mtime < SSE_CLIENT_SOURCE.stat().st_mtime:
        binary.parent.mkdir(exist_ok=True)
        compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            raise RuntimeError("no C compiler (cc) to build benchmarks/sse_client.c")
        subprocess.run([compiler, "-O2", "-Wall", "-o", str(binary), str(SSE_CLIENT_SOURCE)], check=True)
    return binary


def compiled_paced_streams(host: str, port: int, body: bytes, starts: Sequence[float], tokens: int, ttft: float,
                           itl: float) -> dict:
    """Paced streams by the compiled client (``sse_client.c``) pinned to ``LOAD_CPU``: one per
    start (seconds after the first write, ascending), with ``paced_streams``' figures, at a few
    microseconds of the client's CPU a read. Its lag is how late each request was written
    behind its start (its timers are nanosecond timerfds)."""
    request = chat_request(host, body)
    with tempfile.TemporaryDirectory() as scratch:
        starts_file, request_file, output_file = Path(scratch, "starts"), Path(scratch, "request"), Path(scratch, "output")
        starts_file.write_text("".join(f"{start!r}\n" for start in starts))
        request_file.write_bytes(request)
        timeout = 60 + max(starts) + ttft + tokens * itl
        subprocess.run(["taskset", "-c", LOAD_CPU, str(sse_client()), host, str(port), str(starts_file),
                        str(request_file), str(output_file), repr(timeout)], check=True)
        lines = output_file.read_text().splitlines()
    _, cpu, _, wall = lines[0].split()
    lags = [float(late) for late in lines[1].split()[1:]]
    timed = []
    for line in lines[2:]:
        sent_at, _, *times = line.split()  # (the count is the number of times)
        timed.append((float(sent_at), [float(at) for at in times]))
    return {**_stream_errors(timed, tokens, ttft, itl), "client_lag": lags,
            "client_cpu_share": float(cpu) / float(wall), "seconds": float(wall)}


# -- an open-loop, fixed-rate load generator -------------------------------------------------


class _KeepAlive(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self.buffer = b""
        self.expected = -1
        self.scheduled = 0.0
        self.waiter: asyncio.Future[float] | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def connection_lost(self, exc) -> None:  # type: ignore[override]
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.expected < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            header = self.buffer[:end].lower()
            length = int(header.split(b"content-length:")[1].split(b"\r\n")[0])
            self.expected = end + 4 + length
        if len(self.buffer) >= self.expected and self.waiter is not None:
            self.buffer, self.expected = b"", -1
            waiter, self.waiter = self.waiter, None
            waiter.set_result(time.perf_counter() - self.scheduled)


async def _fixed_rate(host: str, port: int, request: bytes, rate: float, seconds: float, connections: int) -> dict:
    loop = asyncio.get_running_loop()
    # First in, first out, so every connection stays busy enough that the server's
    # keep-alive timeout never closes it under our feet.
    idle: collections.deque[_KeepAlive] = collections.deque()
    for _ in range(connections):
        _, protocol = await loop.create_connection(_KeepAlive, host, port)
        idle.append(protocol)  # type: ignore[arg-type]
    latencies: list[float] = []
    backlog: list[float] = []  # scheduled times waiting for a free connection
    pending: set[asyncio.Future[float]] = set()

    def release(conn: _KeepAlive, future: asyncio.Future[float]) -> None:
        pending.discard(future)
        latencies.append(future.result())
        if backlog:
            fire(conn, backlog.pop(0))
        else:
            idle.append(conn)

    def fire(conn: _KeepAlive, scheduled: float) -> None:
        conn.scheduled = scheduled
        conn.waiter = future = loop.create_future()
        pending.add(future)
        future.add_done_callback(lambda f: release(conn, f))
        conn.transport.write(request)  # type: ignore[union-attr]

    start = time.perf_counter()
    total = int(rate * seconds)
    for index in range(total):
        scheduled = start + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        while idle and idle[0].closed.done():
            idle.popleft()
        if idle:
            fire(idle.popleft(), scheduled)
        else:
            backlog.append(scheduled)
    while pending or backlog:
        await asyncio.sleep(0.01)
    for conn in idle:
        conn.transport.close()  # type: ignore[union-attr]
    await asyncio.wait_for(asyncio.gather(*(conn.closed for conn in idle)), 10)
    if len(idle) != connections:
        raise RuntimeError(f"{connections - len(idle)} connections were closed by the server during the run")
    ordered = sorted(latencies)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"requests": len(ordered), "achieved_rps": len(ordered) / (time.perf_counter() - start),
            "p50_ms": pick(0.5), "p99_ms": pick(0.99), "p999_ms": pick(0.999), "max_ms": ordered[-1] * 1000}


def fixed_rate(base_url: str, body: bytes, rate: float, seconds: float = 10, connections: int = 128,
               path: str = "/v1/chat/completions") -> dict:
    """Latency percentiles at ``rate`` requests/s, timed from when each request was due."""
    import uvloop

    host, port = base_url.removeprefix("http://").split(":")
    request = (
        b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (path.encode(), host.encode(), len(body), body)
    )
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    try:
        return uvloop.run(_fixed_rate(host, int(port), request, rate, seconds, connections))
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
