"""What one OTLP export costs the serving process, beside what a Prometheus scrape costs.

    .venv/bin/python benchmarks/otlp_export.py [--repeat 20] [--seconds 3]

For two label spaces -- the default server after a little traffic on 3 models, and one whose
100 models each got traffic on each of its 4 simulated engines (vLLM's families per model and
engine: the largest part of an export) -- it reports, every figure the median of ``--repeat``:

* ``points``: OTLP data points in one export, and its protobuf size;
* ``snapshot``: ``MetricsRegistry.snapshot()`` (the part an export does on the event loop, in
  slices, as a scrape does);
* ``convert`` and ``encode``: the snapshot into the SDK's ``MetricsData``
  (``fakeai.exporters.otlp``), and that into the protobuf (OpenTelemetry's encoder), CPU time:
  done on the export's own thread, but holding the interpreter's lock while it runs;
* ``export``: one whole ``OtlpPush.export()`` to a receiver on 127.0.0.1, wall time;
* ``prometheus``: a snapshot and its Prometheus text, for comparison (a scrape's cost);
* the event loop's lag (how late a 1 ms timer fires) over ``--seconds``, p99 and worst, with
  nothing else running, with back-to-back exports, and with back-to-back Prometheus renders in
  slices (what ``GET /metrics/prometheus`` does).

The start-up heap is frozen first (``gc.freeze``), as ``fakeai serve``'s processes do: the
worst lags left are mostly the garbage collector's full collections, which an export's
allocations (and a render's) trigger now and then.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import uvloop
from litestar.testing import TestClient
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from benchmarks import harness
from fakeai.api.monitoring import _prometheus_text
from fakeai.api.otlp_push import OtlpPush
from fakeai.app import create_app, prepare_collector_for_serving
from fakeai.config import Settings
from fakeai.exporters import render_prometheus
from fakeai.exporters.otlp import metrics_data

_COLLECTOR = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
answer = bytes.fromhex(sys.argv[1])
class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@contextlib.contextmanager
def collector() -> Iterator[str]:
    """An OTLP receiver in a process of its own (its work is not the serving process's)."""
    answer = ExportMetricsServiceResponse().SerializeToString().hex()
    process = subprocess.Popen([sys.executable, "-c", _COLLECTOR, answer], stdout=subprocess.PIPE, text=True)
    try:
        yield f"http://127.0.0.1:{process.stdout.readline().strip()}/v1/metrics"  # type: ignore[union-attr]
    finally:
        process.terminate()
        process.wait()


def traffic(models: int) -> tuple[TestClient, Settings]:
    names = tuple(f"model-{index}" for index in range(models))
    settings = Settings(zero_latency=True, models=names, max_model_labels=max(models, 1))
    client = TestClient(create_app(settings))
    client.__enter__()
    for name in names:
        for engine_turn in range(8):  # the router spreads them over the engines
            body = {"model": name, "messages": [{"role": "user", "content": f"hi {engine_turn}"}], "max_tokens": 4,
                    "stream": engine_turn % 2 == 0}
            client.post("/v1/chat/completions", json=body).raise_for_status()
    client.post("/v1/chat/completions", json={"model": "nope", "messages": []})
    client.__exit__(None, None, None)  # the app stops; its registry and what it recorded stay
    return client, settings


def median_seconds(work, repeat: int, clock=time.perf_counter) -> float:
    times = []
    for _ in range(repeat):
        started = clock()
        work()
        times.append(clock() - started)
    return statistics.median(times)


async def loop_lag(seconds: float, load) -> tuple[float, float]:
    """(p99, worst) lateness of a 1 ms timer while ``load()`` runs again and again."""
    lags: list[float] = []
    stop = time.perf_counter() + seconds

    async def loaded() -> None:
        while time.perf_counter() < stop:
            await load()

    await asyncio.gather(harness.timer_lateness(stop, lags), *([loaded()] if load else []))
    lags.sort()
    return lags[int(len(lags) * 0.99)], lags[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with collector() as endpoint:
        for title, models in (("3 models", 3), ("100 models x 4 engines", 100)):
            client, settings = traffic(models)
            registry = client.app.state.metrics
            push = OtlpPush(registry, settings.replace(otlp_endpoint=endpoint))
            prepare_collector_for_serving()  # as a server process does once started
            snapshot = registry.snapshot()
            data = metrics_data(snapshot, push.resource, push.start_time_unix_nano)
            request = encode_metrics(data)
            points = sum(len(getattr(m, m.WhichOneof("data")).data_points)
                         for m in request.resource_metrics[0].scope_metrics[0].metrics)
            print(f"\n{title}: {points} points, {len(request.SerializeToString()) / 1024:.0f} KiB a export")
            cpu = time.thread_time
            figures = {
                "snapshot": median_seconds(registry.snapshot, args.repeat),
                "convert (CPU)": median_seconds(
                    lambda: metrics_data(snapshot, push.resource, push.start_time_unix_nano), args.repeat, cpu),
                "encode (CPU)": median_seconds(lambda: encode_metrics(data).SerializeToString(), args.repeat, cpu),
                "prometheus (snapshot + text)": median_seconds(lambda: render_prometheus(registry.snapshot()),
                                                               args.repeat),
            }

            async def exports() -> None:
                await push.export()

            async def scrapes() -> None:
                await _prometheus_text(await registry.snapshot_async(), False)

            async def measure() -> dict:
                whole = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    await push.export()
                    whole.append(time.perf_counter() - started)
                return {"export (whole, wall)": statistics.median(whole),
                        "lag idle": await loop_lag(args.seconds, None),
                        "lag exporting": await loop_lag(args.seconds, exports),
                        "lag rendering Prometheus": await loop_lag(args.seconds, scrapes)}

            figures.update(uvloop.run(measure()))
            for name, value in figures.items():
                if isinstance(value, tuple):
                    print(f"  {name:32s} p99 {value[0] * 1e3:7.2f} ms   worst {value[1] * 1e3:7.2f} ms")
                else:
                    print(f"  {name:32s} {value * 1e3:7.2f} ms")
            push.exporter.shutdown()


if __name__ == "__main__":
    main()
