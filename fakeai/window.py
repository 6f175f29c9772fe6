"""The sliding-window kernel in use, compiled or its pure-Python twin: windows, exact
quantiles and summaries of several windows together.

``fakeai._window`` (compiled) unless the twin ``fakeai._window_py`` is selected; one
decision for every kernel (``fakeai._extensions``: ``FAKEAI_NO_EXTENSIONS=1`` or a missing
build). ``KERNEL`` names the one in use (``"compiled"`` or ``"python"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fakeai._extensions import KERNEL, NO_EXTENSIONS

__all__ = ("DEFAULT_MAX_SAMPLES", "KERNEL", "NO_EXTENSIONS", "SlidingWindow", "summarize", "union")

if TYPE_CHECKING or KERNEL == "python":
    from fakeai._window_py import DEFAULT_MAX_SAMPLES, SlidingWindow, summarize, union
else:
    from fakeai._window import DEFAULT_MAX_SAMPLES, SlidingWindow, summarize, union
