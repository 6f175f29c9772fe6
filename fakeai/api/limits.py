"""How much work one request may ask for: checked at admission, before any routing or planning.

Each limit is a setting (the ``# -- limits`` section of ``Settings``). A request beyond one
gets a 400 in OpenAI's shape whose ``param`` names the field to change and whose ``code``
says which limit it hit. What the schemas already bound per field (``n`` <= 128, at most 4
stop sequences, ``dimensions`` <= 16384) and the context length (``Engine.check_context``)
are checked where they are; these are the limits on the request as a whole.
"""

from __future__ import annotations

from fakeai.api.errors import APIError
from fakeai.config import Settings

__all__ = ("RequestLimits",)


class RequestLimits:
    """The per-request limits of one server, from its settings."""

    __slots__ = (
        "choices",
        "default_answer_tokens",
        "embedding_inputs",
        "embedding_values",
        "prompt_tokens",
        "prompts",
        "tokens",
    )

    def __init__(self, settings: Settings) -> None:
        self.tokens = settings.max_generated_tokens_per_request
        self.choices = settings.max_choices_per_request
        self.prompts = settings.max_prompts_per_request
        self.prompt_tokens = settings.max_prompt_tokens_per_request
        self.embedding_inputs = settings.max_embedding_inputs_per_request
        self.embedding_values = settings.max_embedding_values_per_request
        self.default_answer_tokens = settings.answer_tokens_max
        """An answer's length bound when the request sets no max_tokens."""

    def check_prompt_tokens(self, tokens: int, param: str) -> None:
        """400 when a request's prompts (or inputs) hold more tokens than one request may send."""
        if tokens > self.prompt_tokens:
            raise self._too_many_prompt_tokens(str(tokens), param)

    def counted_prompt_tokens(self, tokens: int | None, param: str) -> int:
        """``tokens``; 400 when they are ``None``: an exact count stopped once it passed the limit."""
        if tokens is None:
            raise self._too_many_prompt_tokens(f"more than {self.prompt_tokens}", param)
        return tokens

    def _too_many_prompt_tokens(self, tokens: str, param: str) -> APIError:
        return APIError(
            400,
            f"This request sends {tokens} prompt tokens; at most {self.prompt_tokens} are allowed per "
            f"request. Send a shorter '{param}' or split it over several requests.",
            param=param,
            code="too_many_prompt_tokens",
        )

    def check_generation(
        self,
        *,
        n: int,
        prompts: int,
        max_tokens: int | None,
        max_tokens_param: str = "max_tokens",
        echoed_tokens: int = 0,
    ) -> None:
        """400 when a chat or completions request asks for too much.

        ``n`` answers to each of ``prompts`` prompts, each at most ``max_tokens`` long;
        ``echoed_tokens`` are the prompt tokens a completions request with ``echo`` sends
        back, once per answer to its prompt.
        """
        if prompts > self.prompts:
            raise APIError(
                400,
                f"Invalid 'prompt': array too long. Expected an array with maximum length {self.prompts}, but got "
                f"an array with length {prompts} instead.",
                param="prompt",
                code="array_above_max_length",
            )
        choices = n * prompts
        if choices > self.choices:
            raise APIError(
                400,
                f"This request asks for {choices} answers (n = {n} for each of {prompts} prompts); at most "
                f"{self.choices} are allowed per request. Lower 'n' or send fewer prompts.",
                param="n",
                code="too_many_choices",
            )
        per_answer = self.default_answer_tokens if max_tokens is None else max_tokens
        tokens = choices * per_answer + n * echoed_tokens
        if tokens > self.tokens:
            echo = f" plus {n} x {echoed_tokens} echoed prompt tokens" if echoed_tokens else ""
            raise APIError(
                400,
                f"This request may generate {tokens} tokens ({choices} answers x {per_answer} tokens{echo}); at "
                f"most {self.tokens} are allowed per request. Lower '{max_tokens_param}' or 'n'.",
                param=max_tokens_param,
                code="too_many_tokens",
            )

    def check_embeddings(self, inputs: int, dimensions: int, dimensions_requested: bool) -> None:
        """400 when an embeddings request asks for too many inputs or numbers."""
        if inputs > self.embedding_inputs:
            raise APIError(
                400,
                f"Invalid 'input': array too long. Expected an array with maximum length {self.embedding_inputs}, "
                f"but got an array with length {inputs} instead.",
                param="input",
                code="array_above_max_length",
            )
        values = inputs * dimensions
        if values > self.embedding_values:
            raise APIError(
                400,
                f"This request asks for {values} numbers ({inputs} inputs x {dimensions} dimensions); at most "
                f"{self.embedding_values} are allowed per request. Send fewer inputs"
                f"{' or fewer dimensions' if dimensions_requested else ''}.",
                param="dimensions" if dimensions_requested else "input",
                code="too_many_embedding_values",
            )
