"""Answers are made of real tokens: what a client counts with o200k_base or cl100k_base is what
fakeai sends, counts in ``usage`` and records in its metrics.

Checked with the real tokenizers (``bpe-openai``, the same vocabularies and pre-tokenizer
rules as tiktoken), the way a benchmarking client counts: encode the received text.
"""

from __future__ import annotations

import itertools
import json
import random

import pytest
from litestar.testing import TestClient

from fakeai.app import create_app
from fakeai.config import Settings
from fakeai.simulation.reasoning import reasoning_text
from fakeai.simulation.text import PROSE, TextSource
from tests.real_tokenizers import ENCODINGS

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
MODEL = "openai/gpt-oss-120b"
PUNCTUATION = {".", ",", ":", ";"}

SOURCE = TextSource()
PIECES = sorted({SOURCE.token(0, index) for index in range(1, SOURCE.size + 1)})
"""Every token the prose holds (as it occurs inside an answer)."""
FIRSTS = sorted({SOURCE.token(start, 0) for start in SOURCE._starts})
"""Every first token of an answer: a sentence's first word, without its space."""


def _single(encoding, text: str) -> int:
    ids = encoding.encode_ordinary(text)
    assert len(ids) == 1, f"{text!r} is {len(ids)} tokens to {encoding.name}"
    return ids[0]


def _may_follow(first: str, second: str) -> bool:
    """What the prose's grammar allows: never two punctuation marks in a row."""
    return not (first in PUNCTUATION and second in PUNCTUATION)


def test_the_vocabulary_is_words_with_their_space_and_single_punctuation_marks() -> None:
    assert len(PIECES) > 200
    for piece in PIECES:
        assert piece in PUNCTUATION or (piece[0] == " " and piece[1:].isalpha() and piece[1:].isascii()), piece
    assert all(first.isalpha() and first[0].isupper() for first in FIRSTS)
    tokens = [SOURCE.token(0, index) for index in range(2 * SOURCE.size)]
    assert all(_may_follow(a, b) for a, b in itertools.pairwise(tokens)), "two punctuation marks in a row"
    assert tokens[SOURCE.size - 1] == "." and tokens[SOURCE.size] == " The", "the prose wraps around after a full stop"


@pytest.mark.parametrize("encoding", ENCODINGS, ids=lambda encoding: encoding.name)
def test_no_two_pieces_merge_in_any_order(encoding) -> None:
    """Exhaustive over every ordered pair the prose's grammar allows, and every first token
    followed by any piece: the pair is the two pieces' tokens, nothing merges across them."""
    ids = {piece: _single(encoding, piece) for piece in PIECES + FIRSTS}
    pairs = 0
    for first in PIECES + FIRSTS:
        for second in PIECES:
            if _may_follow(first, second):
                assert encoding.encode_ordinary(first + second) == [ids[first], ids[second]], (first, second)
                pairs += 1
    assert pairs > 50_000


@pytest.mark.parametrize("encoding", ENCODINGS, ids=lambda encoding: encoding.name)
def test_every_answer_is_its_length_in_tokens(encoding) -> None:
    """From every sentence start, each length up to two laps of the prose, token for token;
    then long answers up to the context length."""
    for start in SOURCE._starts:
        longest = SOURCE.text(start, 2 * SOURCE.size + 3)
        expected = [_single(encoding, SOURCE.token(start, index)) for index in range(2 * SOURCE.size + 3)]
        assert encoding.encode_ordinary(longest) == expected
        for count in range(1, 2 * SOURCE.size + 3, 7 if start else 1):
            text = SOURCE.text(start, count)
            assert text == "".join(SOURCE.token(start, index) for index in range(count))
            assert encoding.encode_ordinary(text) == expected[:count]
    rng = random.Random(0)
    for count in [rng.randrange(1, 131_072) for _ in range(6)] + [131_072]:
        start = SOURCE.start(rng)
        assert len(encoding.encode_ordinary(SOURCE.text(start, count))) == count


@pytest.mark.parametrize("encoding", ENCODINGS, ids=lambda encoding: encoding.name)
def test_a_reasoning_part_is_its_length_in_tokens(encoding) -> None:
    """The reasoning prose follows the answers' rules: each piece one token, none merging, so a
    reasoning part of n tokens (``usage.completion_tokens_details.reasoning_tokens``) is n."""
    reasoning = reasoning_text()
    for start in reasoning._starts:
        count = 2 * reasoning.size + 3
        expected = [_single(encoding, reasoning.token(start, index)) for index in range(count)]
        assert encoding.encode_ordinary(reasoning.text(start, count)) == expected
        for length in range(1, count, 5):
            assert len(encoding.encode_ordinary(reasoning.text(start, length))) == length


def _content(answer: dict, path: str) -> list[str]:
    return [choice["message"]["content"] if path == CHAT else choice["text"] for choice in answer["choices"]]


def _streamed(lines: list[str], path: str) -> tuple[dict[int, list[str]], dict | None]:
    """Each choice's content chunks and the usage chunk of a streamed answer."""
    chunks: dict[int, list[str]] = {}
    usage = None
    for line in lines:
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[len("data: "):])
        usage = event.get("usage") or usage
        for choice in event["choices"]:
            piece = choice["delta"].get("content") if path == CHAT else choice["text"]
            if piece:
                chunks.setdefault(choice["index"], []).append(piece)
    return chunks, usage


def _request(rng: random.Random, path: str, stream: bool) -> dict:
    body: dict = {"model": MODEL, "n": rng.choice([1, 1, 2, 3]), "seed": rng.randrange(1 << 30)}
    if path == CHAT:
        body["messages"] = [{"role": "user", "content": "Tell me a story."}]
    else:
        body["prompt"] = "Tell me a story."
    kind = rng.randrange(3)
    if kind == 0:  # what benchmarking tools send: an exact length
        body.update(max_tokens=rng.choice([1, 2, 3, rng.randrange(1, 2000)]), ignore_eos=True)
    elif kind == 1:  # natural lengths, perhaps capped
        if rng.random() < 0.5:
            body["max_tokens"] = rng.randrange(1, 300)
    else:  # stop sequences: words, punctuation, and strings that start mid-word
        words = PROSE.split()
        stops = []
        for _ in range(rng.randrange(1, 5)):
            word = rng.choice(words)
            stops.append(rng.choice([" " + word, word, word[1:3] or word, ".", ",", word + " " + rng.choice(words)]))
        body.update(stop=stops, max_tokens=rng.randrange(1, 600))
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


def test_what_a_client_counts_is_usage_and_fakeais_counters() -> None:
    """Many answers, streamed and not, with n > 1, stop sequences and random lengths: each
    choice's text is as many tokens to both encodings as fakeai says, each streamed content
    chunk is one token, and fakeai's completion-token counters hold the same sum."""
    app = create_app(Settings(zero_latency=True))
    rng = random.Random(14)
    counted = {CHAT: 0, COMPLETIONS: 0}
    stopped = 0
    with TestClient(app) as client:
        for round_ in range(240):
            path = CHAT if round_ % 2 else COMPLETIONS
            stream = rng.random() < 0.5
            body = _request(rng, path, stream)
            if stream:
                with client.stream("POST", path, json=body) as response:
                    assert response.status_code == 200
                    chunks, usage = _streamed(list(response.iter_lines()), path)
                texts = ["".join(chunks.get(index, [])) for index in range(body["n"])]
                for pieces in chunks.values():
                    for encoding in ENCODINGS:
                        assert all(len(encoding.encode_ordinary(piece)) == 1 for piece in pieces), pieces
            else:
                response = client.post(path, json=body)
                assert response.status_code == 200
                answer = response.json()
                texts, usage = _content(answer, path), answer["usage"]
                if body.get("stop"):
                    stopped += sum(choice["finish_reason"] == "stop" for choice in answer["choices"])
                    assert not any(stop in text for text in texts for stop in body["stop"])
            assert usage is not None
            for encoding in ENCODINGS:
                assert sum(len(encoding.encode_ordinary(text)) for text in texts) == usage["completion_tokens"]
            if body.get("ignore_eos"):
                assert all(len(ENCODINGS[0].encode_ordinary(text)) == body["max_tokens"] for text in texts)
            counted[path] += usage["completion_tokens"]
        snapshot = app.state.metrics.snapshot()
    assert stopped > 10, "the stop sequences were exercised"
    for path, tokens in counted.items():
        assert snapshot.endpoints[path].completion_tokens_total == tokens


def test_a_stop_sequence_ends_the_answer_before_it_in_whole_tokens() -> None:
    app = create_app(Settings(zero_latency=True))
    with TestClient(app) as client:
        request = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "seed": 3, "max_tokens": 40}
        whole = client.post(CHAT, json=request).json()["choices"][0]["message"]["content"]
        words = whole.split(" ")
        at = next(i for i in range(3, len(words))  # a long word whose tail does not occur before it
                  if len(words[i]) > 4 and words[i][1:] not in " ".join(words[: i + 1])[:-1])
        before = " ".join(words[:at])
        for stop in (" " + words[at], words[at][1:]):  # at a word: cut exactly there, as vLLM does; inside one:
            answer = client.post(CHAT, json={**request, "stop": stop}).json()
            text = answer["choices"][0]["message"]["content"]
            assert answer["choices"][0]["finish_reason"] == "stop"
            assert text == before  # ... its beginning goes too
            assert stop not in text
            for encoding in ENCODINGS:
                assert len(encoding.encode_ordinary(text)) == answer["usage"]["completion_tokens"]
