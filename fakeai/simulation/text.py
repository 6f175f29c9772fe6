"""Generated answers: plausible prose, cut into tokens, chosen by a seeded random source.

The prose below is cut once into 4-character tokens (the tokenizer's unit, see
``tokens.py``); an answer of ``n`` tokens is ``n`` consecutive tokens starting at a random
token of the text, wrapping around. Each token is also kept JSON-encoded, so a streamed
chunk is assembled from bytes without encoding anything per token.
"""

from __future__ import annotations

import random
import re

import msgspec

from fakeai.simulation.tokens import CHARS_PER_TOKEN

__all__ = ("PROSE", "TextSource")

PROSE = (
    "The lighthouse keeper climbed the spiral stairs an hour before dusk, as he had done every "
    "evening for eleven years. From the gallery he could see the whole bay: the fishing boats "
    "returning with their lamps already lit, the gulls settling on the breakwater, and the long "
    "grey line of the coast running north toward the cliffs. He trimmed the wick, polished the "
    "great lens until it caught the last of the daylight, and wrote the weather in his log. "
    "Wind from the south west, moderate. Sea calm. Visibility good. "
    "In the valley below, the orchard was heavy with apples. The farmer's daughter walked between "
    "the rows with a basket on her arm, testing each branch to see which trees were ready. Her "
    "grandfather had planted them after the flood, choosing varieties that kept through the winter "
    "and others that were best eaten straight from the tree. Every autumn the village gathered to "
    "press the fruit, and the cellar filled with the sharp sweet smell of cider. "
    "A good answer begins with a clear question. Before writing any code, the engineer sketched "
    "the problem on paper: what goes in, what comes out, and what must never happen in between. "
    "She listed the cases that worried her most, an empty input, a value at the very edge of the "
    "range, a clock that runs backwards, and wrote a small test for each. Only then did she open "
    "the editor. The tests failed, as they should, and one by one she made them pass. "
    "The river rises in the hills and runs for two hundred miles before it reaches the sea. Along "
    "the way it turns mills, fills reservoirs and carries barges loaded with timber and grain. In "
    "spring the snowmelt makes it fast and brown; by late summer it is slow enough that children "
    "wade across the shallows near the old stone bridge, looking for crayfish under the rocks. "
    "Astronomers measure the distance to nearby stars by watching how they appear to shift against "
    "the background as the earth moves around the sun. The closer the star, the larger the shift. "
    "With careful instruments and patience, the method reaches hundreds of light years, and it "
    "anchors every larger measurement of the universe that comes after it. "
)


def _aligned(prose: str) -> tuple[str, list[int]]:
    """The prose with every sentence padded to whole tokens, and the tokens that start one."""
    text = []
    starts = []
    length = 0
    for sentence in re.findall(r"[^.!?]+[.!?]+\s*", prose):
        sentence = sentence.strip() + " "
        sentence += " " * (-len(sentence) % CHARS_PER_TOKEN)
        starts.append(length // CHARS_PER_TOKEN)
        text.append(sentence)
        length += len(sentence)
    return "".join(text), starts


class TextSource:
    """Tokens of ``PROSE``, as text and as JSON string literals.

    Answers begin at the start of a sentence: sentences are padded with spaces to a whole
    number of tokens, so each one starts on a token boundary.
    """

    __slots__ = ("_doubled", "_starts", "_tokens", "_tokens_json", "size")

    def __init__(self, prose: str = PROSE) -> None:
        prose, self._starts = _aligned(prose)
        tokens = [prose[i : i + CHARS_PER_TOKEN] for i in range(0, len(prose), CHARS_PER_TOKEN)]
        self.size = len(tokens)
        self._tokens = tokens + tokens  # doubled, so any window of up to size tokens is one slice
        self._tokens_json = [msgspec.json.encode(token) for token in self._tokens]
        self._doubled = prose + prose

    def start(self, rng: random.Random) -> int:
        """A random first token: the start of a sentence."""
        return self._starts[rng.randrange(len(self._starts))]

    def text(self, start: int, count: int) -> str:
        """``count`` tokens from ``start`` as one string."""
        full, rest = divmod(count, self.size)
        begin = start * CHARS_PER_TOKEN
        tail = self._doubled[begin : begin + rest * CHARS_PER_TOKEN]
        if not full:
            return tail
        return self._doubled[begin : begin + self.size * CHARS_PER_TOKEN] * full + tail

    def token(self, start: int, index: int) -> str:
        return self._tokens[(start + index) % self.size]

    def token_json(self, start: int, index: int) -> bytes:
        """Token ``index`` of the answer starting at ``start``, as a JSON string literal."""
        return self._tokens_json[(start + index) % self.size]
