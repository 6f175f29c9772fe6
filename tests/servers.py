"""Real servers for tests: uvicorn on a free loopback port, stopped when the test ends."""

from __future__ import annotations

import contextlib
import mmap
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx
import uvicorn

from fakeai.app import create_app
from fakeai.config import Settings
from fakeai.region import Region
from fakeai.server import ServerConfig

STARTUP_SECONDS = 60.0
"""A deadline, not a wait: on a machine loaded far beyond its cores, `fakeai serve --workers 2`
was seen to take 18 s to answer (about 1 s when idle)."""


def stop_process(process: subprocess.Popen) -> None:
    """Terminate ``process``, killing it if it does not exit within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (any loopback address: Linux routes all of 127/8 to lo)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def eventually(condition, what: str, seconds: float = 5.0) -> None:
    """Wait until the server has finished what the client already saw end (e.g. recording it)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so after {seconds} s")
        time.sleep(0.005)


def _wait_until(ready, what: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not become ready in {STARTUP_SECONDS} s")
        time.sleep(0.02)


@contextlib.contextmanager
def running_app(
    settings: Settings | None = None, port: int | None = None, **app_options: object
) -> Iterator[tuple[str, object]]:
    """``(base_url, app)`` of ``create_app(settings, **app_options)`` (e.g. a ``clock``) served by
    uvicorn in a thread (on ``port``, or a free one)."""
    settings = settings or Settings()
    app = create_app(settings, **app_options)  # type: ignore[arg-type]
    config = ServerConfig(
        app, settings, host="127.0.0.1", port=port or free_port(), log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fakeai-test-server", daemon=True)
    thread.start()
    try:
        _wait_until(lambda: server.started or not thread.is_alive(), "uvicorn")
        if not server.started:
            raise RuntimeError("uvicorn exited during start-up")
        yield f"http://127.0.0.1:{config.port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_until_serving(base_url: str, process: subprocess.Popen) -> None:
    """Until ``process`` answers ``/health`` (an error with its output if it exits first)."""

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"fakeai serve exited: {process.stdout.read().decode()}")  # type: ignore[union-attr]
        try:
            return httpx.get(base_url + "/health", timeout=0.5).status_code == 200
        except httpx.TransportError:
            return False

    _wait_until(ready, "fakeai serve")


class CLIServer(str):
    """The base URL of a ``fakeai serve`` process, with the process and what it printed."""

    process: subprocess.Popen
    output: str = ""

    def worker_pids(self) -> list[int]:
        """uvicorn's living worker processes when ``--workers`` > 1 (spawned, unlike
        multiprocessing's resource tracker).

        A child listed by the kernel may exit (or be reaped) before its own files are read:
        a worker that was just killed is then simply not a worker any more. A zombie's
        ``cmdline`` is empty, so it is not taken for one either.
        """
        children = f"/proc/{self.process.pid}/task/{self.process.pid}/children"
        with open(children) as listing:
            pids = [int(pid) for pid in listing.read().split()]
        return [pid for pid in pids if b"spawn_main" in _command_line(pid)]  # not the resource tracker

    def shared_directory(self) -> Path:
        """The directory of the server's metrics regions (``fakeai-<pid>-*`` in ``/dev/shm``)."""
        (directory,) = Path("/dev/shm").glob(f"fakeai-{self.process.pid}-*")
        return directory

    def each_worker(self, count: int) -> Iterator[int]:
        """Each of the server's ``count`` worker processes in turn, once every one has built its
        app (its metrics region is made); connections made before the next is yielded are
        accepted by this one (``only_worker``). A server of one process serves alone."""
        if count == 1:
            yield self.process.pid
            return
        self.wait_for_workers(count)
        for pid in self.worker_pids():
            with self.only_worker(pid):
                yield pid

    def wait_for_workers(self, count: int) -> None:
        """Until the server has ``count`` worker processes and each has built its app (its
        metrics region is made): the server answers as soon as its first worker does."""

        def every_worker_built() -> bool:
            workers = self.worker_pids()
            return len(workers) == count and all(self._regions_of(pid) for pid in workers)

        eventually(every_worker_built, f"{count} workers", seconds=STARTUP_SECONDS)

    @contextlib.contextmanager
    def only_worker(self, pid: int) -> Iterator[None]:
        """Every connection made inside is accepted by worker ``pid``: the kernel hands a new
        connection to whichever worker accepts first, so the others are stopped (SIGSTOP) until
        the block ends, each between two updates of its metrics (a reader waits for a writer
        it finds mid-update while that writer lives). uvicorn's supervisor kills a worker that
        does not answer its ping within ``timeout_worker_healthcheck`` (5 s): a block that held
        the others longer than ``MAX_STOPPED_SECONDS`` fails the test, saying so."""
        others = [other for other in self.worker_pids() if other != pid]
        assert len(others) == len(self.worker_pids()) - 1, f"{pid} is not a worker"
        started = time.monotonic()
        try:
            for other in others:
                self._stop_between_updates(other)
            yield
            held = time.monotonic() - started
            assert held < MAX_STOPPED_SECONDS, (
                f"workers {others} were stopped for {held:.1f} s: uvicorn's supervisor may have killed them")
        finally:
            for other in others:
                _resume(other)

    def _regions_of(self, pid: int) -> list[Region]:
        """Worker ``pid``'s metrics regions, none until they are made (a region's file appears
        whole, renamed into place once filled)."""
        regions = []
        for path in self.shared_directory().glob(f"{pid}-*.region"):
            try:
                with open(path, "r+b") as file:
                    regions.append(Region(mmap.mmap(file.fileno(), 0)))
            except FileNotFoundError:  # its worker is gone
                continue
        return regions

    def _stop_between_updates(self, pid: int) -> None:
        regions = self._regions_of(pid)
        assert regions, f"worker {pid} has no metrics region"

        def stopped_between_updates() -> bool:
            os.kill(pid, signal.SIGSTOP)
            # a signal is delivered on the target's way back to user space
            eventually(lambda: _state(pid) == "T", f"worker {pid} stopped")
            if all(region.seq() % 2 == 0 for region in regions):
                return True
            os.kill(pid, signal.SIGCONT)  # mid-update: let it finish, and stop it again
            return False

        eventually(stopped_between_updates, f"worker {pid} stopped between two updates of its metrics")


MAX_STOPPED_SECONDS = 4.0
"""How long ``CLIServer.only_worker`` may keep workers stopped (uvicorn kills one at 5 s)."""


def _resume(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it died meanwhile (killed by the test, say)
        os.kill(pid, signal.SIGCONT)


def _state(pid: int) -> str:
    """``pid``'s scheduler state letter from ``/proc/<pid>/stat`` (``T``: stopped by a signal)."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        return stat.read().rsplit(b")", 1)[1].split()[0].decode()


def _command_line(pid: int) -> bytes:
    """``pid``'s command line, empty if it has exited (gone, or a zombie not yet reaped)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read()
    except (FileNotFoundError, ProcessLookupError):
        return b""


@contextlib.contextmanager
def running_cli(
    *flags: str, env: Mapping[str, str] | None = None, preexec_fn: Callable[[], None] | None = None,
    host: str = "127.0.0.1",
) -> Iterator[CLIServer]:
    """``python -m fakeai serve`` started as a user would, with ``flags``, on a free port of
    ``host`` (``preexec_fn`` runs in the child before it starts, e.g. to set its limits);
    ``output`` is filled in when it has stopped."""
    port = free_port(host)
    # No setting leaks in from the test's environment; the kernel choice does, so the
    # pure-Python run (FAKEAI_NO_EXTENSIONS=1) serves with the twin too.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FAKEAI_") or k == "FAKEAI_NO_EXTENSIONS"}
    environment.update(env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "fakeai", "serve", "--host", host, "--port", str(port), *flags],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=preexec_fn,
    )
    base_url = CLIServer(f"http://{host}:{port}")
    base_url.process = process

    try:
        wait_until_serving(base_url, process)
        yield base_url
    finally:
        with contextlib.suppress(OSError):  # a test that failed inside only_worker: stop all the same
            for pid in base_url.worker_pids():
                _resume(pid)
        stop_process(process)
        base_url.output = process.stdout.read().decode(errors="replace")  # type: ignore[union-attr]
        process.stdout.close()  # type: ignore[union-attr]
