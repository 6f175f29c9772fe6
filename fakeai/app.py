"""Wires fakeai together: ``create_app(settings)`` returns the Litestar application."""

from __future__ import annotations

import time

import msgspec
from litestar import Litestar, get

from fakeai.config import Settings, settings_from_env
from fakeai.metrics import MetricsRegistry

__all__ = ("create_app", "create_app_from_env")


class Health(msgspec.Struct, kw_only=True, frozen=True):
    status: str
    timestamp: float


@get("/health", sync_to_thread=False)
def health() -> Health:
    return Health(status="healthy", timestamp=time.time())


def create_app(settings: Settings | None = None) -> Litestar:
    """A new application with its own metrics registry; nothing is shared between apps."""
    settings = settings or Settings()
    registry = MetricsRegistry(window_seconds=settings.window_seconds, max_samples=settings.max_window_samples)
    app = Litestar(route_handlers=[health], openapi_config=None)
    app.state.settings = settings
    app.state.metrics = registry
    return app


def create_app_from_env() -> Litestar:
    """The factory uvicorn calls in each worker: settings come from ``FAKEAI_*`` variables."""
    return create_app(settings_from_env())
