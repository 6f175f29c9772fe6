"""``POST /v1/responses``: OpenAI's Responses API, stateless.

The ``input`` (a string, or a list of messages, function calls and their outputs, and reasoning
items, as a client sends back an earlier response's output) and the ``instructions`` are rendered
with the chat template (``tokens.render_chat``) and counted as a chat prompt is, so the same
conversation costs the same prompt tokens here and on ``/v1/chat/completions``. The answer is
planned, paced and recorded as a chat answer is (``generation``), sent whole when due or as the
API's typed events (``responses_stream``).

Nothing is stored: ``store`` is accepted either way (the API's default is true, and clients send
it without needing the response later) and every response says ``"store": false``; what would
need a stored object (``previous_response_id``, ``conversation``, ``item_reference`` items,
``prompt`` templates) or a server-side job (``background``) is refused with a 400 naming it, as is
every other field fakeai does not implement.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import msgspec
from litestar import asgi
from litestar.exceptions import NotFoundException
from litestar.handlers import ASGIRouteHandler

from fakeai.api.errors import APIError, requested_path
from fakeai.api.event_streams import typed_events
from fakeai.api.generation import admit, answer_parts, open_stream, plan_answer, read_request, send_when_due
from fakeai.api.recording import UNMATCHED_ENDPOINT
from fakeai.api.responses import send_event_stream
from fakeai.api.responses_output import ResponseAnswer
from fakeai.api.responses_schemas import InputItem, InputPart, ResponsesRequest
from fakeai.api.responses_stream import ResponseEvents
from fakeai.simulation.tokens import render_chat

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from fakeai.api.engine import Engine
    from fakeai.metrics import MetricsRegistry

__all__ = ("ENDPOINT", "STORED_ENDPOINT", "render_input", "responses_handler")

ENDPOINT = "/v1/responses"
STORED_ENDPOINT = "/v1/responses/{response_id}"
"""The endpoint label of requests for a stored response (retrieve, delete, cancel, input items)."""
_ROLES = frozenset({"user", "assistant", "system", "developer"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "summary_text", "reasoning_text"})
_INCLUDABLE = frozenset(
    {
        # what built-in tools would return: fakeai refuses those tools, so there is nothing to include
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "code_interpreter_call.outputs",
        "computer_call_output.output.image_url",
        "message.input_image.image_url",
    }
)


class _Turn(NamedTuple):
    """A message of the rendered prompt (what ``render_chat`` reads)."""

    role: str
    content: str | list[InputPart]


def _unsupported(param: str, message: str) -> APIError:
    return APIError(400, message, param=param, code="unsupported_parameter")


def _stateless(param: str) -> APIError:
    return _unsupported(
        param,
        f"fakeai is stateless: it stores no responses or conversations, so '{param}' cannot refer to one. "
        "Send the whole conversation in 'input'.",
    )


def _refuse_unimplemented(body: ResponsesRequest) -> None:
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
    if body.tools:
        raise _unsupported("tools", "fakeai does not call tools on /v1/responses yet.")
    if body.text is not None and body.text.format.type != "text":
        raise _unsupported("text.format", "fakeai answers /v1/responses with text only: 'text.format' must be text.")
    for number, value in enumerate(body.include):
        if value not in _INCLUDABLE:
            raise _unsupported(f"include[{number}]", f"fakeai cannot include '{value}' in a response.")
    if body.tool_choice not in ("auto", "none"):
        raise APIError(
            400,
            "'tool_choice' can only ask for a tool when 'tools' offers one.",
            param="tool_choice",
            code="invalid_value",
        )


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


def _turn(item: InputItem, where: str) -> _Turn:
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
        return _Turn(item.role, content if isinstance(content, str) else _parts(content, f"{where}.content"))
    if kind == "function_call":
        for field in ("call_id", "name", "arguments"):
            if getattr(item, field) is None:
                raise _missing(f"{where}.{field}")
        return _Turn("assistant", f"{item.name}({item.arguments})")
    if kind == "function_call_output":
        for field in ("call_id", "output"):
            if getattr(item, field) is None:
                raise _missing(f"{where}.{field}")
        output = item.output
        return _Turn("tool", output if isinstance(output, str) else _text(output, f"{where}.output"))  # type: ignore[arg-type]
    if kind == "reasoning":
        if item.summary is None:
            raise _missing(f"{where}.summary")
        content = item.content if isinstance(item.content, list) else []
        text = _text(content, f"{where}.content") or _text(item.summary, f"{where}.summary")
        return _Turn("assistant", text)
    if kind == "item_reference":
        raise _stateless(f"{where}.id")
    raise APIError(
        400,
        f"Invalid input item type '{kind}': fakeai reads message, function_call, function_call_output and "
        "reasoning items.",
        param=f"{where}.type",
        code="invalid_value",
    )


def render_input(body: ResponsesRequest) -> str:
    """The prompt of a Responses request: its instructions (a system message) and its input,
    rendered with the chat template (400 naming an item fakeai cannot read)."""
    turns = [_Turn("system", body.instructions)] if body.instructions else []
    if isinstance(body.input, str):
        turns.append(_Turn("user", body.input))
    else:
        turns.extend(_turn(item, f"input[{number}]") for number, item in enumerate(body.input))
    return render_chat(turns)


def responses_handler(engine: Engine, registry: MetricsRegistry, max_body_bytes: int) -> ASGIRouteHandler:
    decode = msgspec.json.Decoder(ResponsesRequest).decode
    encode = msgspec.json.Encoder().encode

    def render(answer: ResponseAnswer) -> Iterator[bytes]:
        status = answer.status()
        usage = answer.usage(answer.plan.completion_tokens)
        envelope = encode(answer.response(status, [], usage))
        return answer_parts(envelope, b'"output"', map(encode, answer.finished_items()))

    @asgi(ENDPOINT, is_mount=True, copy_scope=False)
    async def create_response(scope: Scope, receive: Receive, send: Send) -> None:
        # A mount (Litestar's ASGI routes take no path parameters): "/" creates, "/<id>..." would
        # read a stored response, of which there are none.
        path = requested_path(scope)
        if path != ENDPOINT:
            if not path.startswith(ENDPOINT + "/"):
                scope["path_template"] = UNMATCHED_ENDPOINT
                raise NotFoundException()  # the mount also matches "/v1/responsesX"
            scope["path_template"] = STORED_ENDPOINT
            response_id = scope["path"].strip("/").split("/", 1)[0]
            if response_id == "input_tokens":
                message = "fakeai does not serve /v1/responses/input_tokens: POST /tokenize counts a prompt."
            else:
                message = f"Response with id '{response_id}' not found: fakeai is stateless and stores no responses."
            raise APIError(404, message, code="not_found")
        scope["path_template"] = ENDPOINT  # the recorder's endpoint label
        body, exchange = await read_request(scope, receive, decode, max_body_bytes)
        _refuse_unimplemented(body)
        engine.check_model(body.model)
        counted, prompt = engine.tokenizer.tokens(render_input(body), engine.limits.prompt_tokens)
        prompt_tokens = engine.limits.counted_prompt_tokens(counted, "input")
        engine.check_context(prompt_tokens, body.max_output_tokens, "input")
        engine.limits.check_prompt_tokens(prompt_tokens, "input")
        engine.limits.check_generation(
            n=1, prompts=1, max_tokens=body.max_output_tokens, max_tokens_param="max_output_tokens"
        )
        admit(engine, registry, exchange, body.model, ENDPOINT)
        plan = await plan_answer(
            engine,
            registry,
            exchange,
            id_prefix="resp",
            model=body.model,
            prompts=[prompt],
            tokens_per_prompt=[prompt_tokens],
            max_tokens=body.max_output_tokens,
            min_tokens=body.min_tokens,
            ignore_eos=body.ignore_eos,
            seed=body.seed,
            stream=body.stream,
        )
        answer = ResponseAnswer(engine, plan, body)
        if body.stream:
            open_stream(registry, exchange)
            gaps = registry.writer.gaps if exchange.recording else None
            events = typed_events(engine, plan, exchange, ResponseEvents(answer), registry.clock, gaps)
            await send_event_stream(exchange, receive, events)
            return
        await send_when_due(engine, exchange, receive, plan, lambda: render(answer))

    return create_response
