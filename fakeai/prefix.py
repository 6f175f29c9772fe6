"""The prefix-cache kernel in use, compiled or its pure-Python twin: chained block hashes,
one simulated worker's cache of prefix blocks, and the least busy of several (the
simulation's kernel).

``fakeai._prefix`` (compiled) unless the twin ``fakeai._prefix_py`` is selected; one
decision for every kernel (``fakeai._extensions``). ``KERNEL`` names the one in use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fakeai._extensions import KERNEL, NO_EXTENSIONS

__all__ = ("KERNEL", "NO_EXTENSIONS", "PrefixCache", "block_hashes", "least_busy")

if TYPE_CHECKING or KERNEL == "python":
    from fakeai._prefix_py import PrefixCache, block_hashes, least_busy
else:
    from fakeai._prefix import PrefixCache, block_hashes, least_busy
