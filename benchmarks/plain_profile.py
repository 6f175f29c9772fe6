"""Where a plain (non-streamed) chat request's microseconds go, in one process, no network.

    taskset -c 1 .venv/bin/python -m benchmarks.plain_profile            # layers, then a profile
    taskset -c 1 .venv/bin/python -m benchmarks.plain_profile --no-profile

The same chat request as ``compare.py``'s RPS figure (16 tokens, zero latency) is driven
through the ASGI interface, as uvicorn would call it (a fresh scope per request, a
``receive`` that gives the body, a ``send`` that drops the answer), so what is measured is
fakeai's and Litestar's own cost, without uvicorn's. Layers, each timed per request
(CPU time, medians of alternated rounds, so no layer is favoured by the machine's state):

* ``bare ASGI``: ``benchmarks.apps.bare_asgi``, the driver's own floor;
* ``Litestar @asgi route``: ``benchmarks.apps.litestar_asgi_route``, the same fixed answer from
  a Litestar ``@asgi`` route: what Litestar's entry, exception layer and routing cost (the
  floor for an endpoint that stays a Litestar route);
* ``handler only``: fakeai's chat handler called directly, with an exchange of its own and no
  recording (what fakeai does for the request: reading, planning, encoding, sending);
* ``recorder + handler``: the same inside fakeai's ``Recorder`` (adds the exchange and the
  recording), without Litestar;
* ``fakeai app``: the whole application (adds Litestar's entry, routing and layers);
* ``fakeai app, recording off``: the same with ``record_metrics=False``.

Then cProfile's view of the whole application (cProfile sees Python calls, not the time
inside compiled ones: msgspec, the metrics kernel, uvloop).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable

from litestar import Litestar

from benchmarks.apps import bare_asgi, litestar_asgi_route
from fakeai.api.recording import EXCHANGE_KEY, Exchange, Recorder
from fakeai.app import create_app
from fakeai.config import Settings

CHAT_BODY = (b'{"model":"openai/gpt-oss-120b","messages":[{"role":"user","content":"Hello!"}],'
             b'"max_tokens":16,"ignore_eos":true}')
PATH = "/v1/chat/completions"

ASGI = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


def request_scope() -> dict:
    """A scope as uvicorn's httptools protocol makes one for wrk's request."""
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "scheme": "http", "method": "POST",
        "root_path": "", "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(CHAT_BODY))],
        "state": {},
    }


async def receive() -> dict:
    return {"type": "http.request", "body": CHAT_BODY, "more_body": False}


async def send(message: dict) -> None:
    if message["type"] == "http.response.start" and message["status"] != 200:
        raise RuntimeError(f"status {message['status']}")


def chat_handler(app: Litestar) -> ASGI:
    """The function of the app's chat route."""
    return next(route.route_handler.fn for route in app.routes if route.path == PATH)


def layers() -> dict[str, ASGI]:
    """The application, and the parts of it timed apart."""
    app = create_app(Settings(zero_latency=True))
    quiet = create_app(Settings(zero_latency=True, record_metrics=False))
    registry = app.state.metrics
    handler = chat_handler(app)
    chat_only = quiet.state.metrics
    bare_handler = chat_handler(quiet)

    async def handler_only(scope: dict, receive: Callable, send: Callable) -> None:
        exchange = Exchange(chat_only.clock, send, recording=False)
        scope[EXCHANGE_KEY] = exchange
        await bare_handler(scope=scope, receive=receive, send=send)
        routing = exchange.routing
        if routing is not None:
            quiet.state.engine.kv_cache.release(routing)

    async def call_handler(scope: dict, receive: Callable, send: Callable) -> None:
        await handler(scope=scope, receive=receive, send=send)

    recorded = Recorder(call_handler, registry, app.state.engine.kv_cache)
    return {
        "bare ASGI": bare_asgi,
        "Litestar @asgi route": litestar_asgi_route(),
        "handler only": handler_only,
        "recorder + handler": recorded,
        "fakeai app": app,
        "fakeai app, recording off": quiet,
    }


def _freeze() -> None:
    """As the server does once started (``fakeai.app``): the apps' own objects out of the
    collector's sight, so collections walk only per-request garbage."""
    gc.collect()
    gc.freeze()


async def per_request(app: ASGI, count: int) -> float:
    """CPU microseconds per request (this thread's CPU time: a busy machine's other processes,
    which take the core from time to time, do not count)."""
    started = time.thread_time()
    for _ in range(count):
        await app(request_scope(), receive, send)
    return (time.thread_time() - started) / count * 1e6


async def time_layers(rounds: int, count: int) -> dict[str, float]:
    apps = layers()
    _freeze()
    times: dict[str, list[float]] = {name: [] for name in apps}
    for app in apps.values():
        await per_request(app, count // 2)  # warm-up
    names = list(apps)
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            times[name].append(await per_request(apps[name], count))
    return {name: statistics.median(values) for name, values in times.items()}


async def profile(count: int) -> pstats.Stats:
    app = create_app(Settings(zero_latency=True))
    _freeze()
    await per_request(app, 2000)
    profiler = cProfile.Profile()
    profiler.enable()
    await per_request(app, count)
    profiler.disable()
    return pstats.Stats(profiler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=5_000, help="requests per round")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    medians = asyncio.run(time_layers(args.rounds, args.requests))
    floor = medians["bare ASGI"]
    print(f"{'layer':<32}{'us/request':>12}{'above bare':>12}")
    for name, us in medians.items():
        print(f"{name:<32}{us:>12.2f}{us - floor:>12.2f}")
    litestar = medians["fakeai app"] - medians["recorder + handler"]
    print(f"{'Litestar (app - recorder+handler)':<32}{litestar:>12.2f}")
    print(f"{'recording (recorder+handler - handler)':<32}"
          f"{medians['recorder + handler'] - medians['handler only']:>12.2f}")
    if not args.no_profile:
        stats = asyncio.run(profile(args.requests))
        stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
