"""Requests leave no reference cycles behind: the collector never has to pause for them."""

from __future__ import annotations

import asyncio
import gc

import pytest

from fakeai.app import create_app
from fakeai.config import Settings

CHAT = b'{"model":"openai/gpt-oss-120b","messages":[{"role":"user","content":"Hello!"}],"max_tokens":4}'


class ServerCycle:
    """Like uvicorn's request cycle: its ``send`` belongs to an object that holds the scope."""

    def __init__(self, path: str, body: bytes) -> None:
        self.scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST" if body else "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"content-length", str(len(body)).encode())], "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2),
        }
        self.body = body
        self.done = asyncio.Event()
        self.status = 0

    async def receive(self) -> dict:
        if self.body is not None:
            body, self.body = self.body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self.done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif not message.get("more_body", False):
            self.done.set()


@pytest.mark.parametrize("record_metrics", [True, False])
def test_requests_leave_no_cyclic_garbage(record_metrics: bool) -> None:
    app = create_app(Settings(zero_latency=True, record_metrics=record_metrics))
    routes = [("/v1/chat/completions", CHAT), ("/v1/models", b""), ("/nowhere", b"")]

    async def serve() -> tuple[set[int], int]:
        async def requests(count: int) -> set[int]:
            statuses = set()
            for index in range(count):
                cycle = ServerCycle(*routes[index % 3])
                await app(cycle.scope, cycle.receive, cycle.send)
                statuses.add(cycle.status)
            return statuses

        await requests(30)  # imports and caches made once
        gc.collect()
        gc.disable()
        try:
            statuses = await requests(300)
            return statuses, gc.collect()
        finally:
            gc.enable()

    statuses, unreachable = asyncio.run(serve())
    assert statuses == {200, 404}
    assert unreachable == 0, f"{unreachable} objects in reference cycles after 300 requests"
