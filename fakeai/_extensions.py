"""Which kernels are in use: the compiled ones, or all three pure-Python twins.

One decision for ``fakeai.window``, ``fakeai.prefix`` and ``fakeai.region``: the compiled
modules are used unless ``FAKEAI_NO_EXTENSIONS`` is set to a non-empty value other than
``0``, or one of them is not built (then none is: the compiled region kernel pushes into
compiled windows, so the two sides never mix).
"""

from __future__ import annotations

import os

__all__ = ("KERNEL", "NO_EXTENSIONS")

NO_EXTENSIONS = os.environ.get("FAKEAI_NO_EXTENSIONS", "") not in ("", "0")
"""True when the pure-Python twins are forced."""


def _compiled_built() -> bool:
    try:
        import fakeai._prefix  # noqa: F401
        import fakeai._region  # noqa: F401
        import fakeai._window  # noqa: F401
    except ImportError:  # pragma: no cover - depends on whether the extensions were built
        return False
    return True


KERNEL = "python" if NO_EXTENSIONS or not _compiled_built() else "compiled"
"""The kernels in use: ``"compiled"`` or ``"python"``."""
