"""What the server's background tasks share (the history sampler, alert webhooks, the OTLP
export): stopping one."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ("stop_task",)


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (if there is one) and wait until it has ended."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
