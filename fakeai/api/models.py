"""``GET /v1/models`` and ``GET /v1/models/{model}``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from litestar import get
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from fakeai.api.errors import APIError
from fakeai.api.schemas import Model, ModelList

if TYPE_CHECKING:
    from fakeai.api.engine import Engine

__all__ = ("model_handlers",)


def _model(model_id: str, created: int) -> Model:
    owner = model_id.split("/", 1)[0] if "/" in model_id else "fakeai"
    return Model(id=model_id, created=created, owned_by=owner)


def model_handlers(engine: Engine) -> list[HTTPRouteHandler]:
    created = int(time.time())
    listing = ModelList(data=[_model(model_id, created) for model_id in engine.models])

    @get("/v1/models", sync_to_thread=False)
    def list_models() -> ModelList:
        return listing

    @get("/v1/models/{model_id:path}", sync_to_thread=False)
    def retrieve_model(model_id: FromPath[str]) -> Model:
        model_id = model_id.lstrip("/")  # Litestar's path parameters keep their leading slash
        engine.check_model(model_id)
        if not model_id:
            raise APIError(404, "No model id given.", param="model", code="model_not_found")
        return _model(model_id, created)

    return [list_models, retrieve_model]
