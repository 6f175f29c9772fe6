"""Counting a prompt's tokens: fakeai's O(1) approximation, or a real encoding.

``approx`` counts ``ceil(characters / 4)`` (``tokens.py``) and the KV cache takes characters
``4i .. 4i+3`` as token ``i``. ``o200k_base`` (gpt-oss, gpt-4o) and ``cl100k_base`` (gpt-4)
count exactly with the encoding's real vocabulary, from the ``bpe-openai`` package (the
optional extra ``fakeai[tokenizers]``; its vocabularies ship inside it, nothing is downloaded),
and the KV cache hashes blocks of the real token ids.

``ids``, ``decode`` and ``token_texts`` serve vLLM's ``/tokenize`` and ``/detokenize``: the real
encoding's ids, or ``approx``'s ids of its four-character pieces (``approx_ids``).

An exact count costs time in proportion to the text (about 5-10 MB of text a second), so it is
bounded by the request's prompt-token limit: a text that may hold more tokens than the limit
(more than a quarter of the limit in characters: a token is at least one UTF-8 byte, a
character at most four) is first counted only up to the limit, which stops once the limit is
passed, and is encoded only if it fits.
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import TYPE_CHECKING, Any

from fakeai.simulation.approx_ids import approx_decode, approx_ids, approx_unknown
from fakeai.simulation.tokens import CHARS_PER_TOKEN, count_tokens

if TYPE_CHECKING:
    from fakeai.simulation.kvcache import Prompt

__all__ = ("EXTRA", "TOKENIZERS", "PromptTokenizer", "TokenizerMissing", "missing_extra")

TOKENIZERS = ("approx", "o200k_base", "cl100k_base")
VOCABULARY_SIZES = {"o200k_base": 199_998, "cl100k_base": 100_256}
"""Ordinary tokens of each encoding: a larger id (a special token, or none) is never decoded
(``bpe-openai`` panics on ids past its vocabulary)."""
_CHARACTER_TOKENS = 4
"""The most tokens one character spans (a UTF-8 character is at most four bytes)."""
_COMBINATION_BUDGET = 4096
"""Failed attempts to join tokens into a character one decoding may make."""
REPLACEMENT = "\ufffd"
"""The text of a token that is part of a character (as tiktoken decodes it, errors="replace")."""
EXTRA = "fakeai[tokenizers]"
"""The optional extra that installs the real encodings."""


class TokenizerMissing(RuntimeError):
    """A real encoding was asked for but the extra providing it is not installed."""


def missing_extra(name: str) -> str | None:
    """Why tokenizer ``name`` cannot be used here (one line naming the extra), or ``None``."""
    if name == "approx" or importlib.util.find_spec("bpe_openai") is not None:
        return None
    return f"--tokenizer {name} needs the optional extra {EXTRA}: pip install '{EXTRA}'"


def _encoder(name: str) -> Any:
    """The ``bpe-openai`` encoder of encoding ``name`` (its Rust tokenizer: ``encode``,
    ``count_till_limit``; the package's tiktoken-like wrapper refuses texts of a million
    characters or more, which a prompt may well be)."""
    try:
        with warnings.catch_warnings():  # it loads its vocabularies with a deprecated importlib call
            warnings.simplefilter("ignore", DeprecationWarning)
            from bpe_openai import _bindings
    except ImportError:
        raise TokenizerMissing(missing_extra(name) or f"--tokenizer {name}: bpe-openai does not import") from None
    return _bindings.tokenizer_for_encoding(name)


def _without_lone_surrogates(text: str) -> str:
    """``text`` with unpaired surrogates (which JSON can carry) as U+FFFD, as tiktoken does."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class PromptTokenizer:
    """How prompt texts are counted, by the ``tokenizer`` setting."""

    __slots__ = ("_encoder", "_vocabulary", "exact", "name")

    def __init__(self, name: str = "approx") -> None:
        if name not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {name!r}; known: {', '.join(TOKENIZERS)}")
        self.name = name
        self.exact = name != "approx"
        """Counts with a real encoding (and the KV cache hashes real token ids)."""
        self._encoder = _encoder(name) if self.exact else None
        self._vocabulary = VOCABULARY_SIZES.get(name, 0)

    def tokens(self, text: str, limit: int) -> tuple[int | None, Prompt]:
        """``(tokens, prompt to route)``: the text's token count (``None`` when it is counted
        exactly and holds more than ``limit`` tokens) and what the KV cache hashes: the text
        itself (``approx``) or its token ids."""
        encoder = self._encoder
        if encoder is None:
            return count_tokens(text), text
        try:
            if len(text) * 4 > limit and encoder.count_till_limit(text, limit) is None:
                return None, text
            ids = encoder.encode(text)
        except UnicodeEncodeError:
            return self.tokens(_without_lone_surrogates(text), limit)
        return len(ids), ids

    def token_texts(self, prompt: str | list[int]) -> list[str]:
        """The text of each token of ``prompt`` (a text or token ids), as many as it counts:
        ``approx`` cuts a text every four characters and cannot read token ids (each is
        ``token_id:N``, vLLM's spelling); a real encoding decodes each token (a token that is
        part of a character is U+FFFD; an id outside the vocabulary is ``token_id:N``)."""
        encoder = self._encoder
        if encoder is None:
            if isinstance(prompt, str):
                return [prompt[i : i + CHARS_PER_TOKEN] for i in range(0, len(prompt), CHARS_PER_TOKEN)]
            return [f"token_id:{token}" for token in prompt]
        if isinstance(prompt, str):
            try:
                prompt = encoder.encode(prompt)
            except UnicodeEncodeError:
                prompt = encoder.encode(_without_lone_surrogates(prompt))
        vocabulary = self._vocabulary
        texts = []
        for token in prompt:
            if token >= vocabulary:
                texts.append(f"token_id:{token}")
                continue
            try:
                texts.append(encoder.decode([token]))
            except ValueError:
                texts.append(REPLACEMENT)
        return texts

    def ids(self, text: str, prompt: Prompt) -> list[int]:
        """The token ids of ``text``, whose ``prompt`` ``tokens`` returned: a real encoding's ids,
        or ``approx``'s ids of its pieces (``approx_ids``)."""
        return approx_ids(text) if self._encoder is None else prompt  # type: ignore[return-value]

    def unknown(self, ids: list[int]) -> int | None:
        """The position of the first of ``ids`` (none negative) that ``decode`` cannot read
        (``None``: none): past the vocabulary, or not an ``approx`` id of an ASCII piece."""
        if self._encoder is None:
            return approx_unknown(ids)
        vocabulary = self._vocabulary
        if not ids or max(ids) < vocabulary:
            return None
        return next(position for position, token in enumerate(ids) if token >= vocabulary)

    def decode(self, ids: list[int]) -> str:
        """The text of ``ids`` (``unknown`` found none). A token that holds part of a character
        that the tokens around it do not complete is U+FFFD, all of it (tiktoken keeps the rest
        of such a token's bytes: fakeai's encodings give it no token's bytes, only text).

        Ids that are not UTF-8 as a whole are most often cut from a longer text in the middle of
        a character: the first character boundary within the first few tokens and the last one
        within the last few are found, the middle is decoded whole, and only the ends are read
        token by token. Anything else is read token by token, with a bounded number of attempts
        to join tokens into characters: no list costs more than one decoding call per distinct id
        and a few thousand more.
        """
        encoder = self._encoder
        if encoder is None:
            return approx_decode(ids)
        try:
            return encoder.decode(ids)
        except ValueError:  # not UTF-8 as a whole
            pass
        count = len(ids)
        head = self._boundary(ids, range(min(_CHARACTER_TOKENS, count)), 1)
        tail = self._boundary(ids, range(count, max(count - _CHARACTER_TOKENS, 0), -1), -1)
        if head is not None and tail is not None and head < tail:
            try:
                middle = encoder.decode(ids[head:tail])
            except ValueError:  # a broken character inside too
                pass
            else:
                return self._pieces(ids[:head]) + middle + self._pieces(ids[tail:])
        return self._pieces(ids)

    def _decodes(self, ids: list[int]) -> bool:
        try:
            self._encoder.decode(ids)  # type: ignore[union-attr]
        except ValueError:
            return False
        return True

    def _boundary(self, ids: list[int], places: range, direction: int) -> int | None:
        """The first of ``places`` where a character begins (``direction`` 1) or ends (-1):
        where one to ``_CHARACTER_TOKENS`` tokens after it (before it) decode."""
        for place in places:
            for width in range(1, _CHARACTER_TOKENS + 1):
                window = ids[place : place + width] if direction > 0 else ids[max(place - width, 0) : place]
                if len(window) == width and self._decodes(window):
                    return place
        return None

    def _pieces(self, ids: list[int]) -> str:
        """The text of ``ids`` read token by token, a token that is part of a character joined
        with the ones after it (a character spans at most ``_CHARACTER_TOKENS``), or U+FFFD;
        past ``_COMBINATION_BUDGET`` failed joins, U+FFFD at once."""
        encoder = self._encoder
        alone: dict[int, str | None] = {}
        budget = _COMBINATION_BUDGET
        texts = []
        position = 0
        count = len(ids)
        while position < count:
            token = ids[position]
            position += 1
            if token in alone:
                text = alone[token]
            else:
                try:
                    text = alone[token] = encoder.decode([token])  # type: ignore[union-attr]
                except ValueError:
                    text = alone[token] = None
            if text is None:
                text = REPLACEMENT
                end = position + 1
                while budget > 0 and end <= min(position - 1 + _CHARACTER_TOKENS, count):
                    try:
                        text = encoder.decode(ids[position - 1 : end])  # type: ignore[union-attr]
                    except ValueError:
                        budget -= 1
                        end += 1
                        continue
                    position = end
                    break
            texts.append(text)
        return "".join(texts)
