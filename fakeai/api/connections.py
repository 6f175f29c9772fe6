"""fakeai's HTTP connection: uvicorn's httptools protocol with time and size limits, and
OpenAI-shaped answers for what never reaches the application.

uvicorn bounds only idle keep-alive connections (``timeout_keep_alive``): a client that sends
its head or its body slowly holds a connection forever, and a head has no size limit. This
protocol adds (each a setting, see ``fakeai.config``):

- a head deadline: a new connection must start a request, and a request must send its request
  line and headers, within ``header_timeout_seconds`` (counted from the connection, then from
  the request's first byte);
- a body deadline: the whole body within ``body_timeout_seconds`` of the head;
- a size limit on the request line and headers (``max_header_bytes``);
- the connection limit (uvicorn's ``limit_concurrency``, ``max_connections``).

What goes wrong before the application has a request to answer (bad HTTP, a late or oversized
head, one connection too many) is still answered and counted by the application: the protocol
hands it a request marked with the answer to give (``ImposedAnswer`` under
``IMPOSED_ANSWER_KEY``), which fakeai's recorder sends in OpenAI's error shape and records under
the ``malformed`` or ``overloaded`` endpoint, then the connection closes. A request already
being served when its body turns out bad or late is cancelled and answered the same way. Such
an answer is followed by a lingering close (``_LingeringTransport``), so that a client still
sending reads it rather than a reset. The exceptions: a connection that has sent no byte of a
request when its deadline passes is closed without an answer and not counted (there is no
request to answer; uvicorn does the same with idle keep-alive connections); a request whose
answer had already started when its body turned out bad is cut (and counted as 499); one
answered early (a 413) whose body still trickles in is closed at the body deadline.

Every request task ends by cutting its connection if it left its response unfinished (a client
that stopped reading, a request cancelled at shutdown): the connection is aborted, discarding
what the client never read, rather than closed after a flush that may never come. A cancelled
request task ends quietly: the recorder has already counted it (499).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from typing import TYPE_CHECKING, Any

import httptools
import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from fakeai.api.errors import APIError
from fakeai.api.recording import (
    DIRECT_WRITER_KEY,
    IMPOSED_ANSWER_KEY,
    MALFORMED_ENDPOINT,
    OVERLOADED_ENDPOINT,
    ImposedAnswer,
)
from fakeai.api.schemas import ErrorBody
from fakeai.config import Settings

if TYPE_CHECKING:
    from asyncio import TimerHandle
    from collections.abc import Callable

    from uvicorn.config import Config
    from uvicorn.server import ServerState

__all__ = ("DirectWriter", "FakeaiHttpProtocol")

_encode = msgspec.json.Encoder().encode


def _answer(status: int, message: str, code: str, endpoint: str = MALFORMED_ENDPOINT) -> ImposedAnswer:
    body = _encode(ErrorBody(error=APIError(status, message, code=code).detail))
    return ImposedAnswer(status, body, endpoint)


_NO_DEADLINE, _HEAD_DEADLINE, _BODY_DEADLINE = 0, 1, 2
"""What a read started (``FakeaiHttpProtocol._due``): no deadline, the head's, the body's."""

LINGER_SECONDS = 2.0
"""How long a connection closed after an imposed answer still reads what its client sends."""


class _LingeringTransport:
    """The transport an imposed answer is written through.

    uvicorn closes the connection once the answer is sent; with request bytes still unread
    (a 2 MB URL, a body never read) that close is a reset, which can destroy the answer
    before the client reads it. Closing this one only ends the sending side at first; what
    the client still sends is read and dropped until it closes too (``eof_received``), or
    ``LINGER_SECONDS`` pass (nginx's lingering close).
    """

    __slots__ = ("_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        transport = self._transport
        if transport.is_closing():
            return
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._loop.call_later(LINGER_SECONDS, transport.close)


class DirectWriter:
    """Writes a streamed response's events straight to its connection, as a chunk of the body
    each, without an ASGI message and a coroutine of the server's ``send`` per write (a paced
    stream writes once per token: ``fakeai.api.paced_body``).

    Only between the response's start and its end, both sent through ``send``, and only while
    the connection can take a write at once: ``write`` returns False, writing nothing, when the
    client has left, when its socket is full (uvicorn's flow control has paused writing), or
    when the response is not a chunked one in progress; the caller then sends that write
    through ``send``, which waits for the socket to drain (or drops it for a client that left),
    exactly as before. An empty write sends nothing, as ``send`` does: a chunk of zero bytes is
    the end of a chunked body."""

    __slots__ = ("_cycle",)

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._cycle = cycle

    def write(self, events: bytes) -> bool:
        if not events:  # nothing to send (an empty chunk would end a chunked body)
            return True
        cycle = self._cycle
        if cycle.disconnected or cycle.flow.write_paused or not cycle.chunked_encoding or cycle.response_complete:
            return False
        cycle.transport.write(b"%x\r\n%s\r\n" % (len(events), events))
        return True


class _HeadTooLarge(Exception):
    """Raised in a parser callback when the head passes ``max_header_bytes``."""


class FakeaiHttpProtocol(HttpToolsProtocol):
    """One HTTP/1.1 connection; see the module docstring. uvicorn makes one per connection
    from ``config.http``; the limits come from ``config.settings`` (``fakeai.server``), or are
    the defaults under a plain uvicorn ``Config`` (``--http fakeai.api.connections:FakeaiHttpProtocol``)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = getattr(config, "settings", None) or Settings()  # a plain uvicorn Config: the defaults
        self.header_timeout: float = settings.header_timeout_seconds
        self.body_timeout: float = settings.body_timeout_seconds
        self.max_header_bytes: int = settings.max_header_bytes
        # uvicorn's own check answers in plain text: the limit is applied here instead.
        self.connection_limit, self.limit_concurrency = self.limit_concurrency, None
        self._deadline_at = 0.0
        """Loop time at which ``_on_deadline`` is due (see ``_arm``)."""
        self._on_deadline: Callable[[], None] | None = None
        """What to do when the deadline passes (None: no deadline)."""
        self._timer: TimerHandle | None = None
        """The one timer of this connection: fires at ``_timer_at``, at or before the deadline."""
        self._timer_at = 0.0
        self._due = _NO_DEADLINE
        """The deadline the read being parsed started (``_HEAD_DEADLINE``, ``_BODY_DEADLINE``),
        armed once it is parsed (see ``data_received``)."""
        self._in_head = False
        """Between a request's first byte and the end of its headers."""
        self._head_reads = 0
        """Bytes of the reads that ended inside the head (bounds what the parser buffers itself)."""
        self._read_bytes = 0
        """Bytes of the read being parsed."""
        self._given_up = False
        """An answer was imposed: the parser's state is not trusted any more, nothing more is read."""
        self._fresh_context: bool = getattr(config, "reset_contextvars", False)
        """uvicorn's option (in its newer versions) to run each request in a fresh context."""
        self._serving: tuple[RequestResponseCycle, asyncio.Task[None]] | None = None
        """The request whose task is running, and that task."""

    # -- uvicorn's protocol interface ----------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, self._head_deadline_passed)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._given_up:
            return
        self._unset_keepalive_if_required()
        self._read_bytes = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # as uvicorn does
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            self._arm_due()
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse_large_head()
                return
            self.logger.warning("Invalid HTTP request received: %s", exc)
            reason = str(exc).rstrip(".") or "unreadable request"
            self._refuse(_answer(400, f"Invalid HTTP request: {reason}.", "invalid_http"))
            return
        if self._in_head:
            self._head_reads += len(data)
            if self._head_reads > self.max_header_bytes:
                self._refuse_large_head()
                return
        self._arm_due()

    def on_message_begin(self) -> None:
        HttpToolsProtocol.on_message_begin(self)
        self._in_head = True
        self._head_reads = 0
        self._due = _HEAD_DEADLINE

    def on_headers_complete(self) -> None:
        # A head is no longer than the reads it came in that ended inside it and this one:
        # only when those could hold more than the limit is it measured (as parsed).
        if self._head_reads + self._read_bytes > self.max_header_bytes and (
            len(self.url) + sum([len(name) + len(value) + 4 for name, value in self.headers])  # ": " and CRLF
            > self.max_header_bytes
        ):
            raise _HeadTooLarge  # stops the parser; data_received answers
        self._in_head = False
        limit = self.connection_limit
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            self._disarm()
            self.logger.warning("Exceeded concurrency limit.")
            self.scope[IMPOSED_ANSWER_KEY] = _answer(  # type: ignore[typeddict-unknown-key]
                503, "The server is at its connection limit; please retry.", "server_overloaded",
                OVERLOADED_ENDPOINT)
            HttpToolsProtocol.on_headers_complete(self)
            self._given_up = True  # its body is not read, only dropped
            self.cycle.transport = _LingeringTransport(self.transport, self.loop)  # type: ignore[assignment]
            return
        HttpToolsProtocol.on_headers_complete(self)
        self._due = _BODY_DEADLINE  # (replaces the head's, armed or not)

    def on_message_complete(self) -> None:
        self._on_deadline = None  # (``_disarm``)
        self._due = _NO_DEADLINE
        HttpToolsProtocol.on_message_complete(self)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        """uvicorn's, running the application through ``_serve``, which is given its own task."""
        task_of: list[asyncio.Task[None]] = []
        run = cycle.run_asgi(functools.partial(self._serve, cycle, app, task_of))
        if self._fresh_context:
            task = self.loop.create_task(run, context=contextvars.Context())
        else:
            task = self.loop.create_task(run)
        task_of.append(task)
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    # -- requests ----------------------------------------------------------------------------

    async def _serve(
        self, cycle: RequestResponseCycle, app: Any, task_of: list[asyncio.Task[None]],
        scope: Any, receive: Any, send: Any,
    ) -> None:
        """Run the application for ``cycle`` (in ``task_of[0]``); cut the connection if it leaves
        the response unfinished."""
        task = task_of[0]
        self._serving = (cycle, task)
        scope[DIRECT_WRITER_KEY] = DirectWriter(cycle)
        try:
            await app(scope, receive, send)
        except asyncio.CancelledError:  # the shutdown's deadline or a forced stop: already recorded
            task.uncancel()
        finally:
            del scope[DIRECT_WRITER_KEY]  # (the cycle holds the scope: no cycle left behind)
            if self._serving is not None and self._serving[1] is task:
                self._serving = None
            if not cycle.response_complete:
                self._cut(cycle)

    def _refuse_large_head(self) -> None:
        self._refuse(_answer(
            431, f"The request line and headers are larger than {self.max_header_bytes} bytes.",
            "request_header_too_large"))

    def _cut(self, cycle: RequestResponseCycle) -> None:
        """End the connection now, discarding unsent bytes (what ``connection_lost`` will also note)."""
        cycle.disconnected = True
        cycle.message_event.set()
        self.transport.abort()

    def _refuse(self, answer: ImposedAnswer) -> None:
        """Answer the request being received with ``answer``, then close; read nothing more."""
        self._given_up = True  # what still comes is read and dropped (unread bytes make the close a reset)
        self._disarm()
        cycle = self.cycle
        if self._in_head or cycle is None or not cycle.more_body:
            self._answer_unrouted(answer)
        elif cycle.response_complete:  # answered early (a 413): the rest of its body is not worth one
            self.transport.close()
        else:
            self._impose(cycle, answer)  # its head was read: the application has it already

    def _impose(self, cycle: RequestResponseCycle, answer: ImposedAnswer) -> None:
        cycle.keep_alive = False
        serving = self._serving
        running = serving is not None and serving[0] is cycle
        if cycle.response_started:  # too late for an answer
            if running:
                serving[1].cancel()  # type: ignore[index]
            self._cut(cycle)
            return
        cycle.scope[IMPOSED_ANSWER_KEY] = answer  # type: ignore[typeddict-unknown-key]
        cycle.transport = _LingeringTransport(self.transport, self.loop)  # type: ignore[assignment]
        if running:
            serving[1].cancel()  # type: ignore[index]  # the recorder answers instead
        # else: not started yet (behind a pipelined request): the recorder answers when it starts

    def _answer_unrouted(self, answer: ImposedAnswer) -> None:
        """Give the application a request with nothing but ``answer``, after the one in progress."""
        scope = {
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "root_path": self.root_path,
            "method": "-",
            "path": "-",
            "raw_path": b"-",
            "query_string": b"",
            "headers": [],
            "state": self.app_state.copy(),
            IMPOSED_ANSWER_KEY: answer,
        }
        cycle = RequestResponseCycle(
            scope=scope,  # type: ignore[arg-type]
            transport=_LingeringTransport(self.transport, self.loop),  # type: ignore[arg-type]
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=False,
            on_response=self.on_response_complete,
        )
        cycle.more_body = False
        previous, self.cycle = self.cycle, cycle
        if previous is None or previous.response_complete:
            self._start_asgi_task(cycle, self.app)
        else:
            self.pipeline.appendleft((cycle, self.app))

    # -- deadlines ---------------------------------------------------------------------------

    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` in ``seconds`` unless ``_arm`` or ``_disarm`` is called before.

        Every request moves its connection's deadline three times (head, body, none), so the
        deadline is a number and the connection keeps one timer, moved only when the new
        deadline is earlier than the timer: a timer that finds the deadline later than itself
        sets itself again for it (once per timeout at most, not once per request).
        """
        at = self.loop.time() + seconds
        self._deadline_at = at
        self._on_deadline = callback
        timer = self._timer
        if timer is None or at < self._timer_at:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(at, self._deadline_timer)
            self._timer_at = at

    def _arm_due(self) -> None:
        """Arm the deadline the read just parsed started, if it did (the request's head began in
        it, or its body: each counts from that read; a request read whole in one starts none).
        Nothing can time out while a read is being parsed, so a deadline started and ended
        inside one (most are) is never armed."""
        due = self._due
        if not due:
            return
        self._due = _NO_DEADLINE
        if due == _HEAD_DEADLINE:
            self._arm(self.header_timeout, self._head_deadline_passed)
        else:
            self._arm(self.body_timeout, self._body_deadline_passed)

    def _disarm(self) -> None:
        self._on_deadline = None
        self._due = _NO_DEADLINE

    def _deadline_timer(self) -> None:
        self._timer = None
        callback = self._on_deadline
        if callback is None:
            return
        at = self._deadline_at
        # Moved later since the timer was set: set it again. Not ``loop.time() < at``: a timer
        # may fire a little early (uvloop rounds delays to whole milliseconds), and would then
        # set itself again with no delay until the clock reached the deadline.
        if at > self._timer_at:
            self._timer = self.loop.call_at(at, self._deadline_timer)
            self._timer_at = at
            return
        self._on_deadline = None
        callback()

    def _head_deadline_passed(self) -> None:
        if not self._in_head:  # not a byte of a request yet: nothing to answer
            self.transport.close()
            return
        self._refuse(_answer(
            408, f"The request line and headers were not received within {self.header_timeout:g} s.",
            "request_timeout"))

    def _body_deadline_passed(self) -> None:
        cycle = self.cycle
        if cycle is None or not cycle.more_body:
            return
        if cycle.response_complete:  # answered early (a 413): its body is not waited for any longer
            self.transport.close()
            return
        if any(queued is cycle for queued, _ in self.pipeline):  # its body is not read before it starts
            self._arm(self.body_timeout, self._body_deadline_passed)
            return
        self._refuse(_answer(
            408, f"The request body was not received within {self.body_timeout:g} s.", "request_timeout"))
