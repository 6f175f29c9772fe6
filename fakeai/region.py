"""The metrics-region kernel in use, compiled or its pure-Python twin: one process's
shared-memory cells and journal, the writer that records into them, and the replay of a
journal into windows.

``fakeai._region`` (compiled) unless the twin ``fakeai._region_py`` is selected; one
decision for every kernel (``fakeai._extensions``). ``KERNEL`` names the one in use. The
layout both follow is ``fakeai._layout``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fakeai._extensions import KERNEL, NO_EXTENSIONS
from fakeai._layout import RequestFacts, region_bytes

__all__ = (
    "KERNEL",
    "NO_EXTENSIONS",
    "EndpointCells",
    "EngineCells",
    "MetricsWriter",
    "ModelCells",
    "Region",
    "RequestFacts",
    "region_bytes",
)

if TYPE_CHECKING or KERNEL == "python":
    from fakeai._region_py import EndpointCells, EngineCells, MetricsWriter, ModelCells, Region
else:
    from fakeai._region import EndpointCells, EngineCells, MetricsWriter, ModelCells, Region
