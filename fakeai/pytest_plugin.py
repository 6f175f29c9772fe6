"""The pytest plugin: a real fakeai server for your tests (installed with fakeai, entry point ``pytest11``).

Fixtures:

* ``fakeai_server``: a server on a loopback port for one test, stopped after it. Settings
  come from ``@pytest.mark.fakeai(ttft_ms=0, error_rate=0.5, models=["my-model"], ...)`` (any
  setting of ``fakeai.config.Settings``); by default answers come at once (``zero_latency``).
  ``@pytest.mark.fakeai(subprocess=True, ...)`` runs it in a process of its own (below).
* ``fakeai_server_factory``: ``factory(subprocess=False, **settings)`` starts more servers in
  one test.

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

**In your test process** (the default, ``FakeaiServer``) the server is uvicorn running the app
``fakeai.app.create_app`` makes, on an event loop in a thread of its own, on a socket the
fixture binds once and hands to uvicorn (no port is picked, released and bound again, so
tests in parallel cannot race for one). Nothing process-wide changes: the garbage collector is
left as it is (``fakeai serve`` freezes its start-up heap; an app in your process does not),
no logging is configured (uvicorn's loggers, ``uvicorn.error`` and ``uvicorn.access``, reach
your handlers, so pytest captures them) and no signal handler is installed. It starts in
milliseconds; ``app`` is the Litestar application. But it shares your interpreter: its work
and your test's take turns, and your collections pause it, so times measured against it
carry your test's noise.

**In a process of its own** (``subprocess=True``, ``FakeaiProcess``) the server is
``python -m fakeai serve``, as a user runs it, on a socket the fixture binds and hands it
(``--fd``): for tests that measure timing. It takes about a second to start. What differs:

* ``snapshot()`` asks the server for its snapshot over HTTP (``GET /metrics/snapshot``, the
  ``MetricsSnapshot`` msgpack-encoded) and ``metrics()`` is ``GET /metrics``: with
  ``record_monitoring=True`` those requests are counted too. Either way (as in your process)
  the snapshot is taken on the server's event loop after the requests whose answers your
  client has read were recorded (with ``workers=1``; with several workers another one may
  answer before the first has recorded its last request).
* There is no ``app``; ``process`` is the ``subprocess.Popen`` and ``log()`` what the server
  printed (shown when it fails to start).
* The settings reach it as ``FAKEAI_*`` variables, so no list item may hold a comma; the
  test process's own ``FAKEAI_*`` settings are not passed on. ``workers`` > 1 works here only.
* ``configure()`` and ``reset_prefix_cache()`` go through its admin API, with the
  ``admin_key`` of your settings or one made for it (``settings.admin_key``); ``start``
  returns once it serves (``/health/live``), ``wait_until_ready()`` once it has loaded.
* It is stopped with SIGTERM, as ``fakeai serve`` is (requests in flight get
  ``graceful_timeout_seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from fakeai.config import Settings
    from fakeai.metrics import MetricsSnapshot

__all__ = ("FakeaiProcess", "FakeaiServer", "fakeai_server", "fakeai_server_factory")

STARTUP_SECONDS = 30.0
STOP_SECONDS = 15.0
"""How long a stop waits beyond the server's own graceful timeout before it gives up (a
thread) or kills (a process)."""


def _loopback_socket() -> socket.socket:
    """A TCP socket bound to a free loopback port: bound here once, served by the server."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


class FakeaiServer:
    """A running fakeai server: uvicorn in a thread of the test process (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        from fakeai.app import create_app
        from fakeai.server import EmbeddedServerConfig

        self.settings = settings
        self.app = create_app(settings)
        self._socket = _loopback_socket()
        port = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.openai_base_url = self.base_url + "/v1"
        config = EmbeddedServerConfig(self.app, settings, host="127.0.0.1", port=port, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name=f"fakeai-{port}", daemon=True
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self.app.on_startup.append(self._note_loop)

    def _note_loop(self) -> None:
        self._loop = asyncio.get_running_loop()

    def start(self) -> FakeaiServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the fakeai server stopped during start-up (see the captured log)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the fakeai server did not start in {STARTUP_SECONDS} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=self.settings.graceful_timeout_seconds + STOP_SECONDS)
        self._socket.close()  # uvicorn closes it when it stops; not when it never started

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


class FakeaiProcess:
    """A running ``python -m fakeai serve`` of its own (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        if not settings.admin_key:  # configure() speaks to it through its admin API
            settings = settings.replace(admin_key=secrets.token_urlsafe(16))
        self.settings = settings
        self._socket = _loopback_socket()
        self.base_url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.openai_base_url = self.base_url + "/v1"
        self._log = tempfile.TemporaryFile()
        self.process: subprocess.Popen[bytes] | None = None

    def _environment(self) -> dict[str, str]:
        from fakeai.config import Settings, describe_settings, env_name, env_text

        defaults = Settings()
        names = [name for name, _, _, _ in describe_settings()]
        environment = {key: value for key, value in os.environ.items() if key not in {env_name(n) for n in names}}
        for name in names:
            value = getattr(self.settings, name)
            if value == getattr(defaults, name):
                continue
            if isinstance(value, tuple) and any("," in str(item) for item in value):
                raise ValueError(f"{name}: an item has a comma, which a server in a process of its own cannot be given")
            environment[env_name(name)] = env_text(name, value)
        return environment

    def start(self) -> FakeaiProcess:
        fd = self._socket.fileno()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fakeai", "serve", "--fd", str(fd)],
            env=self._environment(),
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._socket.close()  # the server has its own copy: the port is free again once it stops
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self._answers("/health/live"):
            if self.process.poll() is not None:
                raise RuntimeError(f"fakeai serve exited ({self.process.returncode}) during start-up:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"fakeai serve did not start in {STARTUP_SECONDS} s:\n{self.log()}")
            time.sleep(0.01)
        return self

    def _answers(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=1.0) as answer:
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_until_ready(self, timeout: float = STARTUP_SECONDS) -> FakeaiProcess:
        """Return once the simulated model has loaded (``startup_seconds``): ``/health`` says 200."""
        deadline = time.monotonic() + timeout
        while not self._answers("/health"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the fakeai server was not ready in {timeout} s")
            time.sleep(0.01)
        return self

    def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import msgspec

        from fakeai.api.errors import APIError

        request = urllib.request.Request(
            self.base_url + path,
            data=None if body is None else msgspec.json.encode(body),
            method=method,
            headers={"Authorization": f"Bearer {self.settings.admin_key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=STARTUP_SECONDS) as answer:
                return msgspec.json.decode(answer.read())
        except urllib.error.HTTPError as exc:
            error = msgspec.json.decode(exc.read())["error"]
            raise APIError(exc.code, error["message"], type=error["type"], param=error["param"],
                           code=error["code"]) from None

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change runtime settings of the running server (``PATCH /admin/config`` with the
        server's own admin key, made for it when the settings name none); as
        ``FakeaiServer.configure``."""
        return self._admin("PATCH", "/admin/config", changes)

    def reset_prefix_cache(self) -> dict[str, Any]:
        """Empty the simulated prefix caches, as ``FakeaiServer.reset_prefix_cache``."""
        return self._admin("POST", "/admin/reset-prefix-cache")

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.settings.graceful_timeout_seconds + STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._socket.close()

    def log(self) -> str:
        """What the server has printed so far (its log, on stdout and stderr)."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def _get(self, path: str, accept: str) -> bytes:
        request = urllib.request.Request(self.base_url + path, headers={"Accept": accept})
        with urllib.request.urlopen(request, timeout=STARTUP_SECONDS) as answer:
            return answer.read()

    def snapshot(self) -> MetricsSnapshot:
        """Everything the server has recorded, now (``GET /metrics/snapshot``)."""
        import msgspec

        from fakeai.metrics import MetricsSnapshot

        return msgspec.msgpack.decode(self._get("/metrics/snapshot", "*/*"), type=MetricsSnapshot)

    def metrics(self) -> dict[str, Any]:
        """``GET /metrics`` as a dict."""
        import msgspec

        return msgspec.json.decode(self._get("/metrics", "application/json"))


def _settings(overrides: dict[str, Any]) -> Settings:
    from fakeai.config import Settings

    return Settings().replace(**{"zero_latency": True, **overrides})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fakeai(subprocess=False, **settings): settings of the fakeai_server fixture (any fakeai setting, by "
        "name); subprocess=True runs it as `fakeai serve` in a process of its own",
    )


@pytest.fixture
def fakeai_server_factory() -> Iterator[Callable[..., FakeaiServer | FakeaiProcess]]:
    """``factory(subprocess=False, **settings)``: a started server; every one is stopped after the test."""
    servers: list[FakeaiServer | FakeaiProcess] = []

    def start(*, subprocess: bool = False, **settings: Any) -> FakeaiServer | FakeaiProcess:
        server = (FakeaiProcess if subprocess else FakeaiServer)(_settings(settings))
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


@pytest.fixture
def fakeai_server(
    request: pytest.FixtureRequest, fakeai_server_factory: Callable[..., FakeaiServer | FakeaiProcess]
) -> FakeaiServer | FakeaiProcess:
    """A fakeai server for this test, configured by its ``@pytest.mark.fakeai(...)`` marks."""
    settings: dict[str, Any] = {}
    for mark in reversed(list(request.node.iter_markers("fakeai"))):  # the closest mark wins
        settings.update(mark.kwargs)
    return fakeai_server_factory(**settings)
