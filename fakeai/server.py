"""Serving fakeai with uvicorn: its configuration from ``Settings``, and a clean stop.

``serve`` runs one server process, or a supervisor and ``--workers`` of them. On SIGTERM or
SIGINT the server stops accepting connections, lets the requests in flight finish for
``graceful_timeout_seconds``, then cuts the rest (each recorded as 499, a stream as failed:
``fakeai.api.connections``); a second SIGTERM or SIGINT cuts them at once. Either way ``serve``
returns normally, so the command removes its shared-memory directory and exits 0.

What uvicorn alone does differently: a single process re-raises the signal once stopped (exit
143 for SIGTERM); only a second SIGINT hurries it, not a second SIGTERM; the supervisor of
several workers ignores a second signal, stops them with SIGTERM, which they re-raise to die
of; and a hurried stop skips the application's shutdown, whose task is then cancelled. Here a
single process is a ``_Server``, the supervisor stops its workers with SIGINT (as a terminal's
Ctrl+C would: they exit normally once stopped) and passes a second signal on, and the
application's lifespan (``_Lifespan``) still shuts down when its task is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.lifespan.on import LifespanOn
from uvicorn.supervisors.multiprocess import Multiprocess

from fakeai.api.connections import FakeaiHttpProtocol
from fakeai.config import Settings

__all__ = ("STARTUP_FAILURE", "ServerConfig", "raise_open_files_limit", "serve", "summary")

_STOPPING = (signal.SIGINT, signal.SIGTERM)
logger = logging.getLogger("uvicorn.error")


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration with fakeai's connection protocol and limits; ``settings`` is
    what the protocol reads (it travels with the configuration to every worker process)."""

    def __init__(self, app: Any, settings: Settings, **options: Any) -> None:
        self.settings = settings
        super().__init__(
            app,
            http=FakeaiHttpProtocol,
            loop="uvloop",
            timeout_keep_alive=settings.keep_alive_seconds,  # type: ignore[arg-type]
            limit_concurrency=settings.max_connections or None,
            timeout_graceful_shutdown=settings.graceful_timeout_seconds,  # type: ignore[arg-type]
            **options,
        )

    def load(self) -> None:
        super().load()
        if self.lifespan_class is LifespanOn:
            self.lifespan_class = _Lifespan


class _Lifespan(LifespanOn):
    """The application's lifespan, shut down even when the server stops without waiting."""

    async def receive(self) -> Any:
        try:
            return await super().receive()
        except asyncio.CancelledError:  # a hurried stop cancels every task left: stop the app too
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            return {"type": "lifespan.shutdown"}


class _Server(uvicorn.Server):
    """A second stop signal (SIGTERM as well as SIGINT) stops waiting for requests, and no
    signal is raised again once the server has stopped (so the process exits normally)."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig in _STOPPING:
            logger.info("Second stop signal: cutting the requests in flight now.")
            self.force_exit = True
        self.should_exit = True


class _Supervisor(Multiprocess):
    """uvicorn's supervisor of worker processes, which on stopping closes the listening socket
    at once (no new connection waits in its backlog), stops the workers with SIGINT and passes
    a second stop signal on to them (a second SIGINT: they stop waiting)."""

    def terminate_all(self) -> None:
        for sock in self.sockets:
            sock.close()
        for worker in self.processes:
            if worker.process.exitcode is None and worker.pid is not None:
                os.kill(worker.pid, signal.SIGINT)
                logger.info("Stopping child process [%d]", worker.pid)
                worker.parent_conn.close()
                worker.child_conn.close()

    def join_all(self) -> None:
        forced = False
        for worker in self.processes:
            while worker.process.is_alive():
                worker.process.join(0.1)
                if not forced and any(sig in _STOPPING for sig in self.signal_queue):
                    forced = True
                    self.signal_queue.clear()
                    logger.info("Second stop signal: cutting the requests in flight now.")
                    for other in self.processes:
                        if other.pid is not None and other.process.is_alive():
                            os.kill(other.pid, signal.SIGINT)


def raise_open_files_limit() -> tuple[int, int]:
    """Raise this process's (and its workers') open-files soft limit to the hard limit, so
    ``max_connections`` is not cut short by a default of 1,024; the (soft, hard) limits after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # an unlimited hard limit: leave the soft one
            return soft, hard
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def serve(app: str, settings: Settings) -> int:
    """Serve the ASGI factory ``app`` (an import string) until stopped; 0, or ``STARTUP_FAILURE``."""
    config = ServerConfig(
        app, settings, factory=True, host=settings.host, port=settings.port, workers=settings.workers,
        log_level=settings.log_level,
    )
    if settings.workers > 1:
        sock = config.bind_socket()
        _Supervisor(config, sockets=[sock]).run()
        return 0
    server = _Server(config)
    server.run()
    return 0 if server.started else STARTUP_FAILURE


def summary(shared_dir: Path, settings: Settings) -> str:
    """One line of what the server served, read from its workers' metrics regions (exact
    totals since start, every worker together): logged when it stops, before they go."""
    from fakeai.metrics import MetricsRegistry

    # A small journal of its own (the totals come from counters, not from the windows).
    registry = MetricsRegistry(
        window_seconds=settings.window_seconds, max_samples=1, shared_dir=str(shared_dir)
    )
    snapshot = registry.snapshot()
    requests = sum(endpoint.requests_total for endpoint in snapshot.endpoints.values())
    errors: Counter[int] = Counter()
    for endpoint in snapshot.endpoints.values():
        errors.update(endpoint.errors_total)
    shown = ", ".join(f"{status}: {count}" for status, count in sorted(errors.items())) or "none"
    streams = snapshot.streaming
    return (
        f"fakeai totals: requests {requests} (errors by status: {shown}); "
        f"streams {streams.completed_streams} completed, {streams.failed_streams} failed"
    )
