"""Debian's Chromium, driven headless by Playwright (never a downloaded browser), for tests.

Screenshots go to ``$FAKEAI_TEST_ARTIFACTS`` (default ``test-artifacts/`` in the checkout,
ignored by git) so a person can look at what users see.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("FAKEAI_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Chromium with a fresh profile (Playwright makes a new user-data dir per launch)."""
    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} is missing: the test command installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


class Problems(list):
    """Console errors, failed requests and error responses a page ran into."""

    def watch(self, page: Page) -> None:
        page.on("console", lambda message: message.type == "error" and self.append(f"console: {message.text}"))
        page.on("pageerror", lambda error: self.append(f"page error: {error}"))
        page.on("requestfailed", lambda request: self.append(f"failed: {request.url} {request.failure}"))
        page.on("response", lambda response: response.status >= 400 and self.append(
            f"HTTP {response.status}: {response.url}"))


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def shown_figures(page: Page) -> list[tuple[list[Any], str | None, str]]:
    """``(JSON path into /metrics, raw value shown, text shown)`` of every figure on the page."""
    return [
        (json.loads(path), value, text)
        for path, value, text in page.eval_on_selector_all(
            "[data-metric]",
            "elements => elements.map(e => [e.dataset.metric, e.dataset.value ?? null, e.textContent])",
        )
    ]


@contextlib.contextmanager
def serving_page(html: str) -> Iterator[str]:
    """The URL of ``html``, served on a port of its own (another origin than any fakeai server's)
    by a plain HTTP server in a thread, stopped afterwards."""
    body = html.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *arguments: Any) -> None:  # quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)  # bound once, to a port it chose
    thread = threading.Thread(target=server.serve_forever, name="page-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
