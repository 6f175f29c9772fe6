"""Long reads in slices, so that the event loop keeps serving while they run.

A scrape's work (assembling a snapshot from the copies it took, rendering it) is written as a
generator that yields where it may pause. ``run`` drives one to its end at once; ``run_in_slices``
lets the event loop run whenever a slice has taken ``slice_seconds``, and sooner when the
earliest paced token falls due within the next step (the process's pacer knows when), so that
a paced token waits at most about one step, however large the scrape (the server's loop is
uvloop's: the order its tasks resume in is uvloop's).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Generator
from typing import TypeVar

__all__ = ("SLICE_SECONDS", "STEP_SECONDS", "no_deadline", "run", "run_in_slices")

T = TypeVar("T")

SLICE_SECONDS = 0.001
"""How long a read works before it lets the event loop run when no paced deadline is near.

Paced work (tokens, the deadline of a plain answer, the engine model's steps) is protected by
the deadline check, step by step; this bounds how long a read holds everything else (a request
that has just arrived, an unpaced answer). Each give-way lets every ready request run first,
so under a saturating load a give-way costs a whole pass of the loop: with 0.2 ms slices a
Prometheus scrape of a window of 1e5 samples took 345 ms at the median while wrk saturated the
server with zero-latency requests (64 connections), 27 ms with 1 ms slices (36 ms at 4.1e5
samples: ``benchmarks/compare.py``'s scrape under load), 18 ms with 2 ms. Not 2 ms: what the
deadline check cannot see waits for a whole slice -- a request that has just arrived, whose
first token's deadline is not planned yet (its TTFT counts from its arrival)."""
STEP_SECONDS = 0.0001
"""About the longest a read's step holds the loop under load: a paced deadline this close
makes a read give way before its next step."""


def run(steps: Generator[None, None, T]) -> T:
    """Every step at once; the generator's return value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def no_deadline() -> float:
    """No paced deadline is known: reads give way by time alone."""
    return math.inf


async def run_in_slices(
    steps: Generator[None, None, T],
    slice_seconds: float = SLICE_SECONDS,
    next_deadline: Callable[[], float] = no_deadline,
) -> T:
    """Every step, letting the event loop run after each slice of about ``slice_seconds``, and
    sooner when ``next_deadline()`` (the earliest paced token's, on ``time.monotonic``) falls
    within the next step: the token then waits for no more than the step it fell due in."""
    clock = time.monotonic
    started = clock()
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        now = clock()
        if now - started >= slice_seconds or next_deadline() <= now + STEP_SECONDS:
            await _behind_what_woke_meanwhile()
            started = clock()


async def _behind_what_woke_meanwhile() -> None:
    """Let the event loop run, and resume behind every task that woke during the last slice.

    A task that yields once (``asyncio.sleep(0)``) is queued before uvloop polls for I/O, so
    the tasks that poll wakes (paced tokens whose timerfd fired, requests that arrived) would
    wait behind the read's next slice too: up to two slices late. Yielding twice queues the
    next slice after them, so they wait for the slice they fell due in, and no more.
    """
    await asyncio.sleep(0)
    await asyncio.sleep(0)
