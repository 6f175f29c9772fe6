"""``GET /dashboard``: the page and its assets, shipped inside the package (no CDN, no network).

The page (``fakeai/dashboard/``) reads ``/metrics`` and ``/metrics/history`` itself; the
server only fills in the default refresh interval and the live history's span (the range
selector's first choice). Assets are read once, at app creation.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from litestar.handlers import ASGIRouteHandler

from fakeai.api.responses import document_method, send_document
from fakeai.api.routes import asgi

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

__all__ = ("ASSETS", "dashboard_handlers")

ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "vendor/uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "vendor/uPlot.min.css": "text/css; charset=utf-8",
    "vendor/uPlot.LICENSE": "text/plain; charset=utf-8",
}
"""Every file the page uses, by its path under ``/dashboard/``."""


def _read(name: str) -> bytes:
    return resources.files("fakeai").joinpath("dashboard", *name.split("/")).read_bytes()


def span(seconds: float) -> str:
    """``last 15 min`` for 900 seconds: the live history's span, as the page names it."""
    for unit, size in (("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"last {seconds / size:.4g} {unit}"
    return f"last {seconds:.4g} s"


def dashboard_handlers(refresh_seconds: float, history_seconds: float = 900.0) -> list[ASGIRouteHandler]:
    page = (
        _read("index.html")
        .replace(b"{{refresh_seconds}}", repr(float(refresh_seconds)).encode())
        .replace(b"{{live_range}}", span(history_seconds).encode())
    )
    assets = {name: (_read(name), content_type) for name, content_type in ASSETS.items()}

    @asgi("/dashboard", copy_scope=False)
    async def dashboard_page(scope: Scope, receive: Receive, send: Send) -> None:
        await send_document(send, document_method(scope), page, "text/html; charset=utf-8",
                            ((b"cache-control", b"no-store"),))

    @asgi([f"/dashboard/{name}" for name in assets], copy_scope=False)
    async def dashboard_asset(scope: Scope, receive: Receive, send: Send) -> None:
        method = document_method(scope)
        body, content_type = assets[scope["path"].removeprefix("/dashboard/")]
        # no-cache: revalidated on every load, so a page served after an upgrade never mixes versions
        await send_document(send, method, body, content_type, ((b"cache-control", b"no-cache"),))

    return [dashboard_page, dashboard_asset]
