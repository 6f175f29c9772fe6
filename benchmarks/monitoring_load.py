"""Monitoring load on a fakeai server: a Prometheus scraper and one open dashboard.

    taskset -c 1 .venv/bin/python benchmarks/monitoring_load.py http://127.0.0.1:8000 [--scrape-hz 10]
        [--dashboard-refresh 1]

Started as a process of its own (so its work never runs on the event loop of the client that
times streams), it connects, loads the dashboard page and its assets as a browser does, prints
``ready`` and waits for a line on stdin. Then, until stdin closes (or a second line comes):

* the scraper GETs ``/metrics/prometheus`` at a fixed rate (ticks it missed are skipped, not
  bunched), on one keep-alive connection, as AIPerf's server-metrics collector does at 10 Hz,
  and times each scrape from its request's write to its response's last byte;
* the dashboard does what ``fakeai/dashboard/dashboard.js`` does once the page is open: fetch
  ``/metrics`` and ``/metrics/history`` together (two connections, as a browser's parallel
  fetches), ``Accept: application/json``, then wait ``--dashboard-refresh`` seconds after both
  answered and fetch again (the page's refresh choices are 1 to 60 s; the server's default is
  5 s). Its first refresh is at once, as the page's is when it opens.

It prints one JSON line: the scrape latencies (seconds), the dashboard's refreshes, and any
response that was not 200. Raw HTTP/1.1 over asyncio streams (no client library: the timing is
the server's answer, not a client's parsing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

PROMETHEUS_ACCEPT = b"text/plain;version=0.0.4"  # what AIPerf's collector and curl get: the text format
DASHBOARD_ASSETS = ("/dashboard", "/dashboard/dashboard.css", "/dashboard/vendor/uPlot.min.css",
                    "/dashboard/vendor/uPlot.iife.min.js", "/dashboard/dashboard.js")


class Connection:
    """One keep-alive HTTP/1.1 connection; ``get`` returns (status, body bytes) and reconnects
    once if the server had closed it (its keep-alive timeout)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def get(self, path: str, accept: bytes = b"*/*") -> tuple[int, int]:
        for attempt in (0, 1):
            if self.writer is None or self.writer.is_closing():
                await self.connect()
            try:
                return await self._get(path, accept)
            except (asyncio.IncompleteReadError, ConnectionError):
                self.writer = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _get(self, path: str, accept: bytes) -> tuple[int, int]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(b"GET %s HTTP/1.1\r\nHost: %s\r\nAccept: %s\r\n\r\n"
                          % (path.encode(), self.host.encode(), accept))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        headers = head.lower()
        size = 0
        if b"\r\ncontent-length:" in headers:
            length = int(headers.split(b"\r\ncontent-length:")[1].split(b"\r\n")[0])
            size = len(await self.reader.readexactly(length))
        elif b"transfer-encoding: chunked" in headers:
            while True:
                chunk = int((await self.reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
                await self.reader.readexactly(chunk + 2)
                size += chunk
                if chunk == 0:
                    break
        if b"\r\nconnection: close" in headers:
            self.writer.close()
        return status, size


async def scraper(connection: Connection, hz: float, stop: asyncio.Event, latencies: list[float],
                  failures: list[str]) -> None:
    period = 1.0 / hz
    started = time.perf_counter()
    while not stop.is_set():
        sent = time.perf_counter()
        status, _ = await connection.get("/metrics/prometheus", PROMETHEUS_ACCEPT)
        latencies.append(time.perf_counter() - sent)
        if status != 200:
            failures.append(f"/metrics/prometheus {status}")
        next_tick = int((time.perf_counter() - started) / period) + 1  # a missed tick is skipped
        delay = started + next_tick * period - time.perf_counter()
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass


async def dashboard(connections: tuple[Connection, Connection], refresh: float, stop: asyncio.Event,
                    refreshes: list[float], failures: list[str]) -> None:
    while not stop.is_set():
        sent = time.perf_counter()
        answers = await asyncio.gather(connections[0].get("/metrics", b"application/json"),
                                       connections[1].get("/metrics/history", b"application/json"))
        refreshes.append(time.perf_counter() - sent)
        failures.extend(f"dashboard {status}" for status, _ in answers if status != 200)
        try:
            await asyncio.wait_for(stop.wait(), refresh)
        except TimeoutError:
            pass


async def main(url: str, hz: float, refresh: float) -> None:
    host, port = url.removeprefix("http://").split(":")
    scrape = Connection(host, int(port))
    panel = (Connection(host, int(port)), Connection(host, int(port)))
    failures: list[str] = []
    for connection in (scrape, *panel):
        await connection.connect()
    for path in DASHBOARD_ASSETS:  # the page opens: its document and assets, once
        status, _ = await panel[0].get(path)
        if status != 200:
            failures.append(f"{path} {status}")
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    print("ready", flush=True)
    await stdin.readline()
    stop = asyncio.Event()
    latencies: list[float] = []
    refreshes: list[float] = []
    started = time.perf_counter()
    tasks = []
    if hz > 0:
        tasks.append(asyncio.ensure_future(scraper(scrape, hz, stop, latencies, failures)))
    if refresh > 0:
        tasks.append(asyncio.ensure_future(dashboard(panel, refresh, stop, refreshes, failures)))
    await stdin.readline()  # a second line, or end of input
    stop.set()
    await asyncio.gather(*tasks)
    print(json.dumps({"seconds": time.perf_counter() - started, "scrape_seconds": latencies,
                      "dashboard_refresh_seconds": refreshes, "failures": failures}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the server's base URL, http://host:port")
    parser.add_argument("--scrape-hz", type=float, default=10.0, help="Prometheus scrapes a second (0: no scraper)")
    parser.add_argument("--dashboard-refresh", type=float, default=1.0,
                        help="seconds the dashboard waits between two refreshes (0: no dashboard)")
    arguments = parser.parse_args()
    import uvloop

    uvloop.run(main(arguments.url, arguments.scrape_hz, arguments.dashboard_refresh))
