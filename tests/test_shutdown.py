"""Stopping ``fakeai serve`` as an operator (or an orchestrator) does: SIGTERM lets the requests
in flight finish within the grace period, cuts the rest (counted as failed), removes the
shared-memory directory and exits 0; a second signal cuts at once; the same with several
workers. What was served is told in the last log line, read before the directory goes."""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from tests.servers import CLIServer, eventually, running_cli

MODEL = "openai/gpt-oss-120b"


class Stream(threading.Thread):
    """A streamed chat read line by line in the background."""

    def __init__(self, base_url: str, max_tokens: int) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.max_tokens = max_tokens
        self.lines: list[str] = []
        self.started = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Tell me a story."}], "stream": True,
                "max_tokens": self.max_tokens, "ignore_eos": True}
        try:
            with httpx.stream("POST", self.base_url + "/v1/chat/completions", json=body, timeout=120) as response:
                for line in response.iter_lines():
                    self.lines.append(line)
                    self.started.set()
        except httpx.HTTPError as exc:
            self.error = exc
        finally:
            self.started.set()

    @property
    def completed(self) -> bool:
        return "data: [DONE]" in self.lines


def start_stream(server: CLIServer, max_tokens: int) -> Stream:
    stream = Stream(server, max_tokens)
    stream.start()
    assert stream.started.wait(30) and stream.lines, "the stream is in flight"
    return stream


def refuses_connections(server: CLIServer) -> bool:
    try:
        socket.create_connection((server.split("//")[1].split(":")[0], int(server.rsplit(":", 1)[1])), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):  # reset: its listening socket closed with ours queued
        return True
    return False


def exit_status(server: CLIServer, seconds: float) -> int:
    try:
        return server.process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"fakeai serve still running {seconds} s after it was told to stop") from None


def totals_line(output: str) -> str:
    (line,) = re.findall(r"fakeai totals: .*", output)
    return line


FLAGS = ("--ttft-ms", "0", "--itl-ms", "20", "--itl-jitter", "0")


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_a_stream_within_the_grace_finish_then_exits_0_and_cleans_up(workers: int) -> None:
    with running_cli("--workers", str(workers), "--graceful-timeout-seconds", "60", *FLAGS) as server:
        directory = server.shared_directory()
        stream = start_stream(server, max_tokens=100)  # about 2 s
        server.process.send_signal(signal.SIGTERM)
        eventually(lambda: refuses_connections(server), "it stopped accepting connections", seconds=10)
        assert exit_status(server, 60) == 0
        stream.join(10)
    assert stream.completed and stream.error is None, "the stream in flight finished"
    assert not directory.exists()
    assert totals_line(server.output) == (
        "fakeai totals: requests 1 (errors by status: none); streams 1 completed, 0 failed")
    assert "Traceback" not in server.output


def test_sigterm_to_every_process_still_lets_the_stream_finish() -> None:
    """systemd (KillMode=control-group) signals the workers too, not only the supervisor: that
    is still one stop, not a second signal that would cut the stream."""
    with running_cli("--workers", "2", "--graceful-timeout-seconds", "60", *FLAGS) as server:
        directory = server.shared_directory()
        stream = start_stream(server, max_tokens=100)
        for pid in [server.process.pid, *server.worker_pids()]:
            os.kill(pid, signal.SIGTERM)
        assert exit_status(server, 60) == 0
        stream.join(10)
    assert stream.completed and stream.error is None
    assert not directory.exists()
    assert totals_line(server.output) == (
        "fakeai totals: requests 1 (errors by status: none); streams 1 completed, 0 failed")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stream_longer_than_the_grace_is_cut_and_counted_as_failed(workers: int) -> None:
    with running_cli("--workers", str(workers), "--graceful-timeout-seconds", "1", *FLAGS) as server:
        directory = server.shared_directory()
        stream = start_stream(server, max_tokens=3000)  # about 60 s
        server.process.send_signal(signal.SIGTERM)
        assert exit_status(server, 30) == 0
        stream.join(10)
    assert not stream.completed, "the stream was cut"
    assert not directory.exists()
    assert totals_line(server.output) == (
        "fakeai totals: requests 1 (errors by status: 499: 1); streams 0 completed, 1 failed")
    assert "Traceback" not in server.output


@pytest.mark.parametrize(("workers", "second"), [(1, signal.SIGTERM), (1, signal.SIGINT), (2, signal.SIGTERM)])
def test_a_second_signal_cuts_at_once(workers: int, second: signal.Signals) -> None:
    with running_cli("--workers", str(workers), "--graceful-timeout-seconds", "600", *FLAGS) as server:
        directory = server.shared_directory()
        stream = start_stream(server, max_tokens=3000)
        server.process.send_signal(signal.SIGTERM)
        eventually(lambda: refuses_connections(server), "the first signal took effect", seconds=10)
        assert server.process.poll() is None, "still waiting for the stream"
        server.process.send_signal(second)
        assert exit_status(server, 30) == 0  # far less than the 600 s of grace
        stream.join(10)
    assert not stream.completed
    assert not directory.exists()
    assert totals_line(server.output) == (
        "fakeai totals: requests 1 (errors by status: 499: 1); streams 0 completed, 1 failed")
    assert "Traceback" not in server.output


def test_a_start_after_sigkill_removes_the_stale_directory() -> None:
    with running_cli() as killed:
        stale = killed.shared_directory()
        killed.process.kill()
        killed.process.wait()
    assert stale.exists(), "SIGKILL leaves the directory behind"
    with running_cli() as server:
        assert not stale.exists(), "the next start removed it"
        assert server.shared_directory().exists()


def _open_files_limit(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-files limit listed")


def test_the_open_files_soft_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip("the hard limit leaves nothing to raise")

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    with running_cli("--workers", "2", preexec_fn=low_soft_limit) as server:
        assert _open_files_limit(server.process.pid) == (hard, hard)
        for worker in server.worker_pids():
            assert _open_files_limit(worker) == (hard, hard)
