"""Reading a Responses API request: what it asks for, its prompt, and what fakeai refuses.

The ``input`` (a string, or a list of messages, function calls and their outputs, and reasoning
items, as a client sends back an earlier response's output), the ``instructions`` and the
function tools are rendered as a chat request's messages and tools are (``tokens.render_chat``,
``render_tools``): an instruction is a system message, function calls are the tool calls of an
assistant message (consecutive calls, and the assistant message before them, one message), a
call's output is a ``tool`` message, and reasoning items are left out, as chat leaves out the
reasoning of earlier turns. So the same conversation costs the same prompt tokens here and on
``/v1/chat/completions``.

``reasoning.effort``, the function ``tools`` with ``tool_choice`` and ``parallel_tool_calls``,
and ``text.format`` (``json_object``, ``json_schema``) shape the answer as chat's fields do
(``typed_shaping``). What would need stored state or a server-side job (``previous_response_id``,
``conversation``, ``item_reference`` items, ``prompt`` templates, ``background``), built-in tools,
and the other fields fakeai does not implement are refused with a 400 naming them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from fakeai.api.errors import APIError
from fakeai.api.responses_output import ENCRYPTED_REASONING
from fakeai.api.responses_schemas import InputItem, InputPart, ResponsesRequest
from fakeai.api.shaping import ANY_OBJECT, ChatShaping, Features
from fakeai.api.typed_shaping import FunctionSpec, ToolSpec, effort_for, shaping
from fakeai.simulation.tokens import render_chat, render_tools

__all__ = ("read_shaping", "refuse_unimplemented", "render_input")

_ROLES = frozenset({"user", "assistant", "system", "developer"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "summary_text", "reasoning_text"})
_INCLUDABLE = frozenset(
    {
        ENCRYPTED_REASONING,
        # what built-in tools would return: fakeai refuses those tools, so there is nothing to include
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "code_interpreter_call.outputs",
        "computer_call_output.output.image_url",
        "message.input_image.image_url",
    }
)


class _Function(NamedTuple):
    name: str | None
    arguments: str | None


class _Call(NamedTuple):
    function: _Function


class _Turn(NamedTuple):
    """A message of the rendered prompt (what ``render_chat`` reads)."""

    role: str
    content: str | list[InputPart]
    tool_calls: list[_Call] | None = None


def _unsupported(param: str, message: str) -> APIError:
    return APIError(400, message, param=param, code="unsupported_parameter")


def _stateless(param: str) -> APIError:
    return _unsupported(
        param,
        f"fakeai is stateless: it stores no responses or conversations, so '{param}' cannot refer to one. "
        "Send the whole conversation in 'input'.",
    )


def refuse_unimplemented(body: ResponsesRequest) -> None:
    """400 for each field of the API that fakeai does not implement, when it is set."""
    if body.previous_response_id is not None:
        raise _stateless("previous_response_id")
    if body.conversation is not None:
        raise _stateless("conversation")
    if body.prompt is not None:
        raise _unsupported("prompt", "Prompt templates are stored objects, and fakeai stores none: send 'input'.")
    if body.background:
        raise _unsupported("background", "fakeai answers every response in the foreground: 'background' must be false.")
    if body.top_logprobs is not None:
        raise _unsupported("top_logprobs", "fakeai does not send log probabilities on /v1/responses.")
    if body.truncation != "disabled":
        raise _unsupported(
            "truncation", "fakeai does not truncate input: 'truncation' must be 'disabled' (a longer input is a 400)."
        )
    for number, tool in enumerate(body.tools):
        if tool.type != "function":
            raise _unsupported(
                f"tools[{number}].type",
                f"fakeai calls function tools only: '{tool.type}' is a built-in tool it does not run.",
            )
        if tool.name is None:
            raise _missing(f"tools[{number}].name")
    for number, value in enumerate(body.include):
        if value not in _INCLUDABLE:
            raise _unsupported(f"include[{number}]", f"fakeai cannot include '{value}' in a response.")


def _missing(param: str) -> APIError:
    return APIError(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def _parts(parts: list[InputPart], where: str) -> list[InputPart]:
    """The parts of a message's content as the chat template reads them: texts, and images
    (a part without ``text``, counted as an image is)."""
    read = []
    for number, part in enumerate(parts):
        kind = part.type
        if kind in _TEXT_PARTS:
            if part.text is None:
                raise _missing(f"{where}[{number}].text")
            read.append(part)
        elif kind == "refusal":
            if part.refusal is None:
                raise _missing(f"{where}[{number}].refusal")
            read.append(InputPart(type="output_text", text=part.refusal))
        elif kind == "input_image":
            read.append(InputPart(type=kind))
        else:
            raise APIError(
                400,
                f"Invalid content part type '{kind}': fakeai reads input_text, output_text, refusal and input_image "
                "parts (it does not read files).",
                param=f"{where}[{number}].type",
                code="invalid_value",
            )
    return read


def _text(parts: list[InputPart], where: str) -> str:
    return "".join(part.text or "" for part in _parts(parts, where))


def _add(turns: list[_Turn], item: InputItem, where: str) -> None:
    """Add ``item`` to the rendered ``turns`` (400 naming what fakeai cannot read)."""
    kind = item.type
    if kind == "message":
        if item.role not in _ROLES:
            raise APIError(
                400,
                f"Invalid value for '{where}.role': expected one of user, assistant, system, developer.",
                param=f"{where}.role",
                code="invalid_value",
            )
        if item.content is None:
            raise _missing(f"{where}.content")
        content = item.content
        turns.append(_Turn(item.role, content if isinstance(content, str) else _parts(content, f"{where}.content")))
    elif kind == "function_call":
        for field in ("call_id", "name", "arguments"):
            if getattr(item, field) is None:
                raise _missing(f"{where}.{field}")
        call = _Call(_Function(item.name, item.arguments))
        last = turns[-1] if turns else None
        if last is not None and last.role == "assistant":  # one assistant message: its text, then its calls
            turns[-1] = last._replace(tool_calls=[*(last.tool_calls or []), call])
        else:
            turns.append(_Turn("assistant", "", [call]))
    elif kind == "function_call_output":
        for field in ("call_id", "output"):
            if getattr(item, field) is None:
                raise _missing(f"{where}.{field}")
        output = item.output
        if not isinstance(output, str):
            output = _text(output, f"{where}.output")  # type: ignore[arg-type]
        turns.append(_Turn("tool", output))
    elif kind == "reasoning":
        if item.summary is None:
            raise _missing(f"{where}.summary")
        _text(item.summary, f"{where}.summary")  # read (and refused if malformed), not rendered
        if isinstance(item.content, list):
            _text(item.content, f"{where}.content")
    elif kind == "item_reference":
        raise _stateless(f"{where}.id")
    else:
        raise APIError(
            400,
            f"Invalid input item type '{kind}': fakeai reads message, function_call, function_call_output and "
            "reasoning items.",
            param=f"{where}.type",
            code="invalid_value",
        )


def _tools(body: ResponsesRequest) -> list[ToolSpec]:
    return [
        ToolSpec(FunctionSpec(tool.name or "", tool.description, tool.parameters, f"tools[{number}].parameters"))
        for number, tool in enumerate(body.tools)
    ]


def render_input(body: ResponsesRequest) -> str:
    """The prompt of a Responses request: its function tools, its instructions (a system
    message) and its input, rendered as chat renders them (400 naming an item fakeai cannot read)."""
    turns = [_Turn("system", body.instructions)] if body.instructions else []
    if isinstance(body.input, str):
        turns.append(_Turn("user", body.input))
    else:
        for number, item in enumerate(body.input):
            _add(turns, item, f"input[{number}]")
    prompt = render_chat(turns)
    return render_tools(_tools(body)) + prompt if body.tools else prompt


def _mode(choice: str | dict[str, Any]) -> str:
    """``tool_choice`` as ``shaping`` reads it: ``none``, ``auto``, ``required`` or ``=name``."""
    if isinstance(choice, str):
        if choice in ("none", "auto", "required"):
            return choice
    elif choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return "=" + choice["name"]
    raise APIError(
        400,
        "Invalid value for 'tool_choice': fakeai takes 'none', 'auto', 'required' or "
        '{"type": "function", "name": ...}.',
        param="tool_choice",
        code="invalid_value",
    )


def read_shaping(features: Features, body: ResponsesRequest) -> ChatShaping | None:
    """What the request asks of its answer beyond prose (``None``: prose), or a 400."""
    effort = effort_for(features, body.model, body.reasoning.effort if body.reasoning else None, "reasoning.effort")
    content = None
    fmt = body.text.format if body.text is not None else None
    if fmt is not None and fmt.type == "json_object":
        content = features.schema(None, ANY_OBJECT, "text.format")
    elif fmt is not None and fmt.type == "json_schema":
        if fmt.name is None:
            raise _missing("text.format.name")
        if not fmt.schema:
            raise _missing("text.format.schema")
        content = features.schema(fmt.schema, {}, "text.format.schema")
    return shaping(
        features,
        effort=effort,
        tools=_tools(body),
        mode=_mode(body.tool_choice),
        parallel=body.parallel_tool_calls,
        content=content,
        ignore_eos=body.ignore_eos,
        min_tokens=body.min_tokens,
    )
