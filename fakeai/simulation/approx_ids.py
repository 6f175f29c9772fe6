"""Token ids for fakeai's approximation (``--tokenizer approx``), so that ``/tokenize`` and
``/detokenize`` round trip under it too.

``approx`` has no vocabulary: token ``i`` of a text is its characters ``4i .. 4i+3``
(``tokens.py``). An id names such a piece. A piece of ASCII characters is its characters, seven
bits each, and its length: ids below ``OPAQUE``, each of which decodes to exactly one piece, so
any list of them (sliced, joined) decodes to a text of as many pieces, which counts as that
many tokens again when its pieces are whole. A piece with any other character is a hash of it,
``OPAQUE`` and above: it names the piece, but cannot be decoded.
"""

from __future__ import annotations

import struct
import zlib

from fakeai.simulation.tokens import CHARS_PER_TOKEN

__all__ = ("OPAQUE", "approx_decode", "approx_ids")

OPAQUE = 1 << 30
"""The first id of a piece that is not all ASCII (ids stay below 2**31, as a token id does)."""
_FULL = (CHARS_PER_TOKEN - 1) << 28
"""The length bits of a whole piece."""


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


def approx_decode(ids: list[int]) -> str | int:
    """The text of ``ids``, or the position of the first that cannot be decoded (a non-ASCII
    piece's hash, or not an id at all)."""
    pieces = []
    for position, token in enumerate(ids):
        if not 0 <= token < OPAQUE:
            return position
        length = (token >> 28) + 1
        pieces.append("".join(chr(token >> (7 * shift) & 0x7F) for shift in range(length)))
    return "".join(pieces)
