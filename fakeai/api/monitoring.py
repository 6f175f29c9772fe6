"""The monitoring endpoints: every format renders one snapshot taken for the request, but
``/health`` (probes hit it every few seconds), which renders the registry's cheap health
reading (or 503 ``loading`` while the model loads: ``fakeai.api.readiness``), ``/health/live``
(200 while the process serves), and ``/metrics/history``, which renders the history's points
(``fakeai.api.history_endpoint``).

``GET /metrics`` negotiates: a client preferring ``application/openmetrics-text`` or
``text/plain`` (a Prometheus server) gets Prometheus text, anyone else (curl, browsers,
``Accept: */*``) the seed's JSON, or Prometheus text when ``--metrics-format prometheus``.
``/metrics/prometheus`` and ``/prometheus/metrics`` (TensorRT-LLM's path, which AIPerf
probes) always send Prometheus text: OpenMetrics 1.0 when the client asks for it, text
0.0.4 otherwise. ``/metrics/snapshot`` sends the snapshot itself, msgpack-encoded, for Python
tools (the pytest plugin's server in a process of its own): ``msgspec.msgpack.decode(body,
type=fakeai.metrics.MetricsSnapshot)`` is the ``MetricsSnapshot`` the server took. Every
endpoint answers HEAD with the headers GET would send.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.handlers import ASGIRouteHandler

from fakeai.api.responses import document_method, send_document
from fakeai.api.routes import asgi
from fakeai.exporters import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    render_csv,
    render_detailed_health,
    render_health,
    render_json,
    render_kv_cache_json,
    render_loading,
    prometheus_steps,
)
from fakeai.api.history_endpoint import history_handler
from fakeai.metrics.slicing import no_deadline, run_in_slices

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from fakeai.api.readiness import Readiness
    from fakeai.metrics import MetricsRegistry, MetricsSnapshot
    from fakeai.metrics.history import MetricsHistory
    from fakeai.metrics.history_ring import SharedHistory
    from fakeai.metrics.history_store import HistoryStore

__all__ = ("SNAPSHOT_CONTENT_TYPE", "choose_format", "monitoring_handlers")

JSON_CONTENT_TYPE = "application/json"
SNAPSHOT_CONTENT_TYPE = "application/vnd.msgpack"
_ALIVE = b'{"status":"alive"}'
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
CSV_FILENAME = "fakeai-metrics.csv"

def _preferences(accept: str) -> dict[str, float]:
    """Media type -> q from an Accept header (the highest q where a type repeats)."""
    preferences: dict[str, float] = {}
    for part in accept.split(","):
        media, *parameters = part.split(";")
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.strip().partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.strip().lower()
        if media:
            preferences[media] = max(preferences.get(media, 0.0), quality)
    return preferences


def choose_format(accept: str | None, default: str) -> str:
    """``json``, ``openmetrics`` or ``text`` for an Accept header; ``default`` when it is silent.

    Only types the client names count as a preference; a wildcard leaves the choice to
    ``default`` (``json`` or ``prometheus``, the latter meaning text 0.0.4).
    """
    fallback = "text" if default == "prometheus" else "json"
    if not accept:
        return fallback
    preferences = _preferences(accept)
    named = {
        "openmetrics": preferences.get("application/openmetrics-text", 0.0),
        "text": preferences.get("text/plain", 0.0),
        "json": preferences.get("application/json", 0.0),
    }
    best = max(named.values())
    wildcard = max(preferences.get("*/*", 0.0), preferences.get("text/*", 0.0), preferences.get("application/*", 0.0))
    if best <= 0.0 or best < wildcard:
        return fallback
    return next(name for name, quality in named.items() if quality == best)  # ties: openmetrics, text, json


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _prometheus_text(snapshot: MetricsSnapshot, openmetrics: bool,
                           next_deadline: Callable[[], float] = no_deadline) -> bytes:
    """The exposition, rendered a family at a time between which the event loop may run."""
    lines: list[str] = []
    await run_in_slices(prometheus_steps(lines, snapshot, openmetrics=openmetrics), next_deadline=next_deadline)
    return "\n".join(lines).encode()


async def _prometheus(snapshot: MetricsSnapshot, accept: str | None,
                      next_deadline: Callable[[], float] = no_deadline) -> tuple[bytes, str]:
    if choose_format(accept, "prometheus") == "openmetrics":
        return await _prometheus_text(snapshot, True, next_deadline), OPENMETRICS_CONTENT_TYPE
    return await _prometheus_text(snapshot, False, next_deadline), TEXT_CONTENT_TYPE


Render = Callable[[str | None], Awaitable[tuple[bytes, str]]]
"""From the request's Accept header (or None) to the body and its content type."""


def _endpoint(path: str | list[str], render: Render, extra_headers: tuple[tuple[bytes, bytes], ...] = ()) -> ASGIRouteHandler:
    @asgi(path, copy_scope=False)
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        method = document_method(scope)
        body, content_type = await render(_header(scope, b"accept"))
        await send_document(send, method, body, content_type, ((b"cache-control", b"no-store"), *extra_headers))

    return handler


def _health(registry: MetricsRegistry, readiness: Readiness | None) -> ASGIRouteHandler:
    """``/health``: the cheap health reading, or 503 ``loading`` while the model loads."""

    @asgi("/health", copy_scope=False)
    async def health(scope: Scope, receive: Receive, send: Send) -> None:
        method = document_method(scope)
        left = 0.0 if readiness is None or readiness.ready else readiness.remaining()
        if left:
            body, status = render_loading(time.time(), left), 503
        else:
            body, status = render_health(await registry.health_async()), 200
        await send_document(send, method, body, JSON_CONTENT_TYPE, ((b"cache-control", b"no-store"),), status)

    return health


def monitoring_handlers(
    registry: MetricsRegistry,
    metrics_format: str,
    history: MetricsHistory | SharedHistory,
    readiness: Readiness | None = None,
    details: Callable[[], dict[str, Any]] | None = None,
    store: HistoryStore | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> list[ASGIRouteHandler]:
    """The monitoring endpoints; ``readiness`` makes ``/health`` say 503 ``loading`` while the
    model loads, ``details`` adds the server's state to ``/health/detailed``, ``store`` answers
    ``/metrics/history``'s queries (``wall_clock``: Unix seconds, for ``since=1h``)."""
    def of_snapshot(render: Callable[[MetricsSnapshot, str | None], Awaitable[tuple[bytes, str]]]) -> Render:
        async def rendered(accept: str | None) -> tuple[bytes, str]:
            return await render(await registry.snapshot_async(), accept)

        return rendered

    def of(render: Callable[[MetricsSnapshot], bytes], content_type: str) -> Render:
        async def rendered(_: str | None) -> tuple[bytes, str]:
            return render(await registry.snapshot_async()), content_type

        return rendered

    def now(body: Callable[[], bytes]) -> Render:
        async def rendered(_: str | None) -> tuple[bytes, str]:
            return body(), JSON_CONTENT_TYPE

        return rendered

    async def prometheus(snapshot: MetricsSnapshot, accept: str | None) -> tuple[bytes, str]:
        return await _prometheus(snapshot, accept, registry.next_deadline)

    async def negotiated(snapshot: MetricsSnapshot, accept: str | None) -> tuple[bytes, str]:
        chosen = choose_format(accept, metrics_format)
        if chosen == "json":
            return render_json(snapshot), JSON_CONTENT_TYPE
        return await prometheus(snapshot, "application/openmetrics-text" if chosen == "openmetrics" else None)

    attachment = (b"content-disposition", f'attachment; filename="{CSV_FILENAME}"'.encode())
    return [
        _endpoint("/metrics", of_snapshot(negotiated), ((b"vary", b"Accept"),)),
        _endpoint(["/metrics/prometheus", "/prometheus/metrics"], of_snapshot(prometheus)),
        _endpoint("/metrics/csv", of(render_csv, CSV_CONTENT_TYPE), (attachment,)),
        _endpoint("/metrics/snapshot", of(msgspec.msgpack.encode, SNAPSHOT_CONTENT_TYPE)),
        history_handler(history, store, wall_clock, registry.next_deadline),
        _health(registry, readiness),  # a readiness probe: cheap
        _endpoint("/health/live", now(lambda: _ALIVE)),  # a liveness probe: the process serves
        _endpoint("/health/detailed",
                  of(lambda snapshot: render_detailed_health(snapshot, details() if details else None),
                     JSON_CONTENT_TYPE)),
        _endpoint(["/kv-cache-metrics", "/kv-cache/metrics"], of(render_kv_cache_json, JSON_CONTENT_TYPE)),
    ]
