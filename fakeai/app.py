"""Wires fakeai together: ``create_app(settings)`` returns the Litestar application.

Nothing is built at import time: each call makes its own metrics registry and engine, so
two apps (or two tests) never share state, and nothing process-wide changes (no garbage
collector, logging or signal setting), so an app can run in a process that is not its own:
``create_app_from_env``, ``fakeai serve``'s factory, adds what only a server's own process does.
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Callable
from typing import Any

from litestar import Litestar, Router

from fakeai.api.admin import admin_handlers
from fakeai.api.anthropic_messages import messages_handler
from fakeai.api.auth import api_key_guard
from fakeai.api.chat import chat_completions_handler
from fakeai.api.completions import completions_handler
from fakeai.api.cors import cors_config, with_cors
from fakeai.api.dashboard import dashboard_handlers
from fakeai.api.embeddings import embeddings_handler
from fakeai.api.engine import Engine
from fakeai.api.errors import EXCEPTION_HANDLERS
from fakeai.api.models import model_handlers
from fakeai.api.control import RuntimeControl
from fakeai.api.monitoring import monitoring_handlers
from fakeai.api.otlp_push import OtlpPush
from fakeai.api.readiness import Readiness
from fakeai.api.recording import Recorder
from fakeai.api.responses_api import responses_handler
from fakeai.api.sampling import HistorySampler
from fakeai.api.tokenize import tokenize_handlers
from fakeai.config import Settings, settings_from_env
from fakeai.metrics import MetricsRegistry
from fakeai.metrics.labels import engines_per_process
from fakeai.metrics.regions import claim_slot, shared_counter
from fakeai.metrics.history import MetricsHistory
from fakeai.metrics.history_ring import SamplingLease, SharedHistory
from fakeai.metrics.history_store import HISTORY_DB_FILE, HistoryStore

__all__ = ("create_app", "create_app_from_env")


SERVING_COLLECTION_THRESHOLD = 100_000
"""Tracked objects allocated (net of those freed) before the collector's young generation is
collected, in a server process (Python's default: 700).

Serving makes next to no cyclic garbage -- a request frees what it allocated by reference
counting -- but the default counted what the requests in flight were holding. Under 100 paced
streams and a stream of cheap requests it collected every twenty-odd requests and found
nothing; each collection moved what was in flight to an older generation, and walking those
took 2-8 ms every tenth collection and 5-50 ms every hundredth: late tokens. Above what is
ever in flight, a collection comes only when garbage that needs one has piled up.
"""


def prepare_collector_for_serving() -> None:
    """Move everything built at start-up out of the garbage collector's sight, and collect
    only when garbage piles up (``SERVING_COLLECTION_THRESHOLD``).

    Later collections then walk only per-request objects, so their pauses stay short
    (they showed as late tokens under load). See ``gc.freeze``. It changes the whole
    process, so only a server process of its own does it (``create_app_from_env``), never
    an app made in someone else's process (a test's, the pytest plugin's).
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(SERVING_COLLECTION_THRESHOLD, older, oldest)


def kv_worker_ids(settings: Settings, slot: int) -> list[int]:
    """The simulated KV workers this server process routes among: its share of ``kv_workers``
    (ids ``slot``, ``slot + workers``, ...), at least one (id ``kv_workers + slot`` if the
    share is empty)."""
    ids = list(range(slot, settings.kv_workers, settings.workers))
    return ids or [settings.kv_workers + slot]


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> Litestar:
    """A new application with its own metrics registry and simulated model.

    Args:
        settings: The configuration; defaults throughout when omitted.
        clock: Monotonic seconds for the metrics windows and token deadlines (tests inject one).
        wall_clock: Unix seconds that stamp snapshots.
    """
    settings = settings or Settings()
    registry = MetricsRegistry(
        window_seconds=settings.window_seconds,
        max_samples=settings.max_window_samples,
        clock=clock,
        wall_clock=wall_clock,
        model_label_budget=settings.max_model_labels,
        configured_models=settings.models,
        engines=engines_per_process(settings.kv_workers, settings.workers),
        max_model_len=settings.max_context_tokens,
    )
    slot = claim_slot(registry.regions.directory, settings.workers)
    shared = registry.regions.directory
    engine = Engine(
        settings,
        registry.clock,
        lambda: registry.in_flight,
        kv_worker_ids(settings, slot),
        shared_counter(shared, "requests") if shared is not None and settings.fail_first else None,
        registry.writer if settings.record_metrics else None,
        registry.kv_publish,
    )
    engine.readiness = Readiness(registry.clock, registry.started_at + settings.startup_seconds)
    control = RuntimeControl(engine, settings, shared, registry.kv_publish, wall_clock)
    engine.poll_control = control.poll
    registry.next_deadline = engine.next_deadline  # reads give way to paced tokens
    if settings.record_metrics:
        engine.observe_lateness = registry.observer("fakeai_paced_lateness_seconds")
    kv_cache = engine.kv_cache
    registry.kv_cache.attach(
        model_name=settings.models[0] if settings.models else "",
        policy=kv_cache.policy,
        block_tokens=kv_cache.block_tokens,
    )
    for worker_id, state in zip(kv_cache.ids, kv_cache.worker_state()):  # every worker shows from the start
        registry.kv_publish(worker_id, state)
    history: MetricsHistory | SharedHistory
    store = history_store(settings, shared, wall_clock)
    if shared is None:
        history = MetricsHistory(settings.history_seconds, settings.history_interval_seconds)
        sampler = HistorySampler(registry, history, store=store)
    else:  # one history for the server, sampled by one of its processes
        history = SharedHistory(shared, settings.history_seconds, settings.history_interval_seconds)
        sampler = HistorySampler(registry, history, SamplingLease(shared), store)
    # each watched by one process of the server (a lease of its own), off the serving path
    beyond: list[Any] = []
    if settings.alert_webhook:
        from fakeai.api.alerting import HealthAlerts  # imports an HTTP client: only when needed

        beyond.append(HealthAlerts(registry, settings, shared))
    if settings.otlp_endpoint:
        beyond.append(OtlpPush(registry, settings, shared))
    v1 = Router(
        path="/",
        route_handlers=[
            chat_completions_handler(engine, registry, settings.max_request_bytes),
            completions_handler(engine, registry, settings.max_request_bytes),
            embeddings_handler(engine, registry, settings.embedding_dimensions, settings.max_request_bytes),
            responses_handler(engine, registry, settings.max_request_bytes),
            *model_handlers(engine),
        ],
        guards=[api_key_guard(settings.api_keys)] if settings.api_keys else None,
    )
    app = Litestar(
        route_handlers=[
            v1,
            # Anthropic's route reads its key its own way (x-api-key) and answers in its own shape
            messages_handler(engine, registry, settings.max_request_bytes, settings.api_keys),
            *tokenize_handlers(engine, settings.max_request_bytes),  # vLLM's, outside /v1: no key
            *monitoring_handlers(registry, settings.metrics_format, history, engine.readiness,
                                 lambda: server_state(settings, engine, control), store, wall_clock),
            *dashboard_handlers(settings.dashboard_refresh_seconds, settings.history_seconds),
            *(admin_handlers(control, settings.admin_key) if settings.admin_key else ()),
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_max_body_size=settings.max_request_bytes,
        openapi_config=None,
        logging_config=None,
        cors_config=cors_config(settings),
        on_startup=[engine.start, sampler.start, sampler.begun, *(job.start for job in beyond)],
        on_shutdown=[sampler.stop, *(job.stop for job in beyond), engine.stop, control.close],
    )
    app.asgi_handler = with_cors(
        app,
        lambda handler: Recorder(
            handler,
            registry,
            engine.kv_cache,
            record_monitoring=settings.record_monitoring,
            enabled=settings.record_metrics,
            send_timeout=settings.send_timeout_seconds,
        ),
    )
    app.state.settings = settings
    app.state.metrics = registry
    app.state.engine = engine
    app.state.history = history
    app.state.history_store = store
    app.state.control = control
    return app


def history_store(settings: Settings, shared: str | None, wall_clock: Callable[[], float]) -> HistoryStore:
    """The history database: ``--history-db``, or in memory (the shared directory's file when
    the server has one). A server of one process in someone else's (a test's) takes the file's
    writer lock itself; ``fakeai serve`` takes it before starting its workers."""
    path = None
    if settings.history_db:
        path = os.path.expanduser(settings.history_db)
    elif shared is not None:
        path = os.path.join(shared, HISTORY_DB_FILE)
    return HistoryStore(
        path,
        seconds=settings.history_seconds,
        interval_seconds=settings.history_interval_seconds,
        downsample_seconds=settings.history_downsample_seconds,
        retention_seconds=settings.history_retention_seconds,
        # while the disk stalls, the points the live ring still shows wait for it
        queue_points=math.ceil(settings.history_seconds / settings.history_interval_seconds),
        lock=bool(settings.history_db) and shared is None,
        wall_clock=wall_clock,
    )


def server_state(settings: Settings, engine: Engine, control: RuntimeControl) -> dict[str, Any]:
    """What ``/health/detailed`` adds to the metrics: readiness, the engine model's limits and
    this process's engines, and the runtime changes (``GET /admin/config``'s view)."""
    limits = engine.batching.limits
    left = engine.readiness.remaining()
    return {
        "ready": not left,
        "readiness": {"startup_seconds": settings.startup_seconds, "ready_in_seconds": left},
        "engine_model": {
            "enabled": limits.enabled,
            "max_num_seqs": limits.max_num_seqs,
            "max_num_batched_tokens": limits.max_num_batched_tokens,
            "kv_capacity_blocks": limits.capacity_blocks,
            "kv_block_tokens": limits.block_tokens,
            "engines_of_this_process": engine.batching.state(),
        },
        "runtime_control": control.view(),
    }


def create_app_from_env() -> Litestar:
    """The factory uvicorn calls in each worker process of ``fakeai serve``: settings come from
    ``FAKEAI_*`` variables; once the app has started, the start-up heap is frozen and the
    garbage collector set for serving (the process is the server's own)."""
    app = create_app(settings_from_env())
    app.on_startup.append(prepare_collector_for_serving)
    return app
