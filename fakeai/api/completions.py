"""``POST /v1/completions`` (the legacy text completions API)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.handlers import ASGIRouteHandler

from fakeai.api.errors import APIError
from fakeai.api.chat import check_stream_options
from fakeai.api.generation import WHOLE_ANSWER_TOKENS, admit, answer_parts, generate, read_request
from fakeai.api.rich import CompletionRender
from fakeai.api.routes import asgi
from fakeai.api.schemas import Completion, CompletionChoice, CompletionRequest, Usage
from fakeai.api.streaming import COMPLETION_CHUNKS

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from fakeai.api.engine import Engine, Plan
    from fakeai.metrics import MetricsRegistry
    from fakeai.simulation.kvcache import Prompt

__all__ = ("completions_handler", "prompt_parts", "prompt_tokens")


def prompt_parts(prompt: str | list[Any], field: str) -> list[str | list[int]]:
    """The prompts of a request: texts or token-id lists, never a mix (400 otherwise)."""
    if isinstance(prompt, str):
        return [prompt]
    kinds = set(map(type, prompt))  # one pass in C: a body's millions of token ids cost milliseconds
    if kinds == {int}:
        return [prompt]
    if kinds == {str} or kinds == {list}:
        return prompt
    raise APIError(
        400,
        f"'{field}' must be a string, a list of strings, a list of token ids or a list of token-id lists, "
        "not a mix of them.",
        param=field,
        code="invalid_value",
    )


def prompt_tokens(engine: Engine, parts: list[str | list[int]]) -> tuple[int | None, list[int], list[Prompt]]:
    """The prompts' total tokens (``None``: more than one request may send, counted no
    further), each prompt's tokens and what the KV cache hashes for it (token ids are exact)."""
    budget = engine.limits.prompt_tokens
    total = 0
    counts: list[int] = []
    routed: list[Prompt] = []
    for part in parts:
        if isinstance(part, str):
            tokens, prompt = engine.tokenizer.tokens(part, max(budget - total, 0))
            if tokens is None:
                return None, counts, routed
        else:
            tokens, prompt = len(part), part
        total += tokens
        counts.append(tokens)
        routed.append(prompt)
    return total, counts, routed


def completions_handler(engine: Engine, registry: MetricsRegistry, max_body_bytes: int) -> ASGIRouteHandler:
    decode = msgspec.json.Decoder(CompletionRequest).decode
    encode = msgspec.json.Encoder().encode

    @asgi("/v1/completions", copy_scope=False)
    async def create_completion(scope: Scope, receive: Receive, send: Send) -> None:
        body, exchange = await read_request(scope, receive, decode, max_body_bytes)
        prompts = prompt_parts(body.prompt, "prompt")
        rich = None
        if body.max_tokens == 0 and not body.echo:
            raise APIError(400, "Invalid 'max_tokens': 0 is allowed only with 'echo' (to score the prompt).",
                           param="max_tokens", code="invalid_value")
        if body.stream_options is not None:
            check_stream_options(body)
        continuous = bool(body.stream_options and body.stream_options.continuous_usage_stats)
        if body.logprobs is not None or continuous or (body.echo and body.stream):
            rich = _render(engine, body, prompts, continuous)
            echoes = [("" if echo is None else echo[0]) for echo in rich.echoes]
        elif body.echo:
            echoes = [prompt if isinstance(prompt, str) else "".join(engine.tokenizer.token_texts(prompt))
                      for prompt in prompts]
        else:
            echoes = [""] * len(prompts)
        echoed = any(echoes)
        # Several prompts are answered in one response: choice i * n + j is answer j to
        # prompt i, as OpenAI numbers them. The context limit applies to the longest prompt.
        counted, tokens_per_prompt, routed = prompt_tokens(engine, prompts)
        engine.check_model(body.model)
        total = engine.limits.counted_prompt_tokens(counted, "prompt")
        engine.check_context(max(tokens_per_prompt), body.max_tokens)
        engine.limits.check_prompt_tokens(total, "prompt")
        engine.limits.check_generation(
            n=body.n,
            prompts=len(prompts),
            max_tokens=body.max_tokens,
            echoed_tokens=sum(tokens for tokens, echo in zip(tokens_per_prompt, echoes) if echo),
        )
        admit(engine, registry, exchange, body.model, "/v1/completions")

        def render(plan: Plan, usage: Usage) -> Iterable[bytes]:
            choices = (
                CompletionChoice(
                    index=index,
                    text=echoes[index // body.n] + engine.choice_text(choice),
                    finish_reason=choice.finish_reason,
                )
                for index, choice in enumerate(plan.choices)
            )
            if plan.completion_tokens <= WHOLE_ANSWER_TOKENS and not echoed:
                whole = Completion(
                    id=plan.id, created=plan.created, model=plan.model, choices=list(choices), usage=usage
                )
                return (encode(whole),)
            envelope = encode(Completion(id=plan.id, created=plan.created, model=plan.model, choices=[], usage=usage))
            return answer_parts(envelope, b'"choices"', map(encode, choices))

        await generate(
            receive,
            engine=engine,
            registry=registry,
            exchange=exchange,
            body=body,
            id_prefix="cmpl",
            prompts=routed,
            tokens_per_prompt=tokens_per_prompt,
            n=body.n * len(prompts),
            max_tokens=body.max_tokens,
            chunks=COMPLETION_CHUNKS,
            render=render if rich is None else rich.parts,
            rich=rich,
        )

    return create_completion


def _render(engine: Engine, body: CompletionRequest, prompts: list[str | list[int]], continuous: bool) -> CompletionRender:
    """The render of a request with ``logprobs``, a streamed ``echo`` or usage on every chunk;
    its echoes hold each prompt's text and (for log probabilities) token texts."""
    echoes: list[tuple[str, list[str]] | None] = []
    for prompt in prompts:
        if not body.echo:
            echoes.append(None)
            continue
        tokens = engine.tokenizer.token_texts(prompt) if (body.logprobs is not None or not isinstance(prompt, str)) \
            else []
        echoes.append((prompt if isinstance(prompt, str) else "".join(tokens), tokens))
    return CompletionRender(engine, body.n, echoes, body.logprobs, continuous)
