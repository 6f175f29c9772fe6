"""Reasoning, tool calls and JSON content for the Responses API and Anthropic's Messages.

Both APIs ask for what chat asks for (``shaping``) in fields of their own: a reasoning effort
(``reasoning.effort``; ``thinking``), function tools (``tools`` with ``parameters``;
``input_schema``), a tool choice and a JSON format. Each endpoint reads its fields into the
arguments of ``shaping`` below, which applies chat's rules (a reasoning effort only for a
reasoning model, the server's default effort otherwise, distinct function names, each schema
compiled once) and returns the ``ChatShaping`` the engine draws answers with, so an answer has
the same reasoning, calls and content whatever API asked for it. The functions' definitions
count as prompt tokens as chat's do (``tool_definitions`` for ``tokens.render_tools``).
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from fakeai.api.errors import APIError
from fakeai.api.shaping import NO_PARAMETERS, ChatShaping, Features
from fakeai.simulation.json_instances import CompiledSchema

__all__ = ("FunctionSpec", "ToolSpec", "effort_for", "shaping")


class FunctionSpec(NamedTuple):
    """A function tool as ``tokens.render_tools`` reads it."""

    name: str
    description: str | None
    parameters: msgspec.Raw
    """Its JSON Schema, the request's bytes (empty: it takes no parameters)."""
    param: str
    """Where the request holds its schema (named by a 400 about it)."""


class ToolSpec(NamedTuple):
    function: FunctionSpec


def effort_for(features: Features, model: str, effort: str | None, param: str) -> str | None:
    """The reasoning effort of a request to ``model`` that asked for ``effort`` (``param``):
    chat's rules (400 for a model that does not reason; the default effort otherwise)."""
    reasons = features.reasoning_models.reasons(model)
    if effort is not None:
        if not reasons:
            raise APIError(
                400,
                f"Unsupported parameter: '{param}' is not supported with the model '{model}' (it does not reason; "
                "see the reasoning_models setting).",
                param=param,
                code="unsupported_parameter",
            )
        return effort
    return features.default_effort if reasons else None


def shaping(
    features: Features,
    *,
    effort: str | None,
    tools: list[ToolSpec],
    mode: str,
    parallel: bool,
    content: CompiledSchema | None,
    ignore_eos: bool,
    min_tokens: int,
) -> ChatShaping | None:
    """The shaping of one request (``None``: a plain answer), or a 400.

    ``mode`` is ``none``, ``auto``, ``required`` or ``=name`` (a named function, which
    ``tools`` must hold); ``content`` the JSON format's compiled schema.
    """
    compiled: list[tuple[str, CompiledSchema]] = []
    names = set()
    for tool in tools:
        function = tool.function
        if function.name in names:
            raise APIError(
                400,
                f"Invalid 'tools': the function name '{function.name}' is used twice.",
                param=function.param,
                code="invalid_value",
            )
        names.add(function.name)
        compiled.append((function.name, features.schema(function.parameters, NO_PARAMETERS, function.param)))
    if mode.startswith("=") and mode[1:] not in names:
        raise APIError(
            400,
            f"Invalid value for 'tool_choice': no function named '{mode[1:]}' is in 'tools'.",
            param="tool_choice",
            code="invalid_value",
        )
    if not compiled and mode not in ("none", "auto"):
        raise APIError(
            400, "'tool_choice' can only ask for a tool when 'tools' offers one.", param="tool_choice",
            code="invalid_value",
        )
    if effort is None and not compiled and content is None:
        return None
    if (compiled and mode != "none") or content is not None:
        for field, refused in (("ignore_eos", ignore_eos), ("min_tokens", min_tokens)):
            if refused:
                raise APIError(
                    400,
                    f"'{field}' cannot be combined with tools or a JSON format: a JSON answer or a tool call ends "
                    "where its JSON ends.",
                    param=field,
                    code="unsupported_parameter",
                )
    return ChatShaping(features, effort, compiled, mode, parallel, content)
