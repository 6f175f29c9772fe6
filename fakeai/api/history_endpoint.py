"""``GET /metrics/history``: the live ring, or with ``since`` / ``step`` the history database.

Without parameters the answer is the live ring (``--history-seconds`` at full resolution, read
from memory: no disk). ``since`` (Unix seconds, or a duration back from now: ``90s``, ``15m``,
``1h``, ``1.5d``) and ``step`` (seconds, or a duration) ask the database instead, through its
thread (``HistoryStore``): the points from ``since`` on (default: the last
``--history-seconds``), merged to ``step`` (see ``fakeai.metrics.history_db`` for what a merged
point's figures are), at most ``MAX_POINTS`` (a longer span is merged to a coarser step, which
the answer names). A bad parameter is a 400 in OpenAI's shape; a database that does not
answer within ``QUERY_SECONDS`` (a stalled disk), or too many queries at once, a 503.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote_plus

from litestar import asgi
from litestar.handlers import ASGIRouteHandler

from fakeai.api.errors import APIError
from fakeai.api.responses import document_method, send_document
from fakeai.exporters.history import history_json_steps, history_query_json_steps
from fakeai.metrics.history_db import MAX_POINTS
from fakeai.metrics.history_store import HistoryBusy
from fakeai.metrics.slicing import no_deadline, run_in_slices

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from fakeai.metrics.history import MetricsHistory
    from fakeai.metrics.history_ring import SharedHistory
    from fakeai.metrics.history_store import HistoryStore

__all__ = ("MAX_STEP_SECONDS", "MIN_STEP_SECONDS", "QUERY_SECONDS", "HistoryQuery", "history_handler",
           "parse_history_query")

QUERY_SECONDS = 5.0
"""How long a query waits for the database before the answer is a 503."""
MIN_STEP_SECONDS = 0.05
"""The shortest step (the shortest sampling interval)."""
MAX_STEP_SECONDS = 366 * 86_400.0
PARAMETERS = ("since", "step")
_NUMBER = r"\d{1,12}(?:\.\d{1,9})?"
_SECONDS = re.compile(_NUMBER)
_DURATION = re.compile(rf"({_NUMBER})([smhd])")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_JSON = "application/json"


class HistoryQuery(NamedTuple):
    since: float
    """Unix seconds."""
    step: float | None


def _bad(param: str, message: str) -> APIError:
    return APIError(400, message, param=param, code="invalid_value")


def _duration(text: str) -> float | None:
    found = _DURATION.fullmatch(text)
    return float(found.group(1)) * _UNITS[found.group(2)] if found else None


def parse_history_query(query_string: bytes, now: float, live_seconds: float) -> HistoryQuery | None:
    """The query of ``query_string`` (``None``: none, the live ring); raises a 400 ``APIError``."""
    if not query_string:
        return None
    values: dict[str, str] = {}
    for part in query_string.decode("latin-1").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name = unquote_plus(name)
        if name not in PARAMETERS:
            raise APIError(400, f"Unrecognized query parameter '{name[:64]}': /metrics/history takes 'since' "
                                "and 'step'.", param=name[:64], code="unknown_parameter")
        if name in values:
            raise _bad(name, f"The query parameter '{name}' is given more than once.")
        values[name] = unquote_plus(value)
    if not values:
        return None
    since = now - live_seconds
    if "since" in values:
        text = values["since"]
        back = _duration(text)
        if back is not None:
            since = now - back
        elif _SECONDS.fullmatch(text):
            since = float(text)
        else:
            raise _bad("since", f"Invalid 'since' {text[:64]!r}: Unix seconds (1767225600) or a duration "
                                "back from now, a number and s, m, h or d (90s, 15m, 1h, 1.5d).")
    step = None
    if "step" in values:
        text = values["step"]
        step = float(text) if _SECONDS.fullmatch(text) else _duration(text)
        if step is None or not MIN_STEP_SECONDS <= step <= MAX_STEP_SECONDS:
            raise _bad("step", f"Invalid 'step' {text[:64]!r}: seconds from {MIN_STEP_SECONDS} to "
                               f"{MAX_STEP_SECONDS:.0f}, as a number (60) or a duration (5m, 1h).")
    return HistoryQuery(since, step)


async def _ask(store: HistoryStore | None, query: HistoryQuery):
    def unavailable(message: str, code: str) -> APIError:
        return APIError(503, message, type="service_unavailable", code=code, headers={"Retry-After": "1"})

    if store is None:
        raise unavailable("This server keeps no history database.", "history_unavailable")
    try:
        future = store.submit_query(query.since, query.step, MAX_POINTS)
    except HistoryBusy as exc:
        raise unavailable(f"{exc}.", "history_busy") from None
    try:
        async with asyncio.timeout(QUERY_SECONDS):  # never swallows a cancellation, as wait_for may on 3.11
            return await asyncio.wrap_future(future)
    except TimeoutError:
        raise unavailable(f"The history database did not answer within {QUERY_SECONDS:g} s.",
                          "history_busy") from None
    except (sqlite3.Error, HistoryBusy) as exc:
        raise unavailable(f"The history database failed: {exc}.", "history_unavailable") from None


def history_handler(
    history: MetricsHistory | SharedHistory,
    store: HistoryStore | None,
    wall_clock: Callable[[], float],
    next_deadline: Callable[[], float] = no_deadline,
) -> ASGIRouteHandler:
    @asgi("/metrics/history", copy_scope=False)
    async def metrics_history(scope: Scope, receive: Receive, send: Send) -> None:
        method = document_method(scope)
        query = parse_history_query(scope.get("query_string", b""), wall_clock(), history.seconds)
        parts: list[bytes] = []  # made in slices: the event loop serves paced tokens meanwhile
        if query is None:
            await run_in_slices(history_json_steps(parts, history), next_deadline=next_deadline)
        else:
            result = await _ask(store, query)
            await run_in_slices(history_query_json_steps(parts, history, query.since, result, MAX_POINTS),
                                next_deadline=next_deadline)
        body = b"".join(parts)
        await send_document(send, method, body, _JSON, ((b"cache-control", b"no-store"),))

    return metrics_history

