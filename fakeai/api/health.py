"""``GET /health``: is the server up."""

from __future__ import annotations

import time

import msgspec
from litestar import get

__all__ = ("health",)


class Health(msgspec.Struct, kw_only=True, frozen=True):
    status: str
    timestamp: float


@get("/health", sync_to_thread=False, opt={"monitoring": True})
def health() -> Health:
    return Health(status="healthy", timestamp=time.time())
