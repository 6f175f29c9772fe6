"""OpenAI's request and response shapes, as msgspec Structs.

Requests accept fields they do not know (clients send vendor extras) but validate the ones
they do. Responses omit absent optional fields instead of sending nulls; their constant
``object`` field is a msgspec tag, so it is always sent.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

__all__ = (
    "ChatCompletion",
    "ChatCompletionRequest",
    "ChatMessage",
    "Completion",
    "CompletionRequest",
    "EmbeddingList",
    "EmbeddingRequest",
    "EmbeddingUsage",
    "ErrorBody",
    "ErrorDetail",
    "Model",
    "ModelList",
    "Usage",
)

PositiveInt = Annotated[int, Meta(ge=1)]
TokenId = Annotated[int, Meta(ge=0, le=2**31 - 1)]
"""A token id: no vocabulary comes near 2**31 (larger ones are refused, not overflowed)."""
TokenIds = Annotated[list[TokenId], Meta(min_length=1)]
TextsOrTokens = str | Annotated[list[str | TokenId | TokenIds], Meta(min_length=1)]
"""A text, texts, token ids, or lists of token ids (msgspec allows one list type in a union:
``fakeai.api.prompts`` checks that a list does not mix them)."""


class _Request(msgspec.Struct, kw_only=True):
    pass


class _Response(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


# -- requests ------------------------------------------------------------------------------


class StreamOptions(_Request, kw_only=True):
    include_usage: bool = False


class TextPart(_Request, kw_only=True, tag_field="type", tag="text"):
    text: str


class ImageURL(_Request, kw_only=True):
    url: str
    detail: str | None = None


class ImagePart(_Request, kw_only=True, tag_field="type", tag="image_url"):
    image_url: ImageURL


class ChatMessage(_Request, kw_only=True):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart | ImagePart] | None = None
    name: str | None = None


StopSequence = Annotated[str, Meta(min_length=1)]
Stop = StopSequence | Annotated[list[StopSequence], Meta(max_length=4)] | None
"""Up to 4 stop sequences; an empty one is refused, as vLLM refuses it ("stop cannot contain an
empty string"), whether alone or in a list."""


class _Generation(_Request, kw_only=True):
    """What chat and completions requests have in common."""

    model: str
    max_tokens: PositiveInt | None = None
    n: Annotated[int, Meta(ge=1, le=128)] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Stop = None
    seed: int | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    ignore_eos: bool = False
    min_tokens: Annotated[int, Meta(ge=0)] = 0


class ChatCompletionRequest(_Generation, kw_only=True):
    messages: Annotated[list[ChatMessage], Meta(min_length=1)]
    max_completion_tokens: PositiveInt | None = None


class CompletionRequest(_Generation, kw_only=True):
    prompt: TextsOrTokens
    max_tokens: PositiveInt | None = 16  # OpenAI's default for completions
    echo: bool = False


class EmbeddingRequest(_Request, kw_only=True):
    model: str
    input: TextsOrTokens
    dimensions: Annotated[int, Meta(ge=1, le=16384)] | None = None
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None


# -- responses -----------------------------------------------------------------------------


class PromptTokensDetails(_Response, kw_only=True):
    cached_tokens: int
    """Prompt tokens the simulated worker had in its prefix cache (always sent, as OpenAI does)."""


class Usage(_Response, kw_only=True):
    """A chat or completions answer's usage: ``completion_tokens`` is always sent, 0 too."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None


class EmbeddingUsage(_Response, kw_only=True):
    """An embeddings answer's usage: only prompt and total tokens, as OpenAI sends it."""

    prompt_tokens: int
    total_tokens: int


class AssistantMessage(_Response, kw_only=True):
    role: str
    content: str


class ChatChoice(_Response, kw_only=True):
    index: int
    message: AssistantMessage
    finish_reason: str


class ChatCompletion(_Response, kw_only=True, tag_field="object", tag="chat.completion"):
    id: str
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class CompletionChoice(_Response, kw_only=True):
    index: int
    text: str
    finish_reason: str


class Completion(_Response, kw_only=True, tag_field="object", tag="text_completion"):
    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class Embedding(_Response, kw_only=True, tag_field="object", tag="embedding"):
    index: int
    embedding: list[float] | str


class EmbeddingList(_Response, kw_only=True, tag_field="object", tag="list"):
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class Model(_Response, kw_only=True, tag_field="object", tag="model"):
    id: str
    created: int
    owned_by: str


class ModelList(_Response, kw_only=True, tag_field="object", tag="list"):
    data: list[Model]


class ErrorDetail(msgspec.Struct, kw_only=True):
    """Every key is always present; ``param`` and ``code`` may be null, as OpenAI sends them."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(msgspec.Struct, kw_only=True):
    error: ErrorDetail
