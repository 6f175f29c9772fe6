"""``GET /v1/models`` and ``GET /v1/models/{model}`` (HEAD too, with the headers GET would get).

Both are plain ASGI routes like every other endpoint, so a wrong method is a 405 recorded
under the route it was sent to, not under ``unmatched``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import msgspec
from litestar.exceptions import NotFoundException
from litestar.handlers import ASGIRouteHandler

from fakeai.api.errors import requested_path
from fakeai.api.recording import UNMATCHED_ENDPOINT
from fakeai.api.responses import read_method, send_document
from fakeai.api.routes import asgi
from fakeai.api.schemas import Model, ModelList

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from fakeai.api.engine import Engine

__all__ = ("model_handlers",)

_JSON = "application/json"
LIST_ENDPOINT = "/v1/models"
RETRIEVE_ENDPOINT = "/v1/models/{model_id}"


def _model(model_id: str, created: int) -> Model:
    owner = model_id.split("/", 1)[0] if "/" in model_id else "fakeai"
    return Model(id=model_id, created=created, owned_by=owner)


def model_handlers(engine: Engine) -> list[ASGIRouteHandler]:
    created = int(time.time())
    encode = msgspec.json.Encoder().encode
    listing = encode(ModelList(data=[_model(model_id, created) for model_id in engine.models]))

    @asgi("/v1/models", is_mount=True, copy_scope=False)
    async def models(scope: Scope, receive: Receive, send: Send) -> None:
        # A mount (Litestar's ASGI routes take no path parameters): "/" lists, "/<id>" retrieves.
        path = requested_path(scope)
        if path != LIST_ENDPOINT and not path.startswith(LIST_ENDPOINT + "/"):
            scope["path_template"] = UNMATCHED_ENDPOINT
            raise NotFoundException()  # the mount also matches "/v1/modelsX"
        model_id = scope["path"].strip("/")
        scope["path_template"] = RETRIEVE_ENDPOINT if model_id else LIST_ENDPOINT  # the recorder's endpoint label
        method = read_method(scope)
        if not model_id:
            await send_document(send, method, listing, _JSON)
            return
        engine.check_model(model_id)
        await send_document(send, method, encode(_model(model_id, created)), _JSON)

    return [models]
