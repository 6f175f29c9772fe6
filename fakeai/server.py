"""Serving fakeai with uvicorn: its configuration from ``Settings``, and a clean stop.

``serve`` runs one server process, or a supervisor and ``--workers`` of them. On SIGTERM or
SIGINT the server stops accepting connections, lets the requests in flight finish for
``graceful_timeout_seconds``, then cuts the rest (each recorded as 499, a stream as failed:
``fakeai.api.connections``); a second SIGTERM or SIGINT cuts them at once. Either way ``serve``
returns normally, so the command removes its shared-memory directory and exits 0.

What uvicorn alone does differently: a single process re-raises the signal once stopped (exit
143 for SIGTERM) and only hurries on a second SIGINT, not a second SIGTERM; the supervisor of
several workers ignores a second signal; a worker re-raises the SIGTERM that stopped it once
its server has stopped, and so dies before the tasks left by a hurried stop are cancelled (and
counted); and a hurried stop skips the application's shutdown, whose task is then cancelled.
Here a single process is a ``_Server``; the supervisor passes a second signal on to its
workers (as SIGINT, which hurries them); a worker process ends on that re-raised SIGTERM
cleanly (``ServerConfig.configure_logging``); and the application's lifespan (``_Lifespan``)
still shuts down when its task is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import resource
import signal
import socket
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import LOG_LEVELS, STARTUP_FAILURE
from uvicorn.lifespan.on import LifespanOn
from uvicorn.supervisors.multiprocess import Multiprocess

from fakeai.api.connections import FakeaiHttpProtocol
from fakeai.config import Settings

__all__ = (
    "STARTUP_FAILURE",
    "EmbeddedServerConfig",
    "ServerConfig",
    "inherited_socket",
    "raise_open_files_limit",
    "serve",
    "summary",
)

_STOPPING = (signal.SIGINT, signal.SIGTERM)
logger = logging.getLogger("uvicorn.error")


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration with fakeai's connection protocol and limits; ``settings`` is
    what the protocol reads (it travels with the configuration to every worker process)."""

    def __init__(self, app: Any, settings: Settings, **options: Any) -> None:
        self.settings = settings
        options.setdefault("access_log", logs_access(options.get("log_level")))
        super().__init__(
            app,
            http=FakeaiHttpProtocol,
            loop="uvloop",
            timeout_keep_alive=settings.keep_alive_seconds,  # type: ignore[arg-type]
            limit_concurrency=settings.max_connections or None,
            timeout_graceful_shutdown=settings.graceful_timeout_seconds,  # type: ignore[arg-type]
            **options,
        )

    def configure_logging(self) -> None:
        """uvicorn's logging set-up, and in a worker process (uvicorn calls this first in each):
        the SIGTERM that uvicorn raises again once the worker's server has stopped ends the
        process through ``SystemExit``, so the event loop's tasks are cancelled and counted
        first (the default action would kill it on the spot)."""
        super().configure_logging()
        if multiprocessing.parent_process() is not None:
            signal.signal(signal.SIGTERM, _exit_cleanly)

    def load(self) -> None:
        super().load()
        if self.lifespan_class is LifespanOn:
            self.lifespan_class = _Lifespan


class EmbeddedServerConfig(ServerConfig):
    """``ServerConfig`` for a server in a process that is not its own (the pytest plugin's, in
    the test process): it leaves the process's logging as it is. uvicorn's set-up would apply
    its logging configuration (``dictConfig``), set its loggers' levels and name a TRACE level
    for the whole process; here its loggers simply reach the process's handlers. (uvicorn
    installs signal handlers only on the main thread, and the server runs on another.)"""

    def configure_logging(self) -> None:
        pass


def logs_access(level: str | int | None) -> bool:
    """Whether uvicorn's access log (lines at INFO) would print at log level ``level``.

    When it would not, it is switched off: uvicorn formats each line's client address and
    quoted path before its logger drops the line, a cost every request paid for nothing.
    """
    if level is None:
        return True
    if isinstance(level, str):
        level = LOG_LEVELS[level.lower()]
    return level <= logging.INFO


def _exit_cleanly(number: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


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
    """uvicorn's supervisor of worker processes, which on stopping also closes the listening
    socket at once (no new connection waits in its backlog) and passes a second stop signal
    on to the workers as SIGINT (uvicorn's workers stop waiting on a SIGINT after a SIGTERM,
    and only then: a worker that also got the first signal itself, from a terminal's Ctrl+C
    or from systemd, is not hurried by it)."""

    def terminate_all(self) -> None:
        for sock in self.sockets:
            sock.close()
        super().terminate_all()

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


def inherited_socket(fd: int) -> socket.socket:
    """The listening TCP socket inherited as file descriptor ``fd`` (``--fd``); ``ValueError``
    saying why not when it is none."""
    try:
        sock = socket.socket(fileno=fd)  # family and type are read from the descriptor
    except OSError as exc:
        raise ValueError(f"--fd {fd}: not an inherited socket ({exc.strerror})") from None
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
        sock.detach()  # not ours to close
        raise ValueError(f"--fd {fd}: not a TCP socket")
    return sock


def serve(app: str, settings: Settings, sock: socket.socket | None = None) -> int:
    """Serve the ASGI factory ``app`` (an import string) until stopped, on ``sock`` or on a
    socket bound to the settings' host and port; 0, or ``STARTUP_FAILURE``."""
    host, port = (settings.host, settings.port) if sock is None else sock.getsockname()[:2]
    config = ServerConfig(
        app, settings, factory=True, host=host, port=port, workers=settings.workers, log_level=settings.log_level,
    )
    if sock is not None:  # uvicorn says where it serves only when it binds the socket itself
        address = f"[{host}]" if ":" in host else host
        logger.info("Serving on http://%s:%d, the socket inherited as --fd %d", address, port, settings.fd)
    if settings.workers > 1:
        _Supervisor(config, sockets=[sock or config.bind_socket()]).run()
        return 0
    server = _Server(config)
    server.run(sockets=None if sock is None else [sock])
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
