"""End-to-end measurement: servers pinned to one core, load generators to the other.

``Server`` starts a server process under ``taskset`` and waits for it to answer; ``wrk``
runs Debian's wrk with a Lua body and returns requests per second; ``stream_timings`` is a
raw asyncio SSE client (uvloop, no HTTP library) that timestamps every event of many
concurrent streams, cheap enough to measure thousands of streams from one core.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence

import httpx

SERVER_CPU = "0"
LOAD_CPU = "1"
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server(command: Sequence[str], *, env: dict[str, str] | None = None, ready_path: str = "/health",
           ready_method: str = "GET") -> Iterator[str]:
    """Run ``command`` (with ``{port}`` filled in) pinned to ``SERVER_CPU``; yields its base URL."""
    port = free_port()
    argv = ["taskset", "-c", SERVER_CPU, *(part.format(port=port) for part in command)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FAKEAI_")}
    environment.update(env or {})
    process = subprocess.Popen(argv, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{argv} exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                httpx.request(ready_method, base_url + ready_path, timeout=1, json={})
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
        process.stderr.close()  # type: ignore[union-attr]


def fakeai_command(*flags: str) -> list[str]:
    return [PYTHON, "-m", "fakeai", "serve", "--port", "{port}", "--log-level", "warning", *flags]


def uvicorn_command(target: str, *, factory: bool = False) -> list[str]:
    command = [PYTHON, "-m", "uvicorn", target, "--port", "{port}", "--loop", "uvloop", "--http", "httptools",
               "--log-level", "warning", "--no-access-log"]
    return command + (["--factory"] if factory else [])


def wrk(url: str, body: str, *, seconds: int = 10, connections: int = 64, path: str = "/v1/chat/completions") -> dict:
    """Requests per second (and errors) of wrk POSTing ``body`` from ``LOAD_CPU``."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (Debian package wrk)")
    lua = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[%s]]\n' % body
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(lua)
        script.flush()
        output = subprocess.run(
            ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
             script.name, url + path],
            capture_output=True, text=True, check=True,
        ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {"rps": rps, "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else "", "output": output}


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
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (host.encode(), len(body), body)
    )

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
