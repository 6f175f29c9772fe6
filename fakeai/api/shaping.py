"""What a chat answer holds beyond prose: a reasoning part, tool calls, JSON content.

``Features`` (one per server, from the settings) reads a chat request's ``reasoning_effort``,
``tools``, ``tool_choice``, ``parallel_tool_calls`` and ``response_format`` into a
``ChatShaping``, refusing what it cannot honour with a 400; a request that sets none of them is
never read here (``needs_shaping``), so plain chat pays nothing for these features. The
engine asks the ``ChatShaping`` for each choice (``draw``): the choice's tokens are its
reasoning tokens, then either its content (prose, or a JSON instance of the response format's
schema) or its tool calls (one token for a call's name, then one per piece of its arguments,
``json_instances.json_pieces``). Every token is paced by the latency model and counted, as
any other token is. ``max_tokens`` counts them all: a cut answer ends with ``length``.
"""

from __future__ import annotations

import random
import string
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import msgspec

from fakeai.api.engine import Choice
from fakeai.api.errors import APIError
from fakeai.simulation.json_instances import CompiledSchema, SchemaError, compile_schema, json_pieces
from fakeai.simulation.reasoning import ReasoningLength, ReasoningModels, reasoning_text

if TYPE_CHECKING:
    from fakeai.api.engine import Engine
    from fakeai.api.schemas import ChatCompletionRequest
    from fakeai.config import Settings

__all__ = ("ANY_OBJECT", "NO_PARAMETERS", "ChatShaping", "Features", "Output", "PlannedCall", "needs_shaping")

SCHEMA_CACHE_SIZE = 256
"""Distinct compiled schemas kept (agents send the same tools with every request)."""
SCHEMA_CACHE_BYTES = 64 * 1024
"""Largest schema (its JSON text) kept in the cache: a larger one is compiled every time, so the
cache holds at most 16 MB of keys."""
INSTANCE_EXTRA_CHARS = 240
"""How much longer than its schema's smallest instance a generated instance may be."""
_ID_ALPHABET = string.ascii_letters + string.digits
NO_PARAMETERS = {"type": "object", "properties": {}, "additionalProperties": False}
"""A function without ``parameters`` takes none: its arguments are ``{}``."""
ANY_OBJECT = {"type": "object"}
"""``response_format: json_object``: some JSON object."""


class PlannedCall(msgspec.Struct, kw_only=True):
    """One tool call of an answer: its name is one token, its arguments ``pieces`` one each."""

    id: str
    name: str
    pieces: list[str]
    first: int = 0
    """Its name's token, counted from the end of the reasoning part."""

    @property
    def tokens(self) -> int:
        return 1 + len(self.pieces)


class Output(msgspec.Struct, kw_only=True):
    """What a shaped choice holds: ``reasoning`` tokens from ``reasoning_start`` of the reasoning
    text, then its content: ``calls``, or the JSON ``pieces``, or (neither) prose from the
    choice's ``start``. ``seed`` draws its log probabilities."""

    reasoning: int = 0
    reasoning_start: int = 0
    pieces: list[str] | None = None
    calls: list[PlannedCall] | None = None
    seed: int = 0


def needs_shaping(body: ChatCompletionRequest) -> bool:
    """Whether a chat request sets any field this module reads (a few attribute tests)."""
    return (
        body.reasoning_effort is not None
        or body.tools is not None
        or body.response_format is not None
        or body.tool_choice is not None
        or body.parallel_tool_calls is not None
    )


class Features:
    """The server's settings for shaped answers, and its cache of compiled schemas."""

    def __init__(self, settings: Settings) -> None:
        self.reasoning_models = ReasoningModels(settings.reasoning_models)
        self.default_effort = None if settings.reasoning_default_effort == "none" else settings.reasoning_default_effort
        self.reasoning_lengths = ReasoningLength(
            low=settings.reasoning_tokens_low, medium=settings.reasoning_tokens_medium,
            high=settings.reasoning_tokens_high,
        )
        self.reasoning_field = settings.reasoning_field
        self.tool_call_fraction = settings.tool_call_fraction
        self.max_parallel_tool_calls = settings.max_parallel_tool_calls
        self._schemas: OrderedDict[bytes, CompiledSchema | SchemaError] = OrderedDict()

    def schema(self, raw: msgspec.Raw | None, default: dict[str, Any], param: str) -> CompiledSchema:
        """The compiled schema of ``raw`` (the request's JSON bytes; empty, null or ``None``:
        ``default``), or a 400 naming ``param`` and what the schema asks that fakeai cannot build."""
        key = b"" if raw is None else bytes(raw)
        if not key:
            key = msgspec.json.encode(default)
        compiled = self._schemas.get(key)
        if compiled is None:
            compiled = self._compile(key, default)
            if len(key) <= SCHEMA_CACHE_BYTES:
                self._schemas[key] = compiled
                if len(self._schemas) > SCHEMA_CACHE_SIZE:
                    self._schemas.popitem(last=False)
        else:
            self._schemas.move_to_end(key)
        if isinstance(compiled, SchemaError):
            where = f"{param}.{compiled.path}" if compiled.path else param
            raise APIError(400, f"Invalid schema for '{where}': {compiled.reason}.", param=param,
                           code="invalid_schema")
        return compiled

    @staticmethod
    def _compile(raw: bytes, default: dict[str, Any]) -> CompiledSchema | SchemaError:
        try:
            schema = msgspec.json.decode(raw)
        except RecursionError:
            return SchemaError("the schema is nested too deeply")
        if schema is None:
            schema = default
        try:
            return compile_schema(schema)
        except SchemaError as exc:
            return exc

    def chat(self, body: ChatCompletionRequest) -> ChatShaping | None:
        """The shaping of a chat request (``None``: a plain answer), or a 400."""
        effort = body.reasoning_effort
        if effort is not None:
            if not self.reasoning_models.reasons(body.model):
                raise APIError(
                    400,
                    f"Unsupported parameter: 'reasoning_effort' is not supported with the model '{body.model}' (it "
                    "does not reason; see the reasoning_models setting).",
                    param="reasoning_effort",
                    code="unsupported_parameter",
                )
        elif self.default_effort is not None and self.reasoning_models.reasons(body.model):
            effort = self.default_effort
        tools, mode, parallel = self._tools(body)
        content = self._content(body)
        if effort is None and not tools and content is None:
            return None
        if (tools and mode != "none") or content is not None:
            for field, refused in (("ignore_eos", body.ignore_eos), ("min_tokens", body.min_tokens)):
                if refused:
                    raise APIError(
                        400,
                        f"'{field}' cannot be combined with tools or a JSON response_format: a JSON answer or a "
                        "tool call ends where its JSON ends.",
                        param=field,
                        code="unsupported_parameter",
                    )
        return ChatShaping(self, effort, tools, mode, parallel, content)

    def _tools(self, body: ChatCompletionRequest) -> tuple[list[tuple[str, CompiledSchema]], str, bool]:
        choice = body.tool_choice
        if not body.tools:
            if choice is not None and choice != "none":
                raise APIError(400, "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
                               "are specified.", param="tool_choice", code="invalid_value")
            if body.parallel_tool_calls is not None:
                raise APIError(400, "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed "
                               "when 'tools' are specified.", param="parallel_tool_calls", code="invalid_value")
            return [], "none", False
        tools = []
        names = set()
        for position, tool in enumerate(body.tools):
            name = tool.function.name
            if name in names:
                raise APIError(400, f"Invalid 'tools': the function name '{name}' is used twice.",
                               param=f"tools[{position}].function.name", code="invalid_value")
            names.add(name)
            tools.append((name, self.schema(tool.function.parameters, NO_PARAMETERS,
                                            f"tools[{position}].function.parameters")))
        if choice is None:
            mode = "auto"
        elif isinstance(choice, str):
            mode = choice
        else:
            mode = choice.function.name
            if mode not in names:
                raise APIError(400, f"Invalid value for 'tool_choice': no function named '{mode}' is in 'tools'.",
                               param="tool_choice", code="invalid_value")
            mode = "=" + mode
        return tools, mode, body.parallel_tool_calls is not False

    def _content(self, body: ChatCompletionRequest) -> CompiledSchema | None:
        fmt = body.response_format
        if fmt is None:
            return None
        kind = type(fmt).__name__
        if kind == "TextFormat":
            return None
        if kind == "JsonObjectFormat":
            return self.schema(None, ANY_OBJECT, "response_format")
        return self.schema(fmt.json_schema.schema, {}, "response_format.json_schema.schema")  # type: ignore[union-attr]


class ChatShaping:
    """One chat request's shaped answers: drawn choice by choice, from the request's random source."""

    __slots__ = ("content", "effort", "features", "mode", "parallel", "tools")

    def __init__(self, features: Features, effort: str | None, tools: list[tuple[str, CompiledSchema]], mode: str,
                 parallel: bool, content: CompiledSchema | None) -> None:
        self.features = features
        self.effort = effort
        self.tools = tools
        self.mode = mode
        """``none``, ``auto``, ``required``, or ``=name`` for a named function."""
        self.parallel = parallel
        self.content = content

    @property
    def reasons(self) -> bool:
        return self.effort is not None

    def _calls(self, rng: random.Random) -> list[PlannedCall] | None:
        mode = self.mode
        if not self.tools or mode == "none":
            return None
        if mode == "auto" and rng.random() >= self.features.tool_call_fraction:
            return None
        if mode.startswith("="):
            picked = [tool for tool in self.tools if tool[0] == mode[1:]]
        else:
            most = min(self.features.max_parallel_tool_calls, len(self.tools)) if self.parallel else 1
            picked = rng.sample(self.tools, rng.randint(1, most))
        calls = []
        first = 0
        for name, schema in picked:
            call_id = "call_" + "".join(rng.choices(_ID_ALPHABET, k=24))
            call = PlannedCall(id=call_id, name=name, pieces=json_pieces(schema.instance_json(rng, INSTANCE_EXTRA_CHARS)),
                               first=first)
            first += call.tokens
            calls.append(call)
        return calls

    def draw(self, engine: Engine, rng: random.Random, max_tokens: int | None, min_tokens: int, ignore_eos: bool,
             stops: list[str] | None) -> Choice:
        """One choice: its reasoning part, then its tool calls, JSON content or prose."""
        reasoning = self.features.reasoning_lengths.draw(rng, self.effort) if self.effort is not None else 0
        output = Output(reasoning=reasoning, seed=rng.getrandbits(32))
        if reasoning:
            output.reasoning_start = reasoning_text().start(rng)
        start = engine.text.start(rng)
        stop_sequence = None
        calls = self._calls(rng)
        if calls is not None:
            output.calls = calls
            body, reason = sum(call.tokens for call in calls), "tool_calls"
        elif self.content is not None:
            output.pieces = json_pieces(self.content.instance_json(rng, INSTANCE_EXTRA_CHARS))
            body, reason = len(output.pieces), "stop"
        else:
            remaining = None if max_tokens is None else max(0, max_tokens - reasoning)
            body, reason = engine.lengths.draw(rng, remaining, max(0, min_tokens - reasoning), ignore_eos)
            if stops and not ignore_eos:
                prose = Choice(start=start, tokens=body, finish_reason=reason)
                engine.apply_stops(prose, stops)
                body, reason, stop_sequence = prose.tokens, prose.finish_reason, prose.stop_sequence
        tokens = reasoning + body
        if max_tokens is not None and tokens > max_tokens:
            tokens, reason, stop_sequence = max_tokens, "length", None
        return Choice(start=start, tokens=tokens, finish_reason=reason, output=output, stop_sequence=stop_sequence)
