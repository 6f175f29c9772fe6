"""Deterministic embeddings: the same text always gives the same unit vector.

The vector's components come from SHAKE-256 of the input (an extendable hash, so a shorter
``dimensions`` gives a prefix of the longer vector, renormalised, as OpenAI's shortened
embeddings behave), centred and scaled to unit length.
"""

from __future__ import annotations

import hashlib
import math
from array import array

__all__ = ("embed", "pack_float32")


_SQUARES = [(2 * byte - 255) ** 2 for byte in range(256)]
"""``(2 * (byte - 127.5)) ** 2``: four times a centred component's square, an integer."""


def embed(key: bytes, dimensions: int) -> list[float]:
    raw = hashlib.shake_256(key).digest(dimensions)
    # The sum of squares is an integer over 4 (exact in a float), so this is the correctly
    # rounded norm, as math.fsum over the centred components would give it.
    norm = math.sqrt(sum(map(_SQUARES.__getitem__, raw)) / 4)
    scaled = [(byte - 127.5) / norm for byte in range(256)]
    return list(map(scaled.__getitem__, raw))


def pack_float32(vector: list[float]) -> bytes:
    """Little-endian float32, as OpenAI's ``encoding_format="base64"`` carries."""
    packed = array("f", vector)
    if packed.itemsize != 4:  # pragma: no cover - every supported platform has 4-byte floats
        raise RuntimeError("float32 is not 4 bytes here")
    return packed.tobytes() if array("H", [1]).tobytes() == b"\x01\x00" else _swapped(packed)


def _swapped(packed: array) -> bytes:  # pragma: no cover - big-endian hosts only
    packed.byteswap()
    return packed.tobytes()
