"""A read in slices lets what fell due during a slice run before the next slice."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Generator

import uvloop

from fakeai.metrics.slicing import no_deadline, run_in_slices


def test_a_wake_up_during_a_slice_runs_before_the_next_slice() -> None:
    """A paced token's timerfd fires, or a request arrives, while a scrape works: its task
    runs as soon as the slice it fell in ends, not after one more."""
    order: list[str] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        woken = loop.create_future()
        loop.add_reader(ours, lambda: woken.done() or woken.set_result(ours.recv(1)))

        async def waiter() -> None:
            await woken
            order.append("woken")

        def read() -> Generator[None, None, None]:
            for step in range(4):
                order.append(f"slice {step}")
                if step == 1:
                    theirs.send(b"!")  # becomes readable while slice 1 works
                yield

        task = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        await run_in_slices(read(), slice_seconds=0.0)  # every step a slice of its own
        await task
        loop.remove_reader(ours)
        ours.close()
        theirs.close()

    uvloop.run(scenario())
    assert order == ["slice 0", "slice 1", "woken", "slice 2", "slice 3"]


def test_a_read_gives_way_before_a_paced_deadline_not_otherwise() -> None:
    """Slices of time aside, a read lets the loop run when the earliest paced token falls due
    within its next step, and runs through when none does."""

    def interleaving(next_deadline) -> list[str]:
        order: list[str] = []

        async def scenario() -> None:
            async def serving() -> None:
                while True:
                    order.append("served")
                    await asyncio.sleep(0)

            def read() -> Generator[None, None, None]:
                for step in range(3):
                    order.append(f"step {step}")
                    yield

            task = asyncio.create_task(serving())
            await asyncio.sleep(0)
            order.clear()
            await run_in_slices(read(), slice_seconds=60.0, next_deadline=next_deadline)
            task.cancel()

        uvloop.run(scenario())
        return order

    assert interleaving(no_deadline) == ["step 0", "step 1", "step 2"]
    due_now = interleaving(time.monotonic)
    assert due_now[:1] == ["step 0"] and due_now.count("served") >= 2
    assert due_now.index("step 1") > due_now.index("served") and due_now.index("step 2") > due_now.index("step 1") + 1
