"""The kernel in use, compiled or its pure-Python twin: sliding windows, metrics regions,
block hashing and the prefix cache.

The compiled ``fakeai._window`` is used unless ``FAKEAI_NO_EXTENSIONS`` is set to a
non-empty value other than ``0``, or the extension is not built. ``KERNEL`` names the one
in use (``"compiled"`` or ``"python"``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

__all__ = (
    "DEFAULT_MAX_SAMPLES",
    "KERNEL",
    "NO_EXTENSIONS",
    "EndpointCells",
    "MetricsWriter",
    "ModelCells",
    "PrefixCache",
    "Region",
    "SlidingWindow",
    "block_hashes",
    "region_bytes",
    "union",
)

NO_EXTENSIONS = os.environ.get("FAKEAI_NO_EXTENSIONS", "") not in ("", "0")

if TYPE_CHECKING or NO_EXTENSIONS:
    from fakeai._window_py import (
        DEFAULT_MAX_SAMPLES,
        EndpointCells,
        MetricsWriter,
        ModelCells,
        PrefixCache,
        Region,
        SlidingWindow,
        block_hashes,
        region_bytes,
        union,
    )

    KERNEL = "python"
else:
    try:
        from fakeai._window import (
            DEFAULT_MAX_SAMPLES,
            EndpointCells,
                MetricsWriter,
            ModelCells,
                PrefixCache,
            Region,
                SlidingWindow,
            block_hashes,
            region_bytes,
            union,
        )

        KERNEL = "compiled"
    except ImportError:  # pragma: no cover - depends on whether the extension was built
        from fakeai._window_py import (
            DEFAULT_MAX_SAMPLES,
            EndpointCells,
                MetricsWriter,
            ModelCells,
                PrefixCache,
            Region,
                SlidingWindow,
            block_hashes,
            region_bytes,
            union,
        )

        KERNEL = "python"
