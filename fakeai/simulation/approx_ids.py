"""Token ids for fakeai's approximation (``--tokenizer approx``), so that ``/tokenize`` and
``/detokenize`` round trip under it too.

``approx`` has no vocabulary: token ``i`` of a text is its characters ``4i .. 4i+3``
(``tokens.py``). An id names such a piece. A piece of ASCII characters is its characters, seven
bits each, and its length: ids below ``OPAQUE``, each of which decodes to exactly one piece, so
any list of them (sliced, joined) decodes to a text of as many pieces, which counts as that
many tokens again when its pieces are whole. A piece with any other character is a hash of it,
``OPAQUE`` and above: it names the piece, but cannot be decoded (nor can an id with bits beyond
its piece's characters: no text has it).
"""

from __future__ import annotations

import struct
import zlib

from fakeai.simulation.tokens import CHARS_PER_TOKEN

__all__ = ("OPAQUE", "approx_decode", "approx_ids", "approx_unknown")

OPAQUE = 1 << 30
"""The first id of a piece that is not all ASCII (ids stay below 2**31, as a token id does)."""
_FULL = (CHARS_PER_TOKEN - 1) << 28
"""The length bits of a whole piece."""
_CHARACTERS = (1 << 28) - 1
"""The bits that hold a piece's characters, seven each."""


def _piece_id(piece: str) -> int:
    if piece.isascii():
        value = (len(piece) - 1) << 28
        for shift, char in enumerate(piece):
            value |= ord(char) << (7 * shift)
        return value
    return OPAQUE | (zlib.crc32(piece.encode("utf-8", "surrogatepass")) & (OPAQUE - 1))


def approx_ids(text: str) -> list[int]:
    """The id of each of ``text``'s pieces (``ceil(len(text) / 4)`` of them)."""
    whole = len(text) // CHARS_PER_TOKEN
    if text.isascii():  # the common case, in C: each whole piece is a little-endian uint32 of 7-bit bytes
        values = struct.unpack_from(f"<{whole}I", text.encode())
        ids = [(v & 0x7F) | (v >> 1 & 0x3F80) | (v >> 2 & 0x1FC000) | (v >> 3 & 0xFE00000) | _FULL for v in values]
    else:
        ids = [_piece_id(text[i : i + CHARS_PER_TOKEN]) for i in range(0, whole * CHARS_PER_TOKEN, CHARS_PER_TOKEN)]
    if len(text) > whole * CHARS_PER_TOKEN:
        ids.append(_piece_id(text[whole * CHARS_PER_TOKEN :]))
    return ids


def approx_unknown(ids: list[int]) -> int | None:
    """The position of the first of ``ids`` that is not the id of an ASCII piece as
    ``approx_ids`` spells it (a hash, a bit beyond the piece's characters), or ``None``."""
    for position, token in enumerate(ids):
        if not 0 <= token < OPAQUE or (token & _CHARACTERS) >> (7 * ((token >> 28) + 1)):
            return position
    return None


def approx_decode(ids: list[int]) -> str:
    """The text of ``ids``, every one an ASCII piece's (``approx_unknown`` found none)."""
    return "".join(
        "".join(chr(token >> (7 * shift) & 0x7F) for shift in range((token >> 28) + 1)) for token in ids
    )
