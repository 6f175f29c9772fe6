"""OpenAI's request and response shapes, as msgspec Structs.

Requests accept fields they do not know (clients send vendor extras) but validate the ones
they do. Responses omit absent optional fields instead of sending nulls; their constant
``object`` field is a msgspec tag, so it is always sent.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Raw

__all__ = (
    "ChatCompletion",
    "ChatCompletionRequest",
    "ChatMessage",
    "REFUSED_FIELDS",
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
``fakeai.api.completions.prompt_parts`` checks that a list does not mix them)."""


class _Request(msgspec.Struct, kw_only=True):
    pass


class _Response(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


# -- requests ------------------------------------------------------------------------------


class StreamOptions(_Request, kw_only=True):
    include_usage: bool = False
    continuous_usage_stats: bool = False
    """vLLM's: usage (tokens so far) on every chunk."""


class TextPart(_Request, kw_only=True, tag_field="type", tag="text"):
    text: str


class ImageURL(_Request, kw_only=True):
    url: str
    detail: str | None = None


class ImagePart(_Request, kw_only=True, tag_field="type", tag="image_url"):
    image_url: ImageURL


class CalledFunction(_Request, kw_only=True):
    name: str
    arguments: str


class MessageToolCall(_Request, kw_only=True, tag_field="type", tag="function"):
    """A tool call of an assistant message in the history."""

    id: str
    function: CalledFunction


class ChatMessage(_Request, kw_only=True):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart | ImagePart] | None = None
    name: str | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = None


FunctionName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_.-]+$")]
"""A function's name: OpenAI's rule (letters, digits, underscores, dashes; at most 64), dots too."""


class FunctionDefinition(_Request, kw_only=True):
    name: FunctionName
    description: str | None = None
    parameters: Raw = Raw()
    """Its JSON Schema, kept as the request's bytes (empty: none given): compiled once per
    distinct schema."""
    strict: bool | None = None


class Tool(_Request, kw_only=True, tag_field="type", tag="function"):
    function: FunctionDefinition


class NamedFunction(_Request, kw_only=True):
    name: str


class NamedToolChoice(_Request, kw_only=True, tag_field="type", tag="function"):
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class JsonSchemaSpec(_Request, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    description: str | None = None
    schema: Raw = Raw()
    strict: bool | None = None


class TextFormat(_Request, kw_only=True, tag_field="type", tag="text"):
    pass


class JsonObjectFormat(_Request, kw_only=True, tag_field="type", tag="json_object"):
    pass


class JsonSchemaFormat(_Request, kw_only=True, tag_field="type", tag="json_schema"):
    json_schema: JsonSchemaSpec


ResponseFormat = TextFormat | JsonObjectFormat | JsonSchemaFormat


StopSequence = Annotated[str, Meta(min_length=1)]
Stop = StopSequence | Annotated[list[StopSequence], Meta(max_length=4)] | None
"""Up to 4 stop sequences; an empty one is refused, as vLLM refuses it ("stop cannot contain an
empty string"), whether alone or in a list."""


REFUSED_FIELDS: dict[str, str] = {
    "functions": "use 'tools'",
    "function_call": "use 'tool_choice'",
    "audio": "fakeai answers in text only",
    "prediction": "",
    "web_search_options": "",
    "best_of": "",
    "use_beam_search": "",
    "prompt_logprobs": "use 'echo' with 'logprobs' on /v1/completions to score a prompt",
    "guided_json": "use 'response_format' json_schema",
    "guided_regex": "",
    "guided_choice": "",
    "guided_grammar": "",
    "structured_outputs": "use 'response_format' json_schema",
    "return_tokens_as_token_ids": "",
    "return_token_ids": "",
    "suffix": "",
    "verbosity": "",
}
"""Request fields fakeai does not implement, with a hint: a request that sets one (to anything
but null) gets a 400 naming it, never silence. Each is declared below as a field whose only
accepted value is null, so msgspec refuses any other value while decoding: the check costs a
request that does not send them nothing."""


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
    # refused (see REFUSED_FIELDS): only null is accepted
    best_of: None = None
    use_beam_search: None = None
    prompt_logprobs: None = None
    guided_json: None = None
    guided_regex: None = None
    guided_choice: None = None
    guided_grammar: None = None
    structured_outputs: None = None
    return_tokens_as_token_ids: None = None
    return_token_ids: None = None


class ChatCompletionRequest(_Generation, kw_only=True):
    messages: Annotated[list[ChatMessage], Meta(min_length=1)]
    max_completion_tokens: PositiveInt | None = None
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    tools: Annotated[list[Tool], Meta(max_length=128)] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    # refused (see REFUSED_FIELDS): only null is accepted
    functions: None = None
    function_call: None = None
    audio: None = None
    prediction: None = None
    web_search_options: None = None
    verbosity: None = None
    modalities: list[Literal["text"]] | None = None


class CompletionRequest(_Generation, kw_only=True):
    prompt: TextsOrTokens
    max_tokens: Annotated[int, Meta(ge=0)] | None = 16  # OpenAI's default; 0 only with echo (scoring)
    echo: bool = False
    logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    # refused (see REFUSED_FIELDS): only null is accepted
    suffix: None = None


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


class CompletionTokensDetails(_Response, kw_only=True):
    reasoning_tokens: int
    """Completion tokens of the reasoning part (sent only for requests that reason)."""


class Usage(_Response, kw_only=True):
    """A chat or completions answer's usage: ``completion_tokens`` is always sent, 0 too."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


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
