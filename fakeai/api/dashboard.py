"""``GET /dashboard``: the page and its assets, shipped inside the package (no CDN, no network).

The page (``fakeai/dashboard/``) reads ``/metrics`` and ``/metrics/history`` itself; the
server only fills in the default refresh interval. Assets are read once, at app creation.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from litestar import asgi
from litestar.exceptions import MethodNotAllowedException
from litestar.handlers import ASGIRouteHandler

from fakeai.api.recording import EXCHANGE_KEY

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


def dashboard_handlers(refresh_seconds: float) -> list[ASGIRouteHandler]:
    page = _read("index.html").replace(b"{{refresh_seconds}}", repr(float(refresh_seconds)).encode())
    assets = {name: (_read(name), content_type) for name, content_type in ASSETS.items()}

    async def respond(scope: Scope, send: Send, body: bytes, content_type: str, cache: bytes) -> None:
        exchange = scope.get(EXCHANGE_KEY)
        if exchange is not None:
            exchange.monitoring = True
        method = scope["method"]  # type: ignore[typeddict-item]
        if method not in ("GET", "HEAD"):
            raise MethodNotAllowedException(headers={"Allow": "GET, HEAD"})
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", b"%d" % len(body)),
            (b"cache-control", cache),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    @asgi("/dashboard", copy_scope=False)
    async def dashboard_page(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(scope, send, page, "text/html; charset=utf-8", b"no-store")

    @asgi([f"/dashboard/{name}" for name in assets], copy_scope=False)
    async def dashboard_asset(scope: Scope, receive: Receive, send: Send) -> None:
        body, content_type = assets[scope["path"].removeprefix("/dashboard/")]
        # no-cache: revalidated on every load, so a page served after an upgrade never mixes versions
        await respond(scope, send, body, content_type, b"no-cache")

    return [dashboard_page, dashboard_asset]
