"""``POST /v1/embeddings``."""

from __future__ import annotations

import base64
from array import array
from typing import TYPE_CHECKING

import msgspec
from litestar.handlers import ASGIRouteHandler

from fakeai.api.completions import prompt_parts, prompt_tokens
from fakeai.api.generation import admit, answer_parts, read_request
from fakeai.api.responses import send_json_parts, wait_while_connected
from fakeai.api.routes import asgi
from fakeai.api.schemas import Embedding, EmbeddingList, EmbeddingRequest, EmbeddingUsage
from fakeai.simulation.embeddings import embed, pack_float32

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from fakeai.api.engine import Engine
    from fakeai.metrics import MetricsRegistry

__all__ = ("embeddings_handler",)


def _key(part: str | list[int]) -> bytes:
    return part.encode() if isinstance(part, str) else b"ids:" + array("q", part).tobytes()


def embeddings_handler(
    engine: Engine, registry: MetricsRegistry, default_dimensions: int, max_body_bytes: int
) -> ASGIRouteHandler:
    decode = msgspec.json.Decoder(EmbeddingRequest).decode
    encode = msgspec.json.Encoder().encode

    @asgi("/v1/embeddings", copy_scope=False)
    async def create_embeddings(scope: Scope, receive: Receive, send: Send) -> None:
        body, exchange = await read_request(scope, receive, decode, max_body_bytes)
        parts = prompt_parts(body.input, "input")
        engine.check_model(body.model)
        dimensions = body.dimensions or default_dimensions
        engine.limits.check_embeddings(len(parts), dimensions, dimensions_requested=body.dimensions is not None)
        counted, _, _ = prompt_tokens(engine, parts)
        tokens = engine.limits.counted_prompt_tokens(counted, "input")
        engine.limits.check_prompt_tokens(tokens, "input")
        admit(engine, registry, exchange, body.model, "/v1/embeddings")
        exchange.finish_reason = "stop"
        exchange.prompt_tokens = tokens
        ready_at = exchange.started + engine.prefill_seconds(tokens)
        if registry.clock() < ready_at:
            await wait_while_connected(receive, engine.pacer.wait_until(ready_at))
        base64_format = body.encoding_format == "base64"

        def embedding(index: int, part: str | list[int]) -> bytes:
            vector = embed(_key(part), dimensions)
            value: list[float] | str = base64.b64encode(pack_float32(vector)).decode() if base64_format else vector
            return encode(Embedding(index=index, embedding=value))

        envelope = encode(
            EmbeddingList(data=[], model=body.model, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))
        )
        items = (embedding(index, part) for index, part in enumerate(parts))
        await send_json_parts(exchange, receive, answer_parts(envelope, b'"data"', items))

    return create_embeddings
