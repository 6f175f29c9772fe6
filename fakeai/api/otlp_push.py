"""The OTLP export: every ``--otlp-interval-seconds`` one snapshot of the server, pushed to
``--otlp-endpoint`` over OTLP/HTTP (protobuf) by OpenTelemetry's own exporter
(``OTLPMetricExporter`` of ``opentelemetry-exporter-otlp-proto-http``).

The snapshot is taken on the event loop in slices (``MetricsRegistry.snapshot_async``, as a
scrape is); turning it into OpenTelemetry's data (``fakeai.exporters.otlp``), encoding it and
POSTing it happen on a thread of their own, so the loop serves meanwhile; exports never
overlap (the next is due an interval after the previous one was due, and one that falls
behind skips rather than bursts). The exporter retries what OTLP says may be retried, within
``--otlp-timeout-seconds``; ``fakeai_otlp_exports_{sent,failed}_total`` count the outcomes. When the
server stops, one last export carries what happened since the previous one.

In a server of several processes the one holding the OTLP lease (a ``SamplingLease`` of its
own file) exports, for the whole server (a snapshot covers every process): one series per
server, whatever the number of workers. The resource names it (``service.name`` ``fakeai``,
``service.instance.id`` its instance name, ``service.version``, ``host.name``,
``server.address``, ``server.port``), so every process exports the same resource.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fakeai import __version__
from fakeai.api.background import stop_task
from fakeai.config import Settings, setting_pairs
from fakeai.metrics import MetricsRegistry, MetricsSnapshot
from fakeai.metrics.history_ring import SamplingLease

from fakeai.api.instance import instance_name

__all__ = ("EXTRA", "OtlpPush", "missing_otlp_extra")

_log = logging.getLogger("fakeai")

EXTRA = "fakeai[otlp]"
LEASE_FILE = "otlp.lock"
SENT = "fakeai_otlp_exports_sent_total"
FAILED = "fakeai_otlp_exports_failed_total"


def missing_otlp_extra() -> str | None:
    """Why ``--otlp-endpoint`` cannot be used here (one line naming the extra), or ``None``."""
    try:
        import opentelemetry.exporter.otlp.proto.http.metric_exporter  # noqa: F401
        import opentelemetry.sdk.metrics.export  # noqa: F401
    except ImportError:
        return f"--otlp-endpoint needs the optional extra {EXTRA}: pip install '{EXTRA}'"
    return None


class OtlpPush:
    """``start`` at start-up, ``stop`` at shutdown.

    Args:
        registry: Where snapshots come from (and the exports are counted).
        settings: The endpoint, interval, timeout and headers, and what names the instance.
        shared_dir: The server's shared directory (``None``: this process alone).
    """

    def __init__(self, registry: MetricsRegistry, settings: Settings, shared_dir: str | None = None) -> None:
        missing = missing_otlp_extra()
        if missing:
            raise RuntimeError(missing)
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        from fakeai.exporters.otlp import otlp_resource

        self.registry = registry
        self.interval = settings.otlp_interval_seconds
        self.timeout = settings.otlp_timeout_seconds
        self.endpoint = settings.otlp_endpoint
        self.resource = otlp_resource({
            "service.name": "fakeai",
            "service.version": __version__,
            "service.instance.id": instance_name(settings),
            "host.name": socket.gethostname(),
            "server.address": settings.host,
            "server.port": settings.port,
        })
        self.exporter = OTLPMetricExporter(
            endpoint=settings.otlp_endpoint, timeout=self.timeout,
            headers=setting_pairs(settings.otlp_headers) or None)
        self.lease = SamplingLease(shared_dir, LEASE_FILE) if shared_dir else None
        # when the server started, in Unix ns, to the ms (every process computes it alike)
        started = time.time() - (registry.clock() - registry.started_at)
        self.start_time_unix_nano = round(started * 1000) * 1_000_000
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="fakeai-otlp")
        self._task: asyncio.Task[None] | None = None
        self._exporting = False
        """Whether this process exports (it holds the lease)."""
        self._failing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        if self.lease is None or self._exporting:  # this process exports
            await self.export()  # what happened since the last export
        self.exporter.shutdown()
        self._thread.shutdown(wait=False)
        if self.lease is not None:
            self.lease.release()

    def _leading(self) -> bool:
        if self.lease is None:
            self._exporting = True
        else:
            try:
                self._exporting = self.lease.held()
            except OSError:  # out of file descriptors: try again next interval
                self._exporting = False
        return self._exporting

    async def export(self) -> bool:
        """Export one snapshot now; whether the collector accepted it."""
        snapshot = await self.registry.snapshot_async()
        sent = await asyncio.get_running_loop().run_in_executor(self._thread, self._export, snapshot)
        self.registry.add(SENT if sent else FAILED)
        if not sent and not self._failing:  # a change of outcome is logged, not every failed export
            _log.warning("OTLP export to %s failed (counted in %s)", self.endpoint, FAILED)
        elif sent and self._failing:
            _log.info("OTLP export to %s works again", self.endpoint)
        self._failing = not sent
        return sent

    def _export(self, snapshot: MetricsSnapshot) -> bool:
        from opentelemetry.sdk.metrics.export import MetricExportResult

        from fakeai.exporters.otlp import metrics_data

        data: Any = metrics_data(snapshot, self.resource, self.start_time_unix_nano)
        try:
            result = self.exporter.export(data, timeout_millis=self.timeout * 1000)
        except Exception:  # the exporter reports failures as a result; anything else is one too
            _log.exception("OTLP export failed")
            return False
        return result is MetricExportResult.SUCCESS

    async def _run(self) -> None:
        interval = self.interval
        due: float | None = None
        while True:
            if not self._leading():
                due = None
                await asyncio.sleep(interval)
                continue
            now = time.monotonic()
            if due is None:  # starting, or just took the lease
                due = now + interval
            await asyncio.sleep(max(0.0, due - now))
            try:
                await self.export()
            except Exception as exc:  # a failed export must not end the exports
                _log.error("OTLP export failed", exc_info=exc)
            due += interval
            if time.monotonic() - due > interval:  # fell behind: skip, do not burst
                due = time.monotonic()
