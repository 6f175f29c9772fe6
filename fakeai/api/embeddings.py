"""``POST /v1/embeddings``."""

from __future__ import annotations

import asyncio
import base64
from array import array
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import MediaType, Request, Response, post
from litestar.handlers import HTTPRouteHandler

from fakeai.api.completions import prompt_parts, prompt_tokens_of
from fakeai.api.generation import read_request
from fakeai.api.schemas import Embedding, EmbeddingList, EmbeddingRequest, Usage
from fakeai.simulation.embeddings import embed, pack_float32

if TYPE_CHECKING:
    from fakeai.api.engine import Engine
    from fakeai.metrics import MetricsRegistry

__all__ = ("embeddings_handler",)


def _key(part: str | list[int]) -> bytes:
    return part.encode() if isinstance(part, str) else b"ids:" + array("q", part).tobytes()


def embeddings_handler(engine: Engine, registry: MetricsRegistry, default_dimensions: int) -> HTTPRouteHandler:
    decode = msgspec.json.Decoder(EmbeddingRequest).decode
    encode = msgspec.json.Encoder().encode

    @post("/v1/embeddings", status_code=200)
    async def create_embeddings(request: Request[Any, Any, Any]) -> Response[Any]:
        body, exchange = await read_request(request, decode)
        engine.check_model(body.model)
        parts = prompt_parts(body.input, "input")
        injected = engine.injected_error()
        if injected is not None:
            raise injected
        dimensions = body.dimensions or default_dimensions
        tokens = sum(prompt_tokens_of(part) for part in parts)
        exchange.prompt_tokens = tokens
        data = []
        for index, part in enumerate(parts):
            vector = embed(_key(part), dimensions)
            value: list[float] | str = (
                base64.b64encode(pack_float32(vector)).decode() if body.encoding_format == "base64" else vector
            )
            data.append(Embedding(index=index, embedding=value))
        wait = exchange.started + engine.prefill_seconds(tokens) - registry.clock()
        if wait > 0.0:
            await asyncio.sleep(wait)
        usage = Usage(prompt_tokens=tokens, total_tokens=tokens)
        return Response(encode(EmbeddingList(data=data, model=body.model, usage=usage)), media_type=MediaType.JSON)

    return create_embeddings
