"""``POST /v1/responses``: OpenAI's Responses API, stateless.

The request is read as ``responses_input`` says (its prompt counted as chat counts the same
conversation; reasoning, tools and JSON formats shaping the answer as on chat). The answer is
planned, paced and recorded as a chat answer is (``generation``), sent whole when due
(``responses_output``) or as the API's typed events (``responses_stream``).

Nothing is stored: ``store`` is accepted either way (the API's default is true, and clients send
it without reading the response back) and every response says ``"store": false``; asking for a
stored response (``GET /v1/responses/{id}`` and the like) is a 404 saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import msgspec
from litestar.exceptions import NotFoundException
from litestar.handlers import ASGIRouteHandler

from fakeai.api.errors import APIError, requested_path
from fakeai.api.event_streams import typed_body
from fakeai.api.generation import admit, answer_parts, open_stream, plan_answer, read_request, send_when_due
from fakeai.api.recording import UNMATCHED_ENDPOINT
from fakeai.api.responses import send_event_stream
from fakeai.api.responses_input import read_shaping, refuse_unimplemented, render_input
from fakeai.api.responses_output import ResponseAnswer
from fakeai.api.responses_schemas import ResponsesRequest
from fakeai.api.responses_stream import ResponseEvents
from fakeai.api.routes import asgi
from fakeai.api.shaping import Features

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from fakeai.api.engine import Engine
    from fakeai.metrics import MetricsRegistry

__all__ = ("ENDPOINT", "STORED_ENDPOINT", "responses_handler")

ENDPOINT = "/v1/responses"
STORED_ENDPOINT = "/v1/responses/{response_id}"
"""The endpoint label of requests for a stored response (retrieve, delete, cancel, input items)."""


def responses_handler(engine: Engine, registry: MetricsRegistry, max_body_bytes: int) -> ASGIRouteHandler:
    decode = msgspec.json.Decoder(ResponsesRequest).decode
    encode = msgspec.json.Encoder().encode
    features = Features(engine.settings)

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
        refuse_unimplemented(body)
        engine.check_model(body.model)
        shaping = read_shaping(features, body)
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
            shaping=shaping,
        )
        answer = ResponseAnswer(engine, plan, body)
        if body.stream:
            open_stream(registry, exchange)
            gaps = registry.writer.gaps if exchange.recording else None
            body = typed_body(engine, plan, exchange, ResponseEvents(answer), registry.clock, gaps)
            await send_event_stream(exchange, receive, body, engine)
            return
        await send_when_due(engine, exchange, receive, plan, lambda: render(answer))

    return create_response
