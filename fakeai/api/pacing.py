"""Waking streams at their tokens' deadlines with sub-millisecond precision.

libuv (under uvloop) keeps timers in whole milliseconds, so ``asyncio.sleep`` wakes up to a
millisecond off: more than the inter-token error fakeai promises. ``TimerfdPacer`` keeps
all deadlines of the event loop in one heap and arms a Linux ``timerfd`` (nanosecond
resolution, CLOCK_MONOTONIC: the clock of ``time.monotonic``) for the earliest; when it
fires, every due waiter is woken: a future resolved (``wait_until``), or a callback called
from the timer itself (``call_at``: a paced stream's driver, ``fakeai.api.paced_body``). The
timerfd comes from ``os`` on Python 3.13 and later (``OsTimerfd``), from libc by ctypes before
(``CtypesTimerfd``). Elsewhere ``SleepPacer`` falls back to ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import itertools
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ("CtypesTimerfd", "OsTimerfd", "SleepPacer", "TimerfdPacer", "new_pacer", "new_timerfd")

_log = logging.getLogger("fakeai")

FIRE_SECONDS = 0.001
"""How long one firing of the timer goes on serving waiters that fall due meanwhile, before it
lets the event loop poll its connections (and is re-armed for the rest)."""

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = 0o4000
_TFD_CLOEXEC = 0o2000000
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class OsTimerfd:
    """A non-blocking CLOCK_MONOTONIC timerfd made with ``os`` (Python 3.13 and later)."""

    def __init__(self) -> None:
        self.fd: int = os.timerfd_create(time.CLOCK_MONOTONIC, flags=os.TFD_NONBLOCK | os.TFD_CLOEXEC)

    def arm(self, seconds: int, nanoseconds: int) -> None:
        """Fire once at ``seconds`` + ``nanoseconds`` on the monotonic clock (absolute)."""
        initial = seconds * 1_000_000_000 + nanoseconds
        os.timerfd_settime_ns(self.fd, flags=os.TFD_TIMER_ABSTIME, initial=initial)


class CtypesTimerfd:
    """The same timerfd through libc by ctypes, for Pythons whose ``os`` has none (before 3.13)."""

    def __init__(self, libc: ctypes.CDLL) -> None:
        self._settime = libc.timerfd_settime
        self.fd: int = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._spec = _Itimerspec()

    def arm(self, seconds: int, nanoseconds: int) -> None:
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = seconds, nanoseconds
        self._settime(self.fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None)


class SleepPacer:
    """Deadlines by ``asyncio.sleep`` (millisecond precision under uvloop)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    async def wait_until(self, deadline: float) -> None:
        wait = deadline - self._clock()
        if wait > 0.0:
            await asyncio.sleep(wait)

    def next_deadline(self) -> float:
        """Unknown (``asyncio.sleep`` keeps its timers): infinity."""
        return math.inf

    def close(self) -> None:
        pass


class TimerfdPacer:
    """Deadlines on ``time.monotonic`` by one timerfd per event loop (Linux).

    A waiter is a future (``wait_until``) or a callback (``call_at``): a paced stream's driver
    is called from the timer itself, without a future or a task's wake-up in between."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timerfd: OsTimerfd | CtypesTimerfd,
        observe_lateness: Callable[[float], None] | None = None,
    ) -> None:
        self._loop = loop
        self._observe_lateness = observe_lateness
        """Given how many seconds after its deadline each waiter was served (None: not measured)."""
        self.timerfd = timerfd
        self._fd = timerfd.fd
        self._heap: list[tuple[float, int, Callable[[Any], None], Any]] = []
        """(deadline, order, call, argument): ``call(argument)`` once the deadline has passed."""
        self._order = itertools.count()
        self._armed = math.inf
        loop.add_reader(self._fd, self._fire)

    def wait_until(self, deadline: float) -> asyncio.Future[None]:
        future = self._loop.create_future()
        if deadline <= time.monotonic():
            future.set_result(None)
            return future
        self._push(deadline, _resolve, future)
        return future

    def call_at(self, deadline: float, call: Callable[[Any], None], argument: Any = None) -> None:
        """``call(argument)`` from the timer once ``deadline`` has passed (never sooner, never
        from here: a deadline already passed is called at the loop's next poll)."""
        self._push(deadline, call, argument)

    def _push(self, deadline: float, call: Callable[[Any], None], argument: Any) -> None:
        heapq.heappush(self._heap, (deadline, next(self._order), call, argument))
        if deadline < self._armed:
            self._arm(deadline)

    def next_deadline(self) -> float:
        """The earliest deadline a waiter waits for (infinity: none)."""
        return self._heap[0][0] if self._heap else math.inf

    def _arm(self, deadline: float) -> None:
        self._armed = deadline
        seconds, fraction = divmod(deadline, 1.0)
        self.timerfd.arm(int(seconds), max(int(fraction * 1e9), 1))  # (0, 0) would disarm it

    def _fire(self) -> None:
        heap = self._heap
        started = now = time.monotonic()
        pop = heapq.heappop
        observe = self._observe_lateness
        while heap:
            if heap[0][0] > now:
                # Waiters that fell due while the ones before them were served are served in the
                # same fire (each fire costs a timer interrupt and a re-arm), for up to FIRE_SECONDS.
                now = time.monotonic()
                if heap[0][0] > now or now - started > FIRE_SECONDS:
                    break
            deadline, _, call, argument = pop(heap)
            if observe is not None:
                observe(time.monotonic() - deadline)
            try:
                call(argument)
            except Exception:  # one waiter's failure must not strand the others
                _log.exception("a paced waiter failed")
        if heap:
            self._arm(heap[0][0])  # re-arming also clears the expiration that woke this
        else:
            self._armed = math.inf
            try:
                os.read(self._fd, 8)  # nothing to re-arm: consume the expiration
            except BlockingIOError:
                pass

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        for _, _, call, argument in self._heap:
            cancel = getattr(argument, "cancel", None)  # a future, or a driver (``PacedDriver``)
            if cancel is not None:
                cancel()
        self._heap.clear()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # a waiter whose client left was cancelled
        future.set_result(None)


def new_timerfd() -> OsTimerfd | CtypesTimerfd:
    """A timerfd: from ``os`` where Python has it (3.13+), else from libc by ctypes."""
    if hasattr(os, "timerfd_create"):
        return OsTimerfd()
    return CtypesTimerfd(ctypes.CDLL(None, use_errno=True))


def new_pacer(
    clock: Callable[[], float], observe_lateness: Callable[[float], None] | None = None
) -> TimerfdPacer | SleepPacer:
    """The precise pacer where it works (Linux, deadlines on ``time.monotonic``), telling
    ``observe_lateness`` how late it served each waiter; the other does not measure it."""
    if sys.platform == "linux" and clock is time.monotonic:
        try:
            return TimerfdPacer(asyncio.get_running_loop(), new_timerfd(), observe_lateness)
        except (OSError, AttributeError, NotImplementedError):
            pass
    return SleepPacer(clock)
