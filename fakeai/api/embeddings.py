"""``POST /v1/embeddings``."""

from __future__ import annotations

import base64
from array import array
from typing import TYPE_CHECKING

import msgspec
from litestar import asgi
from litestar.handlers import ASGIRouteHandler

from fakeai.api.completions import prompt_parts, prompt_tokens_of
from fakeai.api.generation import admit, read_request
from fakeai.api.responses import send_json
from fakeai.api.schemas import Embedding, EmbeddingList, EmbeddingRequest, Usage
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
        admit(engine, registry, exchange, body.model, "/v1/embeddings")
        exchange.finish_reason = "stop"
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
        await engine.pacer.wait_until(exchange.started + engine.prefill_seconds(tokens))
        usage = Usage(prompt_tokens=tokens, total_tokens=tokens)
        await send_json(exchange, encode(EmbeddingList(data=data, model=body.model, usage=usage)))

    return create_embeddings
