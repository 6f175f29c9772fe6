"""Baseline servers measured beside fakeai in the same run.

* ``minimal_litestar``: the least a Litestar + msgspec chat route can do: decode the request
  into a Struct and return a fixed chat completion of the same size as fakeai's answer.
* ``litestar_asgi_route``: the least a Litestar route can cost: one ``@asgi`` handler (the kind
  fakeai's endpoints are) that reads the body and sends a fixed answer, in an app configured as
  fakeai's is (no OpenAPI, no logging config): Litestar's entry, exception layer and routing
  around a bare ASGI function, the floor for an endpoint that stays a Litestar route.
* ``bare_asgi``: no framework at all: the Python ceiling on uvicorn.
* ``bare_paced_asgi``: no framework and no model, paced: ``max_tokens`` fixed chunks, the first
  ``TTFT`` after the request and then one every ``ITL`` (``BARE_PACED_ITL_MS``, default 10),
  each awaited with fakeai's timerfd pacer and sent through ``send``: the Python ceiling for
  paced streaming on uvicorn, the way any ASGI app would pace.
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec
from litestar import Litestar, asgi, post

from fakeai.api.pacing import new_pacer

ANSWER = "The lighthouse keeper climbed the spiral stairs an hour before dusk, as he had "  # 16 tokens x 4 chars
ANSWER = ANSWER[:64]


class Message(msgspec.Struct):
    role: str
    content: str


class ChatRequest(msgspec.Struct):
    model: str
    messages: list[Message]
    max_tokens: int | None = None


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(msgspec.Struct):
    role: str
    content: str


class Choice(msgspec.Struct):
    index: int
    message: AssistantMessage
    finish_reason: str


class ChatCompletion(msgspec.Struct):
    object: str
    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


def minimal_litestar() -> Litestar:
    @post("/v1/chat/completions", status_code=200)
    async def chat(data: ChatRequest) -> ChatCompletion:
        return ChatCompletion(
            object="chat.completion",
            id="chatcmpl-0",
            created=0,
            model=data.model,
            choices=[Choice(index=0, message=AssistantMessage(role="assistant", content=ANSWER), finish_reason="length")],
            usage=Usage(prompt_tokens=7, completion_tokens=16, total_tokens=23),
        )

    return Litestar(route_handlers=[chat], openapi_config=None, logging_config=None)


_BARE_BODY = msgspec.json.encode(
    {
        "object": "chat.completion",
        "id": "chatcmpl-0",
        "created": 0,
        "model": "openai/gpt-oss-120b",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 16, "total_tokens": 23},
    }
)
_BARE_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BARE_BODY)).encode())]


async def bare_asgi(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _BARE_HEADERS})
    await send({"type": "http.response.body", "body": _BARE_BODY})


def litestar_asgi_route() -> Litestar:
    @asgi("/v1/chat/completions", copy_scope=False)
    async def chat(scope: Any, receive: Any, send: Any) -> None:
        await bare_asgi(scope, receive, send)

    return Litestar(route_handlers=[chat], openapi_config=None, logging_config=None)


_PACED_TTFT = 0.020
_PACED_ITL = float(os.environ.get("BARE_PACED_ITL_MS", "10")) / 1000
_PACED_CHUNK = (b'data: {"id":"chatcmpl-0","object":"chat.completion.chunk","created":0,"model":"openai/gpt-oss-120b",'
                b'"choices":[{"index":0,"delta":{"content":" token"},"finish_reason":null}]}\n\n')
_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
_pacers: list[Any] = []


async def bare_paced_asgi(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] != "POST":  # a readiness probe
        await send({"type": "http.response.start", "status": 200, "headers": _BARE_HEADERS})
        await send({"type": "http.response.body", "body": _BARE_BODY})
        return
    started = time.monotonic()
    if not _pacers:
        _pacers.append(new_pacer(time.monotonic))
    pacer = _pacers[0]
    tokens = msgspec.json.decode(body).get("max_tokens") or 16
    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
    for index in range(tokens):
        deadline = started + _PACED_TTFT + index * _PACED_ITL
        if time.monotonic() < deadline:
            await pacer.wait_until(deadline)
        await send({"type": "http.response.body", "body": _PACED_CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
