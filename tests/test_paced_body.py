"""Streamed bodies carried out by the pacer's driver (``PacedDriver``) and by the request's task
(``async_chunks``): the same writes, in the same order, never before their deadlines."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import uvloop
from litestar.testing import TestClient

from fakeai.api.connections import DirectWriter
from fakeai.api.paced_body import GIVE_WAY, PacedDriver, async_chunks
from fakeai.api.pacing import TimerfdPacer, new_pacer
from fakeai.app import create_app
from fakeai.config import Settings
from tests.servers import running_app


class Writer:
    """A connection that takes writes at once (``refuse`` false) or not."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.writes: list[tuple[float, bytes]] = []

    def write(self, events: bytes) -> bool:
        if self.refuse:
            return False
        self.writes.append((time.monotonic(), events))
        return True


class Exchange:
    """What the driver reads and fills in of a request's exchange."""

    def __init__(self, send: Any) -> None:
        self.raw_send = send
        self.clock = time.monotonic
        self.first_body_at = 0.0


class Stall:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.since = 0.0


def steps(start: float, engine_ready: asyncio.Future[None]) -> Any:
    """A body of every kind of step: writes, deadlines, a give-way and a future."""
    yield b"opening"
    for number in range(5):
        deadline = start + 0.01 * (number + 1)
        while time.monotonic() < deadline:
            yield deadline
        yield b"token %d" % number
    yield GIVE_WAY
    yield engine_ready
    yield b"closing"


def run(coroutine: Any) -> Any:
    return uvloop.run(coroutine)


async def paced(writer: Writer, body: Any, send: Any = None) -> PacedDriver:
    pacer = new_pacer(time.monotonic)
    assert isinstance(pacer, TimerfdPacer)
    try:
        driver = PacedDriver(body, Exchange(send), writer, pacer, Stall())  # type: ignore[arg-type]
        await driver.done
        return driver
    finally:
        pacer.close()


def test_the_driver_makes_the_writes_the_task_makes_in_order_and_never_before_their_deadlines() -> None:
    async def both() -> tuple[list[bytes], list[tuple[float, bytes]], float, float]:
        start = time.monotonic()
        ready = asyncio.get_running_loop().create_future()
        readied: list[float] = []

        def sampled() -> None:  # as the engine model's sampling would
            readied.append(time.monotonic())
            ready.set_result(None)

        asyncio.get_running_loop().call_later(0.08, sampled)
        writer = Writer()
        await paced(writer, steps(start, ready))
        pacer = new_pacer(time.monotonic)
        try:
            again = asyncio.get_running_loop().create_future()
            again.set_result(None)
            by_task = [chunk async for chunk in async_chunks(steps(time.monotonic(), again), pacer.wait_until,
                                                             time.monotonic)]
        finally:
            pacer.close()
        return by_task, writer.writes, start, readied[0]

    by_task, by_driver, start, readied = run(both())
    expected = [b"opening", *(b"token %d" % n for n in range(5)), b"closing"]
    assert by_task == expected
    assert [events for _, events in by_driver] == expected
    for number in range(5):
        written_at = by_driver[number + 1][0]
        assert written_at >= start + 0.01 * (number + 1), "a token went out before its deadline"
    assert by_driver[-1][0] >= readied, "the closing write waited for the future"


def test_a_write_the_connection_cannot_take_goes_through_send_and_waits_for_it() -> None:
    sent: list[bytes] = []

    async def scenario() -> tuple[list[bytes], float, float]:
        loop = asyncio.get_running_loop()
        drained = loop.create_future()
        stall = Stall()
        seen: list[float] = []

        async def send(message: dict) -> None:
            seen.append(stall.since)
            if not drained.done():
                await drained  # the client's socket is full until it drains
            sent.append(message["body"])

        released: list[float] = []

        def drain() -> None:
            released.append(time.monotonic())
            drained.set_result(None)

        loop.call_later(0.03, drain)
        pacer = new_pacer(time.monotonic)
        try:
            exchange = Exchange(send)
            driver = PacedDriver(iter([b"first", b"second"]), exchange, Writer(refuse=True), pacer,  # type: ignore[arg-type]
                                 stall)
            await driver.done
            return sent, seen[0], exchange.first_body_at - released[0]
        finally:
            pacer.close()

    written, since_while_waiting, first_after = run(scenario())
    assert written == [b"first", b"second"]
    assert since_while_waiting > 0, "the stall watch saw the write that waited"
    assert first_after >= 0, "the first body time is when the write was with the server, after the drain"


def test_a_cancelled_driver_stops_at_once_and_its_deadline_is_ignored() -> None:
    advanced: list[int] = []

    def body(deadline: float) -> Any:
        yield b"before"
        advanced.append(1)
        yield deadline
        advanced.append(2)
        yield b"after"

    async def scenario() -> tuple[Writer, bool]:
        pacer = new_pacer(time.monotonic)
        try:
            writer = Writer()
            deadline = time.monotonic() + 0.05
            driver = PacedDriver(body(deadline), Exchange(None), writer, pacer, Stall())  # type: ignore[arg-type]
            driver.cancel()  # waiting for its deadline (its first step ran at once)
            await pacer.wait_until(deadline + 0.001)  # the pacer has reached the driver's deadline
            return writer, driver.done.cancelled()
        finally:
            pacer.close()

    writer, cancelled = run(scenario())
    assert cancelled
    assert [events for _, events in writer.writes] == [b"before"]
    assert advanced == [1], "the body did not go on after the cancellation"


def test_a_wait_that_fails_fails_the_stream_as_awaiting_it_would() -> None:
    async def scenario(driven: bool) -> None:
        failed = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(failed.set_exception, RuntimeError("the engine failed"))

        def body() -> Any:
            yield b"part"
            yield failed
            yield b"never"

        if driven:
            await paced(Writer(), body())
        else:
            async for _ in async_chunks(body(), asyncio.sleep, time.monotonic):
                pass

    for driven in (True, False):
        with pytest.raises(RuntimeError, match="the engine failed"):
            run(scenario(driven))
def test_what_the_body_raises_reaches_the_request() -> None:
    def body() -> Any:
        yield b"part"
        raise ValueError("broken body")

    with pytest.raises(ValueError, match="broken body"):
        run(paced(Writer(), body()))


def test_the_pacer_calls_back_at_the_deadline_never_before_and_survives_a_failing_call() -> None:
    async def scenario() -> list[tuple[str, float, float]]:
        pacer = new_pacer(time.monotonic)
        calls: list[tuple[str, float, float]] = []
        done = asyncio.get_running_loop().create_future()
        start = time.monotonic()

        def failing(_: object) -> None:
            raise RuntimeError("a waiter's fault")

        def noting(name: str) -> None:
            calls.append((name, time.monotonic(), deadlines[name]))
            if len(calls) == 2:
                done.set_result(None)

        deadlines = {"late": start + 0.02, "early": start + 0.01}
        try:
            pacer.call_at(start + 0.005, failing)
            for name, deadline in deadlines.items():
                pacer.call_at(deadline, noting, name)
            await asyncio.wait_for(done, 5)
            return calls
        finally:
            pacer.close()

    calls = run(scenario())
    assert [name for name, _, _ in calls] == ["early", "late"]
    assert all(called >= deadline for _, called, deadline in calls)


class Transport:
    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: bytes) -> None:
        self.written += data


class Cycle:
    """What ``DirectWriter`` reads of uvicorn's request cycle: a chunked response in progress."""

    def __init__(self) -> None:
        self.disconnected = False
        self.flow = type("Flow", (), {"write_paused": False})()
        self.chunked_encoding = True
        self.response_complete = False
        self.transport = Transport()


def test_the_connection_gets_each_write_as_one_chunk_and_an_empty_write_as_nothing() -> None:
    def body(start: float) -> Any:
        yield b"first"
        yield b""  # a batch that ended with nothing of its own (several choices, one done)
        yield start + 0.005
        yield b"second"

    cycle = Cycle()

    async def scenario() -> None:
        await paced(DirectWriter(cycle), body(time.monotonic()))  # type: ignore[arg-type]

    run(scenario())
    assert bytes(cycle.transport.written) == b"5\r\nfirst\r\n6\r\nsecond\r\n", \
        "no zero-length chunk (the end of a chunked body) before the response's end"


def test_a_connection_that_cannot_take_a_write_now_leaves_it_to_send() -> None:
    cycle = Cycle()
    writer = DirectWriter(cycle)  # type: ignore[arg-type]
    cycle.flow.write_paused = True  # the client's socket is full
    assert writer.write(b"events") is False
    cycle.flow.write_paused, cycle.disconnected = False, True
    assert writer.write(b"events") is False
    assert bytes(cycle.transport.written) == b""


def events_of(text: str) -> list[tuple[int, str | None, str | None]]:
    """(choice, content, finish reason) of each chat chunk's choices, in the order sent; then
    the usage chunk's usage, and the end."""
    events: list[Any] = []
    for line in text.splitlines():
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            events.append("[DONE]")
            continue
        chunk = json.loads(line[len("data: "):])
        for choice in chunk["choices"]:
            events.append((choice["index"], choice["delta"].get("content"), choice.get("finish_reason")))
        if chunk.get("usage"):
            events.append(chunk["usage"])
    return events


def test_a_stream_through_the_server_is_the_stream_the_in_process_client_gets() -> None:
    """The paced driver (fakeai's server) and the request's task (the in-process client) send
    the same events: several choices of different lengths, the usage, the end."""
    settings = Settings(ttft_ms=2, itl_ms=1, ttft_jitter=0, itl_jitter=0, prefill_ms_per_token=0)
    body = {"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "Tell me a story."}],
            "max_tokens": 40, "n": 3, "seed": 11, "stream": True, "stream_options": {"include_usage": True}}
    with running_app(settings) as (base_url, _):
        served = httpx.post(base_url + "/v1/chat/completions", json=body, timeout=30)
    with TestClient(create_app(settings)) as client:
        in_process = client.post("/v1/chat/completions", json=body)
    assert served.status_code == in_process.status_code == 200
    events = events_of(served.text)
    assert events == events_of(in_process.text)
    assert events[-1] == "[DONE]"
    finishes = [event for event in events if isinstance(event, tuple) and event[2] is not None]
    assert sorted(index for index, _, _ in finishes) == [0, 1, 2]
