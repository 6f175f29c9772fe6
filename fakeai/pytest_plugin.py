"""The pytest plugin: a real fakeai server for your tests (installed with fakeai, entry point ``pytest11``).

Fixtures:

* ``fakeai_server``: a server on a free loopback port for one test, stopped after it. Settings
  come from ``@pytest.mark.fakeai(ttft_ms=0, error_rate=0.5, models=["my-model"], ...)`` (any
  setting of ``fakeai.config.Settings``); by default answers come at once (``zero_latency``).
* ``fakeai_server_factory``: ``factory(**settings)`` starts more servers in one test.

A server has ``base_url`` (``http://127.0.0.1:<port>``), ``openai_base_url`` (with ``/v1``, for
``OpenAI(base_url=...)``), ``settings``, ``snapshot()`` (what the server saw: a
``fakeai.metrics.MetricsSnapshot``, computed when called), ``metrics()`` (the
``GET /metrics`` JSON document), ``configure(**changes)`` (change the latency model, error
injection or engine limits of the running server, as ``PATCH /admin/config`` does),
``reset_prefix_cache()`` and ``wait_until_ready()`` (for a server with ``startup_seconds``),
so a test can assert, say, that its client made three streaming requests and no retries::

    @pytest.mark.fakeai(models=["m"])
    def test_my_client(fakeai_server):
        run_my_client(base_url=fakeai_server.openai_base_url)
        seen = fakeai_server.snapshot()
        assert seen.endpoints["/v1/chat/completions"].requests_total == 3
        assert seen.streaming.completed_streams == 3
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from fakeai.config import Settings
    from fakeai.metrics import MetricsSnapshot

__all__ = ("FakeaiServer", "fakeai_server", "fakeai_server_factory")

STARTUP_SECONDS = 30.0


class FakeaiServer:
    """A running fakeai server (uvicorn in a thread of the test process)."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        from fakeai.app import create_app

        self.settings = settings
        self.app = create_app(settings)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.openai_base_url = self.base_url + "/v1"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"fakeai-{port}", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.app.on_startup.append(self._note_loop)

    def _note_loop(self) -> None:
        self._loop = asyncio.get_running_loop()

    def start(self) -> FakeaiServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the fakeai server stopped during start-up (see the log above)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the fakeai server did not start in {STARTUP_SECONDS} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def snapshot(self) -> MetricsSnapshot:
        """Everything the server has recorded, now.

        Computed on the server's own event loop, after what it is doing: the server records a
        request just after its last byte went out, so a client can have read a whole answer
        (a stream's ``[DONE]``) before it is counted; read from the test's thread, the
        snapshot could then miss it.
        """
        registry = self.app.state.metrics
        loop = self._loop
        if loop is None or loop.is_closed() or not self._thread.is_alive():
            return registry.snapshot()  # not serving (any more): nothing is being recorded

        async def take() -> MetricsSnapshot:
            return registry.snapshot()

        return asyncio.run_coroutine_threadsafe(take(), loop).result(timeout=STARTUP_SECONDS)

    def _on_loop(self, call: Callable[[], Any]) -> Any:
        """``call()`` on the server's event loop (where the engine runs), or here if it is not serving."""
        loop = self._loop
        if loop is None or loop.is_closed() or not self._thread.is_alive():
            return call()

        async def run() -> Any:
            return call()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=STARTUP_SECONDS)

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change runtime settings of the running server, as ``PATCH /admin/config`` does (no admin
        key needed from the test that owns it): the latency model, error injection, the engine
        model's limits (``fakeai.api.control.RUNTIME_SETTINGS``). Returns the new view
        (``generation``, ``settings``, ``changes``); a bad value raises ``fakeai.api.errors.APIError``."""
        return self._on_loop(lambda: self.app.state.control.change(changes, source="pytest"))

    def reset_prefix_cache(self) -> dict[str, Any]:
        """Empty the simulated prefix caches (what no running request uses), as
        ``POST /admin/reset-prefix-cache`` does."""
        return self._on_loop(lambda: self.app.state.control.reset_prefix_cache(source="pytest"))

    def wait_until_ready(self, timeout: float = STARTUP_SECONDS) -> FakeaiServer:
        """Return once the simulated model has loaded (``startup_seconds``)."""
        readiness = self.app.state.engine.readiness
        deadline = time.monotonic() + timeout
        while readiness.remaining():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the fakeai server was not ready in {timeout} s")
            time.sleep(min(0.01, max(readiness.remaining(), 0.001)))
        return self

    def metrics(self) -> dict[str, Any]:
        """``GET /metrics`` as a dict (the same numbers as ``snapshot``, in the seed's JSON)."""
        import msgspec

        from fakeai.exporters import render_json

        return msgspec.json.decode(render_json(self.snapshot()))


def _settings(overrides: dict[str, Any]) -> Settings:
    from fakeai.config import Settings

    return Settings().replace(**{"zero_latency": True, **overrides})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fakeai(**settings): settings of the fakeai_server fixture (any fakeai setting, by name)"
    )


@pytest.fixture
def fakeai_server_factory() -> Iterator[Callable[..., FakeaiServer]]:
    """``factory(**settings)``: a started server; every one is stopped after the test."""
    servers: list[FakeaiServer] = []

    def start(**settings: Any) -> FakeaiServer:
        server = FakeaiServer(_settings(settings)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


@pytest.fixture
def fakeai_server(request: pytest.FixtureRequest, fakeai_server_factory: Callable[..., FakeaiServer]) -> FakeaiServer:
    """A fakeai server for this test, configured by its ``@pytest.mark.fakeai(...)`` marks."""
    settings: dict[str, Any] = {}
    for mark in reversed(list(request.node.iter_markers("fakeai"))):  # the closest mark wins
        settings.update(mark.kwargs)
    return fakeai_server_factory(**settings)
