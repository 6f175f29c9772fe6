"""Generated answers: plausible prose made of real tokens, chosen by a seeded random source.

``PROSE`` is written in words and punctuation that are each one token to both OpenAI
encodings clients tokenize with, o200k_base (gpt-oss, gpt-4o) and cl100k_base (gpt-4,
gpt-3.5): a word with its leading space (``" keeper"``), and ``.`` ``,`` ``:`` ``;`` each
directly after a word and before the next word's space. Every piece is a pre-token of its own
to both encodings' pre-tokenizers (a run of letters with at most one leading space or
punctuation mark ends where the letters end; a punctuation mark ends at the space after it),
so no two pieces ever merge and a text of ``n`` pieces is ``n`` tokens to either tokenizer.
The first piece of an answer drops its leading space (``"The"``, also one token to both).
``tests/test_real_tokens.py`` checks all of it with the real tokenizers, over every pair of
pieces and over generated answers.

An answer of ``n`` tokens is ``n`` consecutive pieces starting at the start of a random
sentence, wrapping around the prose. Each piece is also kept JSON-encoded, so a streamed
chunk is assembled from bytes without encoding anything per token.
"""

from __future__ import annotations

import random
import re
from bisect import bisect_right

import msgspec

__all__ = ("PROSE", "TextSource")

PROSE = (
    "The keeper of the light climbed the spiral stairs an hour before dusk, as he had done every "
    "evening for eleven years. From the gallery he could see the whole bay: the fishing boats "
    "returning with their lamps already lit, the birds settling on the harbour wall, and the long "
    "grey line of the coast running north toward the cliffs. He trimmed the lamp, polished the "
    "great lens until it caught the last of the daylight, and wrote the weather in his log. "
    "Wind from the south west, moderate. Sea calm. Visibility good. "
    "In the valley below, the trees were heavy with apples. The daughter of the farmer walked between "
    "the rows with a basket on her arm, testing each branch to see which trees were ready. Her "
    "grandfather had planted them after the flood, choosing varieties that kept through the winter "
    "and others that were best eaten straight from the tree. Every autumn the village gathered to "
    "press the fruit, and the cellar filled with the sharp sweet smell of cider. "
    "A good answer begins with a clear question. Before writing any code, the engineer drew "
    "the problem on paper: what goes in, what comes out, and what must never happen in between. "
    "She listed the cases that worried her most, an empty input, a value at the very edge of the "
    "range, a clock that runs backwards, and wrote a small test for each. Only then did she open "
    "the editor. The tests failed, as they should, and one by one she made them pass. "
    "The river rises in the hills and runs for two hundred miles before it reaches the sea. Along "
    "the way it turns mills, fills lakes and carries boats loaded with timber and grain. In "
    "spring the melting snow makes it fast and brown; by late summer it is slow enough that children "
    "walk across the shallow water near the old stone bridge, looking for fish under the rocks. "
    "Scientists measure the distance to nearby stars by watching how they appear to shift against "
    "the background as the earth moves around the sun. The closer the star, the larger the shift. "
    "With careful instruments and patience, the method reaches hundreds of light years, and it "
    "anchors every larger measurement of the universe that comes after it."
)

_PIECE = re.compile(r" [A-Za-z]+|[.,:;]")


def _pieces(prose: str) -> list[str]:
    """The prose's tokens: each word with its leading space, each punctuation mark alone."""
    text = " " + prose.strip()
    pieces = _PIECE.findall(text)
    if "".join(pieces) != text:
        raise ValueError("the prose must be words of ASCII letters, single spaces and . , : ; after a word")
    return pieces


class TextSource:
    """The tokens of ``PROSE``, as text and as JSON string literals.

    Answers begin at the start of a sentence (the piece after a ``.``), whose first token is
    the sentence's first word without its leading space.
    """

    __slots__ = ("_doubled", "_ends", "_first", "_first_json", "_offsets", "_start_bits", "_start_count",
                 "_starts", "_tokens", "_tokens_json", "size")

    def __init__(self, prose: str = PROSE) -> None:
        pieces = _pieces(prose)
        self.size = len(pieces)
        self._starts = [index for index, piece in enumerate(pieces) if index == 0 or pieces[index - 1] == "."]
        self._start_count = len(self._starts)
        self._start_bits = self._start_count.bit_length()
        self._first = {start: pieces[start][1:] for start in self._starts}
        """An answer's first token: the sentence's first word, without its space."""
        self._first_json = {start: msgspec.json.encode(token) for start, token in self._first.items()}
        self._tokens = pieces + pieces  # doubled, so any window of up to size tokens is one slice
        self._tokens_json = [msgspec.json.encode(token) for token in self._tokens]
        self._doubled = "".join(self._tokens)
        offsets = [0]
        for piece in self._tokens:
            offsets.append(offsets[-1] + len(piece))
        self._offsets = offsets
        """Where token ``i`` of the doubled text starts (and, at ``i + 1``, ends)."""
        self._ends = offsets[1:]

    def start(self, rng: random.Random) -> int:
        """A random first token: the start of a sentence (``rng.randrange(len(starts))``'s draw,
        made as ``random.Random`` makes it, without its argument checks)."""
        count, bits = self._start_count, self._start_bits
        getrandbits = rng.getrandbits
        drawn = getrandbits(bits)
        while drawn >= count:
            drawn = getrandbits(bits)
        return self._starts[drawn]

    def text(self, start: int, count: int) -> str:
        """The answer of ``count`` tokens from ``start`` (a sentence start) as one string."""
        if count <= 0:
            return ""
        full, rest = divmod(count, self.size)
        offsets = self._offsets
        begin = offsets[start]
        doubled = self._doubled
        if not full:
            return doubled[begin + 1 : offsets[start + rest]]
        period = doubled[begin : offsets[start + self.size]]
        return (period * full)[1:] + doubled[begin : offsets[start + rest]]

    def whole_tokens(self, start: int, chars: int) -> int:
        """How many whole tokens the first ``chars`` characters of an answer from ``start``
        hold (``chars`` less than the prose's length)."""
        return bisect_right(self._ends, self._offsets[start] + 1 + chars) - start

    def token(self, start: int, index: int) -> str:
        """Token ``index`` of the answer starting at ``start``."""
        if index == 0:
            return self._first[start]
        return self._tokens[(start + index) % self.size]

    def token_json(self, start: int, index: int) -> bytes:
        """Token ``index`` of the answer starting at ``start``, as a JSON string literal."""
        if index == 0:
            return self._first_json[start]
        return self._tokens_json[(start + index) % self.size]
