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


def embed(key: bytes, dimensions: int) -> list[float]:
    raw = hashlib.shake_256(key).digest(dimensions)
    centred = [byte - 127.5 for byte in raw]
    norm = math.sqrt(math.fsum(value * value for value in centred))
    return [value / norm for value in centred]


def pack_float32(vector: list[float]) -> bytes:
    """Little-endian float32, as OpenAI's ``encoding_format="base64"`` carries."""
    packed = array("f", vector)
    if packed.itemsize != 4:  # pragma: no cover - every supported platform has 4-byte floats
        raise RuntimeError("float32 is not 4 bytes here")
    return packed.tobytes() if array("H", [1]).tobytes() == b"\x01\x00" else _swapped(packed)


def _swapped(packed: array) -> bytes:  # pragma: no cover - big-endian hosts only
    packed.byteswap()
    return packed.tobytes()
