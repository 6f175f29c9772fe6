"""Injected failures: which requests fail, how, and which streams break midway.

``ErrorInjector`` decides per request from a seeded source: the first ``fail_first``
requests fail (kinds in turn), then each request fails with probability ``rate`` (kind drawn
evenly from ``kinds``). Streams break midway with probability ``stream_rate``, after a
uniformly drawn number of their tokens.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import msgspec

__all__ = ("ERRORS", "ErrorInjector", "InjectedError")


class InjectedError(msgspec.Struct, frozen=True, kw_only=True):
    """An error as OpenAI would send it."""

    status: int
    type: str
    code: str
    message: str
    param: str | None = None
    retry_after: bool = False
    """Whether the response carries a ``Retry-After`` header."""


ERRORS: dict[str, InjectedError] = {
    "rate_limit": InjectedError(
        status=429,
        type="rate_limit_error",
        code="rate_limit_exceeded",
        message="Rate limit reached for requests (injected by fakeai). Please try again later.",
        retry_after=True,
    ),
    "server_error": InjectedError(
        status=500,
        type="server_error",
        code="internal_error",
        message="The server had an error while processing your request (injected by fakeai).",
    ),
    "service_unavailable": InjectedError(
        status=503,
        type="server_error",
        code="service_unavailable",
        message="The server is overloaded or not ready yet (injected by fakeai).",
        retry_after=True,
    ),
    "context_length": InjectedError(
        status=400,
        type="invalid_request_error",
        code="context_length_exceeded",
        message="This model's maximum context length was exceeded (injected by fakeai).",
        param="messages",
    ),
}


class ErrorInjector:
    def __init__(
        self,
        *,
        rate: float = 0.0,
        kinds: tuple[str, ...] = tuple(ERRORS),
        fail_first: int = 0,
        stream_rate: float = 0.0,
        seed: int = 0,
        ticket: Callable[[], int] | None = None,
    ) -> None:
        """``ticket``, when several processes serve, numbers each request server-wide (0, 1, ...)
        so that ``fail_first`` fails the server's first requests, not each process's."""
        unknown = set(kinds) - set(ERRORS)
        if unknown:
            raise ValueError(f"unknown error kinds: {sorted(unknown)}; known: {sorted(ERRORS)}")
        if (rate or fail_first) and not kinds:
            raise ValueError("error injection needs at least one error kind")
        self._errors = [ERRORS[kind] for kind in kinds]
        self._rate = rate
        self._fail_first = fail_first
        self._remaining_first = fail_first
        self._served_first = 0
        self._ticket = ticket
        self._stream_rate = stream_rate
        self._rng = random.Random(seed)
        self.active = bool(rate or fail_first or stream_rate)
        self.stream_error = ERRORS["server_error"]
        """What a stream that breaks midway sends as its last event."""

    def reconfigure(self, *, rate: float, kinds: tuple[str, ...], stream_rate: float) -> None:
        """New rates and kinds from now on (a running server's change); what ``fail_first`` has
        done so far and the random source carry on."""
        unknown = set(kinds) - set(ERRORS)
        if unknown:
            raise ValueError(f"unknown error kinds: {sorted(unknown)}; known: {sorted(ERRORS)}")
        if (rate or self._remaining_first) and not kinds:
            raise ValueError("error injection needs at least one error kind")
        self._errors = [ERRORS[kind] for kind in kinds]
        self._rate = rate
        self._stream_rate = stream_rate
        self.active = bool(rate or self._remaining_first or stream_rate)

    def pick(self) -> InjectedError | None:
        """The error this request gets, if any."""
        if self._remaining_first:
            ordinal = self._served_first if self._ticket is None else self._ticket()
            self._served_first += 1
            if ordinal < self._fail_first:
                self._remaining_first -= 1
                return self._errors[ordinal % len(self._errors)]
            self._remaining_first = 0  # the server's first requests have all been served
        if self._rate and self._rng.random() < self._rate:
            return self._rng.choice(self._errors)
        return None

    def stream_break(self, tokens: int) -> int | None:
        """After how many of ``tokens`` tokens this stream breaks, if it does."""
        if tokens and self._stream_rate and self._rng.random() < self._stream_rate:
            return self._rng.randrange(tokens)
        return None
