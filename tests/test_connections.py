"""Clients that misbehave at the connection level: they stop reading, trickle their head or
body, open more connections than allowed, or send HTTP that cannot be parsed. Each gets a
bounded wait, an OpenAI-shaped answer where there is a request to answer, and is counted;
well-behaved clients are served meanwhile."""

from __future__ import annotations

import asyncio
import time
import socket
import threading
from urllib.parse import urlsplit

import httpx
import msgspec
import pytest

from fakeai.api.sampling import HistorySampler
from fakeai.config import Settings
from fakeai.metrics.history import MetricsHistory
from tests.servers import eventually, running_app

MODEL = "openai/gpt-oss-120b"
CHAT = "/v1/chat/completions"


def address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    return parts.hostname, parts.port  # type: ignore[return-value]


def metrics(base_url: str) -> dict:
    return httpx.get(base_url + "/metrics", timeout=10).json()


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset ends it too)."""
    received = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not data:
            return received
        received += data


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def send_raw(base_url: str, data: bytes, timeout: float = 20.0) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` on a new connection; the one answer the server gives before closing it."""
    with socket.create_connection(address(base_url), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):  # it answered before reading it all
            pass
        return parse_response(read_until_closed(sock))


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One answer with a Content-Length, on a connection that stays open (keep-alive)."""
    received = b""
    while b"\r\n\r\n" not in received:
        data = sock.recv(65536)
        assert data, "the server closed the connection before answering"
        received += data
    status, headers, body = parse_response(received)
    while len(body) < int(headers["content-length"]):
        data = sock.recv(65536)
        assert data, "the server closed the connection mid-answer"
        body += data
    return status, headers, body


def trickle_headers(sock: socket.socket, stop: threading.Event) -> None:
    """One header line every 100 ms until ``stop`` (never a whole head)."""
    number = 0
    while not stop.wait(0.1):
        number += 1
        try:
            sock.sendall(b"X-Slow-%d: 1\r\n" % number)
        except OSError:
            return


def assert_openai_error(status: int, headers: dict[str, str], body: bytes, expected: int, code: str) -> None:
    assert status == expected
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    error = msgspec.json.decode(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and error["type"] == "invalid_request_error" and error["message"]


def chat_ok(base_url: str) -> None:
    response = httpx.post(base_url + CHAT, json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                                                  "max_tokens": 3}, timeout=30)
    assert response.status_code == 200, response.text


# -- clients that stop reading -----------------------------------------------------------------

STREAM_REQUEST = msgspec.json.encode({
    "model": MODEL, "messages": [{"role": "user", "content": "Tell me everything."}], "stream": True,
    "max_tokens": 20_000, "ignore_eos": True,  # about 2 MB: more than the kernel's socket buffers hold
})


def open_never_reading_stream(base_url: str) -> socket.socket:
    """A streamed chat request on a connection whose client then reads nothing (small receive
    buffer, so the server's writes back up quickly)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(address(base_url))
    sock.sendall(b"POST %s HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (CHAT.encode(), len(STREAM_REQUEST), STREAM_REQUEST))
    return sock


def test_clients_that_stop_reading_are_cut_and_counted_as_failed_streams() -> None:
    clients = 100
    settings = Settings(zero_latency=True, send_timeout_seconds=5.0, window_seconds=600)
    with running_app(settings) as (base_url, _):
        sockets = [open_never_reading_stream(base_url) for _ in range(clients)]
        try:
            chat_ok(base_url)  # served while they are stuck
            held = metrics(base_url)["streaming_stats"]
            assert held["active_streams"] > 0 and held["completed_streams"] == 0, "they were held meanwhile"

            def all_cut() -> bool:
                doc = metrics(base_url)
                return doc["streaming_stats"]["failed_streams"] == clients and doc["summary"]["requests_in_flight"] == 0

            eventually(all_cut, "every never-reading stream was cut", seconds=60)
            doc = metrics(base_url)
            assert doc["streaming_stats"]["completed_streams"] == 0
            assert doc["streaming_stats"]["active_streams"] == 0
            assert doc["errors_by_status"][CHAT] == {"499": clients}
            assert doc["totals"][CHAT]["requests"] == clients + 1
            assert all(worker["active_requests"] == 0 for worker in doc["smart_routing"]["workers"]), \
                "every simulated KV worker was released"
            for sock in sockets:  # the server ended each connection: what it had sent, then the end
                sock.settimeout(10)
                read_until_closed(sock)
        finally:
            for sock in sockets:
                sock.close()


# -- slow heads and bodies (slowloris) -----------------------------------------------------------

def test_a_head_trickled_slower_than_the_deadline_gets_408_while_others_are_served() -> None:
    with running_app(Settings(header_timeout_seconds=1.0)) as (base_url, _):
        with socket.create_connection(address(base_url), timeout=20) as sock:
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: test\r\n")
            stop = threading.Event()
            trickler = threading.Thread(target=trickle_headers, args=(sock, stop), daemon=True)
            trickler.start()
            try:
                chat_ok(base_url)  # others are served meanwhile
                status, headers, body = parse_response(read_until_closed(sock))
            finally:
                stop.set()
                trickler.join()
        assert_openai_error(status, headers, body, 408, "request_timeout")
        assert metrics(base_url)["errors_by_status"]["malformed"] == {"408": 1}


def test_a_connection_that_sends_nothing_is_closed_without_an_answer_and_not_counted() -> None:
    with running_app(Settings(header_timeout_seconds=0.5)) as (base_url, _):
        with socket.create_connection(address(base_url), timeout=20) as sock:
            assert read_until_closed(sock) == b""
        assert "malformed" not in metrics(base_url)["errors_by_status"]


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_time() -> None:
    with running_app(Settings(keep_alive_seconds=0.5)) as (base_url, _):
        with socket.create_connection(address(base_url), timeout=3) as sock:  # uvicorn's own default is 5 s
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: test\r\n\r\n")
            status, _, rest = parse_response(read_until_closed(sock))  # then the server closes it
        assert status == 200 and rest.startswith(b'{"object":"list"')
        assert "malformed" not in metrics(base_url)["errors_by_status"]


def test_a_body_sent_slower_than_the_deadline_gets_408() -> None:
    with running_app(Settings(body_timeout_seconds=1.0)) as (base_url, _):
        status, headers, body = send_raw(
            base_url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100\r\n\r\n{\"model\": ")
        assert_openai_error(status, headers, body, 408, "request_timeout")
        doc = metrics(base_url)
        assert doc["errors_by_status"]["malformed"] == {"408": 1}
        assert CHAT not in doc["errors_by_status"], "counted once, as what the client saw"
        assert doc["summary"]["requests_in_flight"] == 0


def test_a_body_still_trickling_after_an_early_answer_is_not_waited_for() -> None:
    with running_app(Settings(body_timeout_seconds=1.0)) as (base_url, _):
        with socket.create_connection(address(base_url), timeout=10) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 20000000\r\n\r\n{")  # over --max-request-bytes: 413 at once
            stop = threading.Event()

            def trickle() -> None:
                while not stop.wait(0.1):
                    try:
                        sock.sendall(b" ")
                    except OSError:
                        return

            trickler = threading.Thread(target=trickle, daemon=True)
            trickler.start()
            try:
                status, _, body = parse_response(read_until_closed(sock))
            finally:
                stop.set()
                trickler.join()
        assert status == 413 and msgspec.json.decode(body)["error"]["code"] == "request_too_large"
        assert metrics(base_url)["errors_by_status"][CHAT] == {"413": 1}


DEADLINE_EARLY = 0.01
"""A timer may fire a little before its time (uvloop rounds delays to whole milliseconds)."""
DEADLINE_MARGIN = 3.0
"""How late a deadline may be seen to pass on a loaded machine and still count as kept."""


def test_the_head_deadline_of_a_keep_alive_connections_next_request_runs_from_its_first_byte() -> None:
    head_deadline = 0.6
    settings = Settings(header_timeout_seconds=head_deadline, keep_alive_seconds=30)
    with running_app(settings) as (base_url, _):
        with socket.create_connection(address(base_url), timeout=20) as sock:
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: test\r\n\r\n")
            assert read_response(sock)[0] == 200  # a fast first request
            # The client's think time: two thirds of the deadline, so that a deadline still
            # running from the connection's start would cut the next request too early.
            time.sleep(head_deadline * 2 / 3)
            started = time.monotonic()
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: test\r\n")  # then its head trickles
            stop = threading.Event()
            trickler = threading.Thread(target=trickle_headers, args=(sock, stop), daemon=True)
            trickler.start()
            try:
                status, headers, body = parse_response(read_until_closed(sock))
                waited = time.monotonic() - started
            finally:
                stop.set()
                trickler.join()
        assert_openai_error(status, headers, body, 408, "request_timeout")
        assert head_deadline - DEADLINE_EARLY <= waited < head_deadline + DEADLINE_MARGIN
        doc = metrics(base_url)
        assert doc["errors_by_status"]["malformed"] == {"408": 1}
        assert doc["totals"]["/v1/models"]["requests"] == 1


def test_a_body_deadline_longer_than_the_head_deadline_is_kept() -> None:
    head_deadline, body_deadline = 0.3, 1.2
    request = msgspec.json.encode({"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                                   "max_tokens": 3})
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(request))
    settings = Settings(zero_latency=True, header_timeout_seconds=head_deadline,
                        body_timeout_seconds=body_deadline)
    with running_app(settings) as (base_url, _):
        # The rest of the body after the head deadline, well before the body deadline: served.
        with socket.create_connection(address(base_url), timeout=20) as sock:
            sock.sendall(head + request[:10])
            time.sleep((head_deadline + body_deadline) / 2)  # the client's pace
            sock.sendall(request[10:])
            status, _, body = parse_response(read_until_closed(sock))
        assert status == 200, body
        assert msgspec.json.decode(body)["usage"]["completion_tokens"] == 3
        # The rest of the body never sent: cut at the body deadline, not at the head deadline.
        with socket.create_connection(address(base_url), timeout=20) as sock:
            started = time.monotonic()
            sock.sendall(head + request[:10])
            status, headers, body = parse_response(read_until_closed(sock))
            waited = time.monotonic() - started
        assert_openai_error(status, headers, body, 408, "request_timeout")
        assert body_deadline - DEADLINE_EARLY <= waited < body_deadline + DEADLINE_MARGIN
        doc = metrics(base_url)
        assert doc["errors_by_status"]["malformed"] == {"408": 1}
        assert doc["totals"][CHAT]["requests"] == 1


def test_beyond_the_connection_limit_requests_get_an_openai_503_and_others_are_served_once_they_go() -> None:
    limit = 4
    with running_app(Settings(max_connections=limit, header_timeout_seconds=60)) as (base_url, _):
        idle = [socket.create_connection(address(base_url), timeout=20) for _ in range(limit)]
        try:
            status, headers, body = send_raw(base_url, b"GET /v1/models HTTP/1.1\r\nHost: test\r\n\r\n")
            assert status == 503
            assert headers["content-type"] == "application/json"
            error = msgspec.json.decode(body)["error"]
            assert error["code"] == "server_overloaded" and error["type"] == "server_error"
        finally:
            for sock in idle:
                sock.close()

        def served() -> bool:
            try:
                return httpx.get(base_url + "/v1/models", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        eventually(served, "a normal client is served once the idle connections went")
        assert metrics(base_url)["errors_by_status"]["overloaded"] == {"503": 1}


# -- HTTP the parser refuses ---------------------------------------------------------------------

MALFORMED = {
    "bad chunk size": (b"POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\n{}\r\n0\r\n\r\n", 400, "invalid_http"),
    "Content-Length with Transfer-Encoding": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"{}", 400, "invalid_http"),
    "invalid request line": (b"NOT AN HTTP REQUEST\r\n\r\n", 400, "invalid_http"),
    "2 MB URL": (b"GET /" + b"a" * 2_000_000 + b" HTTP/1.1\r\nHost: test\r\n\r\n", 431, "request_header_too_large"),
    "headers too large": (b"GET /v1/models HTTP/1.1\r\nHost: test\r\n" + b"X-Big: %s\r\n" % (b"b" * 70_000) + b"\r\n",
                          431, "request_header_too_large"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_http_gets_an_openai_error_and_is_counted(case: str) -> None:
    data, expected, code = MALFORMED[case]
    with running_app(Settings()) as (base_url, _):
        status, headers, body = send_raw(base_url, data)
        assert_openai_error(status, headers, body, expected, code)
        chat_ok(base_url)
        doc = metrics(base_url)
        assert doc["errors_by_status"]["malformed"] == {str(expected): 1}
        assert doc["totals"]["malformed"]["requests"] == 1
        assert doc["totals"][CHAT]["requests"] == 1, "counted once, as what the client saw (and the good one)"


def test_a_head_sent_in_several_reads_gets_431_when_its_last_read_takes_it_over_the_limit() -> None:
    limit = 4096
    first_reads = [b"GET /v1/models HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"] + [
        b"X-Part-%d: %s\r\n" % (number, b"p" * 1000) for number in range(3)]  # about 3,100 bytes

    def send_in_reads(base_url: str, last: bytes) -> tuple[int, dict[str, str], bytes]:
        with socket.create_connection(address(base_url), timeout=20) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pause = threading.Event()
            for data in first_reads:
                sock.sendall(data)
                pause.wait(0.05)  # the client's pace: most likely one read each on the server
            try:
                sock.sendall(last)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return parse_response(read_until_closed(sock))

    with running_app(Settings(max_header_bytes=limit)) as (base_url, _):
        status, _, body = send_in_reads(base_url, b"X-Last: %s\r\n\r\n" % (b"l" * 500))  # about 3,600 in all
        assert status == 200, body
        status, headers, body = send_in_reads(base_url, b"X-Last: %s\r\n\r\n" % (b"l" * 1500))  # about 4,600
        assert_openai_error(status, headers, body, 431, "request_header_too_large")
        doc = metrics(base_url)
        assert doc["errors_by_status"]["malformed"] == {"431": 1}
        assert doc["totals"]["/v1/models"]["requests"] == 1


def test_a_bad_chunk_after_the_request_is_being_served_is_answered_once() -> None:
    """The application has the request (its head was read) when its body turns out malformed:
    that request is answered, once, not a second one made up."""
    with running_app(Settings()) as (base_url, app):
        recorder = app.asgi_handler
        application = recorder.app
        entered = threading.Event()

        async def probe(scope, receive, send):
            entered.set()
            await application(scope, receive, send)

        recorder.app = probe
        with socket.create_connection(address(base_url), timeout=20) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"2\r\n{\"\r\n")
            assert entered.wait(10), "the application is serving the request"
            sock.sendall(b"not-a-size\r\n")
            status, headers, body = parse_response(read_until_closed(sock))
        assert_openai_error(status, headers, body, 400, "invalid_http")
        doc = metrics(base_url)
        assert doc["errors_by_status"]["malformed"] == {"400": 1}
        assert doc["totals"]["malformed"]["requests"] == 1 and CHAT not in doc["totals"]
        assert doc["summary"]["requests_in_flight"] == 0


# -- the history sampler ---------------------------------------------------------------------------

class _FlakyRegistry:
    """A registry whose snapshot fails like a process out of file descriptors, once."""

    def __init__(self, real) -> None:
        self.real = real
        self.calls = 0

    async def snapshot_async(self):
        self.calls += 1
        if self.calls == 2:
            raise OSError(24, "Too many open files")
        return await self.real.snapshot_async()


def test_the_history_sampler_keeps_sampling_after_a_failed_point() -> None:
    from fakeai.metrics import MetricsRegistry

    async def run() -> int:
        registry = _FlakyRegistry(MetricsRegistry())
        history = MetricsHistory(60.0, 0.05)
        sampler = HistorySampler(registry, history)  # type: ignore[arg-type]
        sampler.start()
        deadline = time.monotonic() + 10.0
        try:
            # Wait for the points themselves: a snapshot runs in slices, so a call can be
            # under way (counted) with its point not yet added.
            while len(history) < 4:
                assert time.monotonic() < deadline, f"the sampler stopped after {registry.calls} calls"
                await asyncio.sleep(0.01)
        finally:
            await sampler.stop()
        return registry.calls

    assert asyncio.run(run()) >= 5, "the failed point was skipped and sampling went on"
