"""Rendering answers that carry more than prose: reasoning, tool calls, JSON content, log
probabilities, an echoed prompt, usage on every chunk.

A request that asks for none of these is rendered by the plain path (``chat.py``,
``completions.py``, ``streaming.py``'s pre-encoded templates); one that does gets a
``ChatRender`` or ``CompletionRender`` here, which makes each chunk's choice object for
``streaming.sse_body`` (``event``, ``finish``) and the whole answer's parts.

Chat chunks follow OpenAI's stream (and vLLM's for the reasoning part): a reasoning token is
``{"delta": {"reasoning": "..."}}`` (the ``reasoning_field`` setting names it), a content
token ``{"delta": {"content": "..."}}``, a tool call's first chunk
``{"delta": {"tool_calls": [{"index", "id", "type": "function", "function": {"name",
"arguments": ""}}]}}`` and each piece of its arguments ``{"delta": {"tool_calls": [{"index",
"function": {"arguments": "..."}}]}}``; the first chunk of a choice carries the role.

Log probabilities are drawn per choice, token after token, from the choice's seed: the same
request (``seed``) gets the same values whole or streamed. The sampled token is the most likely
one (first in ``top_logprobs``); the alternatives are other tokens of the prose, each less
likely than the one before.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import msgspec

from fakeai.api.responses import comma_parts
from fakeai.api.shaping import Output
from fakeai.simulation.reasoning import reasoning_text
from fakeai.simulation.text import TextSource

if TYPE_CHECKING:
    from fakeai.api.engine import Choice, Engine, Plan
    from fakeai.api.schemas import Usage

__all__ = ("ChatRender", "CompletionRender", "reasoning_tokens")

_encode = msgspec.json.encode
_SOURCE = TextSource()
VOCABULARY = sorted({_SOURCE.token(0, index) for index in range(1, _SOURCE.size + 1)})
"""The alternatives a top-logprobs list draws from: the prose's tokens."""
_ROLE = b'"role":"assistant",'
_PROSE = Output()
"""What a choice without ``output`` holds: prose only (a plain answer with log probabilities)."""


def reasoning_tokens(plan: Plan) -> int:
    """The plan's reasoning tokens (those within each choice's tokens)."""
    return sum(min(choice.output.reasoning, choice.tokens) for choice in plan.choices if choice.output is not None)


class _Logprobs:
    """One choice's log probabilities, drawn in token order."""

    __slots__ = ("rng", "top")

    def __init__(self, seed: int, top: int) -> None:
        self.rng = random.Random(seed)
        self.top = top

    def draw(self, token: str) -> tuple[float, list[tuple[str, float]]]:
        """``(logprob, top)``: the token's log probability and the ``top`` most likely tokens
        (the token first), each with its log probability."""
        rng = self.rng
        logprob = -round(rng.random() ** 3 * 3, 5)
        top = [(token, logprob)]
        if self.top > 1:
            current = logprob
            for alternative in rng.sample(VOCABULARY, self.top):
                if alternative != token and len(top) < self.top:
                    current = round(current - rng.uniform(0.05, 2.0), 5)
                    top.append((alternative, current))
        return logprob, top


def _chat_entry(token: str, logprob: float, top: list[tuple[str, float]], wanted: int) -> dict[str, Any]:
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode()),
        "top_logprobs": [{"token": t, "logprob": p, "bytes": list(t.encode())} for t, p in top[:wanted]],
    }


def _usage_tail(prompt_tokens: int, sent: int) -> bytes:
    return b',"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}\n\n' % (
        prompt_tokens, sent, prompt_tokens + sent)


_END = b"}\n\n"


class ChatRender:
    """A chat answer with reasoning, tool calls or JSON content (``Choice.output``), log
    probabilities or usage on every chunk, whole or streamed."""

    def __init__(self, engine: Engine, reasoning_field: str, logprobs: bool, top_logprobs: int,
                 continuous_usage: bool) -> None:
        self.text = engine.text
        self.reasoning = reasoning_text()
        self.names = {
            "reasoning": (b'"reasoning":',), "reasoning_content": (b'"reasoning_content":',),
            "both": (b'"reasoning":', b'"reasoning_content":'),
        }[reasoning_field]
        self.fields = [name.decode()[1:-2] for name in self.names]
        self.logprobs = logprobs
        self.top_logprobs = top_logprobs
        self.continuous_usage = continuous_usage
        self.prompt_tokens = 0
        self._sources: dict[int, _Logprobs] = {}

    def _source(self, number: int, choice: Choice) -> _Logprobs:
        source = self._sources.get(number)
        if source is None:  # seeded from the request's random source: its seed decides them
            seed = choice.output.seed if choice.output is not None else choice.start * 1_000_003 + number
            source = self._sources[number] = _Logprobs(seed, max(self.top_logprobs, 1))
        return source

    def _content_token(self, choice: Choice, position: int) -> str:
        """Content token ``position`` (after the reasoning part) of a choice without tool calls."""
        pieces = (choice.output or _PROSE).pieces
        return pieces[position] if pieces is not None else self.text.token(choice.start, position)

    def _entry(self, number: int, choice: Choice, token: str) -> dict[str, Any]:
        logprob, top = self._source(number, choice).draw(token)
        return _chat_entry(token, logprob, top, self.top_logprobs)

    # -- streamed ----------------------------------------------------------------------------

    def _tail(self, sent: int) -> bytes:
        return _usage_tail(self.prompt_tokens, sent) if self.continuous_usage else _END

    def event(self, choice: Choice, number: int, index: int, sent: int) -> bytes:
        """The rest of the chunk carrying token ``index`` of ``choice`` (after ``"choices":[``);
        ``sent``: the answer's tokens so far, this one included."""
        output = choice.output or _PROSE
        role = _ROLE if index == 0 else b""
        logprobs = b""
        if index < output.reasoning:
            token = self.reasoning.token_json(output.reasoning_start, index)
            delta = role + b",".join(name + token for name in self.names)
        else:
            position = index - output.reasoning
            calls = output.calls
            if calls:
                k = bisect.bisect_right([call.first for call in calls], position) - 1
                call = calls[k]
                if position == call.first:
                    if role:
                        role += b'"content":null,'
                    delta = role + b'"tool_calls":[{"index":%d,"id":%s,"type":"function","function":{"name":%s,' \
                        b'"arguments":""}}]' % (k, _encode(call.id), _encode(call.name))
                else:
                    piece = call.pieces[position - call.first - 1]
                    delta = role + b'"tool_calls":[{"index":%d,"function":{"arguments":%s}}]' % (k, _encode(piece))
            else:
                token = self._content_token(choice, position)
                delta = role + b'"content":' + _encode(token)
                if self.logprobs:
                    logprobs = b',"logprobs":{"content":[' + _encode(self._entry(number, choice, token)) + b"]}"
        return b'{"index":%d,"delta":{%s}%s}]' % (number, delta, logprobs) + self._tail(sent)

    def finish(self, choice: Choice, number: int, sent: int) -> bytes:
        return b'{"index":%d,"delta":{},"finish_reason":"%s"}]' % (number, choice.finish_reason.encode()) + \
            self._tail(sent)

    # -- whole -------------------------------------------------------------------------------

    def choice(self, choice: Choice, number: int) -> dict[str, Any]:
        """The choice object of a whole answer."""
        output = choice.output or _PROSE
        reasoning = min(output.reasoning, choice.tokens)
        rest = choice.tokens - reasoning
        message: dict[str, Any] = {"role": "assistant"}
        entries = None
        if output.calls:
            message["content"] = None
            message["tool_calls"] = [
                {"id": call.id, "type": "function",
                 "function": {"name": call.name, "arguments": "".join(call.pieces[: max(0, rest - call.first - 1)])}}
                for call in output.calls if call.first < rest
            ]
        else:
            if not rest:
                message["content"] = None if reasoning else ""
            elif output.pieces is None:
                message["content"] = self.text.text(choice.start, rest)
            else:
                message["content"] = "".join(output.pieces[:rest])
            if self.logprobs:
                entries = [self._entry(number, choice, self._content_token(choice, position))
                           for position in range(rest)]
        if reasoning:
            text = self.reasoning.text(output.reasoning_start, reasoning)
            for field in self.fields:
                message[field] = text
        result: dict[str, Any] = {"index": number, "message": message}
        if self.logprobs:
            result["logprobs"] = {"content": entries or []}
        result["finish_reason"] = choice.finish_reason
        return result

    def parts(self, plan: Plan, usage: Usage) -> Iterator[bytes]:
        return _answer_parts(b"chat.completion", plan, usage, self.choice)


class CompletionRender:
    """A completions answer with log probabilities, a streamed echo or usage on every chunk.

    ``echoes`` holds each prompt's echoed text and token texts (``None``: no echo) and
    ``logprobs`` the number of alternatives asked for (``None``: none). The first echoed token
    has no log probability (nothing precedes it), as OpenAI's legacy API and vLLM send it.
    """

    def __init__(self, engine: Engine, n: int, echoes: list[tuple[str, list[str]] | None], logprobs: int | None,
                 continuous_usage: bool) -> None:
        self.text = engine.text
        self.n = n
        self.echoes = echoes
        self.logprobs = logprobs
        self.continuous_usage = continuous_usage
        self.prompt_tokens = 0
        self._sources: dict[int, _Logprobs] = {}
        self._offsets: dict[int, int] = {}

    def _source(self, choice: Choice, number: int) -> _Logprobs:
        source = self._sources.get(number)
        if source is None:  # seeded by the choice's random start: the request's seed decides it
            source = self._sources[number] = _Logprobs(choice.start * 1_000_003 + number, max(self.logprobs or 0, 1))
        return source

    def _logprobs(self, choice: Choice, number: int, tokens: list[str], first_is_prompt: bool) -> dict[str, Any]:
        """The legacy ``logprobs`` object of ``tokens`` (continuing the choice's text offsets)."""
        source = self._source(choice, number)
        offset = self._offsets.get(number, 0)
        offsets, values, tops = [], [], []
        for position, token in enumerate(tokens):
            offsets.append(offset)
            offset += len(token)
            if first_is_prompt and position == 0:
                values.append(None)
                tops.append(None)
                continue
            logprob, top = source.draw(token)
            values.append(logprob)
            tops.append(dict(top))
        self._offsets[number] = offset
        return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}

    def _echo(self, number: int) -> tuple[str, list[str]] | None:
        return self.echoes[number // self.n]

    # -- streamed ----------------------------------------------------------------------------

    def _tail(self, sent: int) -> bytes:
        return _usage_tail(self.prompt_tokens, sent) if self.continuous_usage else _END

    def _chunk(self, choice: Choice, number: int, text: str, tokens: list[str], first_is_prompt: bool,
               reason: bytes, sent: int) -> bytes:
        logprobs = b""
        if self.logprobs is not None:
            logprobs = b',"logprobs":' + _encode(self._logprobs(choice, number, tokens, first_is_prompt))
        return b'{"index":%d,"text":%s%s,"finish_reason":%s}]' % (number, _encode(text), logprobs, reason) + \
            self._tail(sent)

    def event(self, choice: Choice, number: int, index: int, sent: int) -> bytes:
        token = self.text.token(choice.start, index)
        echo = self._echo(number) if index == 0 else None
        if echo is not None:  # the first chunk carries the echoed prompt before the first token
            return self._chunk(choice, number, echo[0] + token, echo[1] + [token], True, b"null", sent)
        return self._chunk(choice, number, token, [token], False, b"null", sent)

    def finish(self, choice: Choice, number: int, sent: int) -> bytes:
        echo = self._echo(number) if choice.tokens == 0 else None
        reason = b'"%s"' % choice.finish_reason.encode()
        if echo is not None:  # nothing generated: the finish chunk carries the echoed prompt
            return self._chunk(choice, number, echo[0], echo[1], True, reason, sent)
        return b'{"index":%d,"text":"","finish_reason":%s}]' % (number, reason) + self._tail(sent)

    # -- whole -------------------------------------------------------------------------------

    def choice(self, choice: Choice, number: int) -> dict[str, Any]:
        echo = self._echo(number)
        text = self.text.text(choice.start, choice.tokens)
        result: dict[str, Any] = {"index": number, "text": text if echo is None else echo[0] + text}
        if self.logprobs is not None:
            tokens = [self.text.token(choice.start, index) for index in range(choice.tokens)]
            result["logprobs"] = self._logprobs(choice, number, tokens if echo is None else echo[1] + tokens,
                                                echo is not None)
        result["finish_reason"] = choice.finish_reason
        return result

    def parts(self, plan: Plan, usage: Usage) -> Iterator[bytes]:
        return _answer_parts(b"text_completion", plan, usage, self.choice)


def _answer_parts(kind: bytes, plan: Plan, usage: Usage, choice: Any) -> Iterator[bytes]:
    """A whole answer of object ``kind``, its choices made by ``choice(choice, number)``, in parts."""
    head = b'{"id":%s,"object":"%s","created":%d,"model":%s,"choices":[' % (
        _encode(plan.id), kind, plan.created, _encode(plan.model))
    items = (_encode(choice(item, number)) for number, item in enumerate(plan.choices))
    return comma_parts(head, items, b'],"usage":' + _encode(usage) + b"}")
