"""Which kernels are in use: the compiled ones, or all three pure-Python twins.

One decision for ``fakeai.window``, ``fakeai.prefix`` and ``fakeai.region``: the compiled
modules are used unless ``FAKEAI_NO_EXTENSIONS`` is set to a non-empty value other than
``0``, or one of them is not built (then none is: the compiled region kernel pushes into
compiled windows, so the two sides never mix). A build that lacks a name the selecting
module imports from it (one left from an older checkout) counts as not built.
"""

from __future__ import annotations

import importlib
import os

__all__ = ("COMPILED_NAMES", "KERNEL", "NO_EXTENSIONS")

NO_EXTENSIONS = os.environ.get("FAKEAI_NO_EXTENSIONS", "") not in ("", "0")
"""True when the pure-Python twins are forced."""


COMPILED_NAMES = {
    "fakeai._window": ("DEFAULT_MAX_SAMPLES", "SlidingWindow", "summarize", "union"),
    "fakeai._prefix": ("PrefixCache", "block_hashes", "least_busy"),
    "fakeai._region": ("EndpointCells", "EngineCells", "MetricsWriter", "ModelCells", "Region"),
}
"""Each compiled kernel, and the names ``fakeai.window``, ``fakeai.prefix`` and
``fakeai.region`` import from it (and from its twin; ``tests/test_extensions.py`` checks that
the three lists agree)."""


def _compiled_built() -> bool:
    """Whether every compiled kernel imports and has every name imported from it."""
    for module_name, names in COMPILED_NAMES.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # pragma: no cover - depends on whether the extensions were built
            return False
        if not all(hasattr(module, name) for name in names):  # built from an older source
            return False
    return True


KERNEL = "python" if NO_EXTENSIONS or not _compiled_built() else "compiled"
"""The kernels in use: ``"compiled"`` or ``"python"``."""
