"""The simulated model: from a parsed request to a plan of what to send and when.

``Engine`` owns the simulation parts configured by the settings (text, answer lengths,
latency, injected errors) and the random source they draw from. The number of requests in
flight (the latency model's load) is the metrics registry's, read through ``in_flight``.
``kv_cache`` routes each generation request to a simulated worker and says how much of its
prompt that worker had cached.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from fakeai.api.batching import ContinuousBatching
from fakeai.api.errors import APIError
from fakeai.api.limits import RequestLimits
from fakeai.api.pacing import SleepPacer, TimerfdPacer, new_pacer
from fakeai.api.readiness import Readiness
from fakeai.config import Settings
from fakeai.simulation.answers import AnswerLength
from fakeai.simulation.errors import ErrorInjector, InjectedError
from fakeai.simulation.kvcache import KVCacheSimulator
from fakeai.simulation.latency import LatencyModel
from fakeai.simulation.scheduler import SchedulerLimits, StepTiming
from fakeai.simulation.text import TextSource
from fakeai.simulation.tokenizers import PromptTokenizer

if TYPE_CHECKING:
    from fakeai.api.shaping import ChatShaping, Output
    from fakeai.region import MetricsWriter

__all__ = ("Choice", "Engine", "Plan")

OFFSETS_PER_STEP = 4096
"""Token deadlines drawn between two returns to the event loop (about 2 ms of work): a long
answer is planned in steps, so planning it never holds up the other requests."""


class Choice(msgspec.Struct, kw_only=True):
    """One generated answer: ``tokens`` tokens of the text from token ``start``, or (``output``
    set: a shaped answer, ``fakeai.api.shaping``) a reasoning part, tool calls or JSON content
    too, ``tokens`` of them all."""

    start: int
    tokens: int
    finish_reason: str
    output: Output | None = None
    stop_sequence: str | None = None
    """The stop sequence that ended it, if one did (Anthropic's ``stop_sequence``)."""


class Plan(msgspec.Struct, kw_only=True):
    """Everything a handler needs to answer one generation request."""

    id: str
    created: int
    model: str
    prompt_tokens: int
    cached_tokens: int
    """Prompt tokens the worker had cached (``usage.prompt_tokens_details.cached_tokens``)."""
    choices: list[Choice]
    offsets: list[float]
    """Seconds after arrival at which token ``i`` of every choice is due."""
    completion_tokens: int
    """Tokens of every choice together."""
    stream_break: int | None = None
    """Tokens sent (per choice) before an injected mid-stream error, if one was drawn."""
    job: Any = None
    """With the engine model, its ``Job``: ``offsets`` (its ``offsets``) grow as its engine
    samples the tokens, up to ``job.tokens``."""


class Engine:
    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float],
        in_flight: Callable[[], int],
        kv_worker_ids: Sequence[int] | None = None,
        request_ticket: Callable[[], int] | None = None,
        metrics_writer: MetricsWriter | None = None,
        kv_publish: Callable[[int, tuple[int, int, int, int]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._in_flight = in_flight
        self.pacer: TimerfdPacer | SleepPacer = SleepPacer(clock)
        """Wakes waiting answers at their deadlines; the precise one is set at start-up."""
        self.text = TextSource()
        self.tokenizer = PromptTokenizer(settings.tokenizer)
        """Counts prompt tokens (and gives the KV cache what to hash)."""
        self.models = tuple(settings.models)
        self._known_models = frozenset(settings.models)
        self._accept_any_model = settings.accept_any_model
        self.latency = _latency(settings)
        self.lengths = AnswerLength(
            mean=settings.answer_tokens_mean, stddev=settings.answer_tokens_stddev, maximum=settings.answer_tokens_max
        )
        self.errors = ErrorInjector(
            rate=settings.error_rate,
            kinds=tuple(settings.error_kinds),
            fail_first=settings.fail_first,
            stream_rate=settings.stream_error_rate,
            seed=settings.seed,
            ticket=request_ticket,
        )
        kv_worker_ids = list(range(settings.kv_workers)) if kv_worker_ids is None else list(kv_worker_ids)
        self.kv_cache = KVCacheSimulator(
            workers=len(kv_worker_ids),
            ids=kv_worker_ids,
            capacity_blocks=settings.kv_capacity_blocks,
            block_tokens=settings.kv_block_tokens,
            policy=settings.routing_policy,
            overlap_weight=settings.routing_overlap_weight,
            load_weight=settings.routing_load_weight,
            seed=settings.seed,
        )
        """The simulated workers' prefix caches and the router: prefill skips cached tokens."""
        self.batching = ContinuousBatching(
            _limits(settings), _timing(settings), self.kv_cache, clock, lambda: self.pacer, metrics_writer,
            kv_publish, settings.seed,
        )
        """The engine model: each simulated worker's scheduler (on with --max-num-seqs or
        --max-num-batched-tokens)."""
        self.max_context_tokens = settings.max_context_tokens
        self.limits = RequestLimits(settings)
        """How much one request may ask for (checked by the handlers before anything else)."""
        self.readiness = Readiness(clock, -math.inf)
        """Whether the simulated model has loaded (``--startup-seconds``; the app sets it)."""
        self.observe_lateness: Callable[[float], None] | None = None
        """Told how late the pacer served each waiter, in seconds (the app sets it)."""
        self.poll_control: Callable[[], None] = _nothing
        """Applies a runtime change another process made (``RuntimeControl.poll``; the app sets it)."""
        self._rng = random.Random(settings.seed)
        self._ids = itertools.count()
        self._id_prefix = os.urandom(6).hex()

    def start(self) -> None:
        """Called on the running event loop at start-up."""
        self.pacer = new_pacer(self.clock, self.observe_lateness)

    def stop(self) -> None:
        self.pacer.close()
        self.pacer = SleepPacer(self.clock)

    def next_deadline(self) -> float:
        """The earliest paced token's deadline (``time.monotonic``; infinity: none known)."""
        return self.pacer.next_deadline()

    def reconfigure(self, settings: Settings) -> None:
        """Apply a running server's new settings: the latency model, error injection and the
        engine model's limits and step times (``fakeai.api.control``); the rest stays."""
        self.settings = settings
        self.latency = _latency(settings)
        self.errors.reconfigure(rate=settings.error_rate, kinds=tuple(settings.error_kinds),
                                stream_rate=settings.stream_error_rate)
        self.batching.reconfigure(_limits(settings), _timing(settings))

    # -- admission ---------------------------------------------------------------------------

    def check_model(self, model: str) -> None:
        if model not in self._known_models and not self._accept_any_model:
            raise APIError(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )

    def injected_error(self) -> APIError | None:
        """The error this request is answered with, if error injection picks one."""
        if not self.errors.active:
            return None
        picked = self.errors.pick()
        return None if picked is None else self.as_api_error(picked)

    def as_api_error(self, error: InjectedError) -> APIError:
        headers = {"Retry-After": str(self.settings.retry_after_seconds)} if error.retry_after else None
        return APIError(
            error.status, error.message, type=error.type, param=error.param, code=error.code, headers=headers
        )

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{self._id_prefix}{next(self._ids):x}"

    def check_context(self, context_tokens: int, max_tokens: int | None, param: str = "messages") -> None:
        """400 when the (longest) prompt plus ``max_tokens`` exceeds the context length (``param``:
        the request's field holding the prompt)."""
        requested = context_tokens + (max_tokens or 0)
        if requested > self.max_context_tokens:
            raise APIError(
                400,
                f"This model's maximum context length is {self.max_context_tokens} tokens. However, you "
                f"requested {requested} tokens ({context_tokens} in the {param}, {max_tokens or 0} in the "
                f"completion). Please reduce the length of the {param} or completion.",
                param=param,
                code="context_length_exceeded",
            )

    # -- planning ----------------------------------------------------------------------------

    async def plan(
        self,
        *,
        id_prefix: str,
        model: str,
        prompt_tokens: int,
        cached_tokens: int,
        uncached_prompt_tokens: int,
        n: int,
        max_tokens: int | None,
        min_tokens: int,
        ignore_eos: bool,
        stop: str | list[str] | None,
        seed: int | None,
        stream: bool,
        shaping: ChatShaping | None = None,
        timed: bool = True,
    ) -> Plan:
        """Draw the answer of one request (whose context ``check_context`` has accepted and whose
        size ``limits`` has), returning to the event loop between steps of a long plan.
        ``shaping`` draws each choice of a chat request that asked for more than prose;
        ``timed=False``: no token times (the engine model samples them)."""
        rng = self._rng if seed is None else random.Random(seed)
        stops = [stop] if isinstance(stop, str) else stop
        choices = []
        if shaping is not None:  # (a loop: a comprehension would make this function's locals closure cells)
            for _ in range(n):
                choices.append(shaping.draw(self, rng, max_tokens, min_tokens, ignore_eos, stops))
        else:
            for _ in range(n):
                tokens, finish_reason = self.lengths.draw(rng, max_tokens, min_tokens, ignore_eos)
                choice = Choice(start=self.text.start(rng), tokens=tokens, finish_reason=finish_reason)
                if stops and not ignore_eos:
                    self.apply_stops(choice, stops)
                choices.append(choice)
        longest = total = 0
        for choice in choices:
            total += choice.tokens
            if choice.tokens > longest:
                longest = choice.tokens
        offsets: list[float] = []
        if timed:
            load = self._load()
            offsets = self.latency.token_offsets(rng, min(longest, OFFSETS_PER_STEP), uncached_prompt_tokens, load)
            while len(offsets) < longest:
                await asyncio.sleep(0)
                self.latency.extend_offsets(rng, offsets, min(longest - len(offsets), OFFSETS_PER_STEP), load)
        stream_break = self.errors.stream_break(longest) if stream and self.errors.active else None
        return Plan(
            id=self.new_id(id_prefix),
            created=int(time.time()),
            model=model,
            prompt_tokens=prompt_tokens,
            cached_tokens=cached_tokens,
            choices=choices,
            offsets=offsets,
            completion_tokens=total,
            stream_break=stream_break,
        )

    def _load(self) -> int:
        """Requests in flight, read only when the latency model uses them."""
        return self._in_flight() if self.latency.load_slowdown else 1

    def queue_delay(self) -> float:
        """With the engine model: seconds from a request's arrival until it reaches its engine's
        queue (``--ttft-ms``, the time to first token before prefill, jittered)."""
        return self.latency.ttft(self._rng, 0)

    def prefill_seconds(self, prompt_tokens: int) -> float:
        """How long reading ``prompt_tokens`` takes (an embedding request's whole latency)."""
        return self.latency.ttft(self._rng, prompt_tokens, self._load())

    def apply_stops(self, choice: Choice, stops: list[str]) -> None:
        """End ``choice`` before the first of ``stops`` it contains (the schema refuses empty ones).

        The answer keeps its whole tokens before the stop sequence: the text never holds the
        sequence and is still whole tokens (a sequence starting mid-token drops that token's
        beginning too; one starting at a word or punctuation mark cuts exactly there, as vLLM
        does). The answer repeats the prose, so a stop sequence that occurs at all first
        occurs within one period of it (plus the sequence's length; a token has at least one
        character): only that much is searched, however long the answer.
        """
        longest_stop = max(len(s) for s in stops)
        searched = min(choice.tokens, self.text.size + longest_stop)
        text = self.text.text(choice.start, searched)
        found = [(index, stop) for stop in stops if (index := text.find(stop)) >= 0]
        if not found:
            return
        cut, stop = min(found, key=lambda hit: hit[0])  # the first to occur; of those, the first given
        choice.tokens = self.text.whole_tokens(choice.start, cut)
        choice.finish_reason = "stop"
        choice.stop_sequence = stop

    def choice_text(self, choice: Choice) -> str:
        return self.text.text(choice.start, choice.tokens)

    def token_json(self, choice: Choice, index: int) -> bytes:
        """Token ``index`` of ``choice`` as a JSON string literal."""
        return self.text.token_json(choice.start, index)


def _latency(settings: Settings) -> LatencyModel:
    return LatencyModel(
        ttft_ms=settings.ttft_ms,
        prefill_ms_per_token=settings.prefill_ms_per_token,
        ttft_jitter=settings.ttft_jitter,
        itl_ms=settings.itl_ms,
        itl_jitter=settings.itl_jitter,
        load_slowdown=settings.load_slowdown,
        zero_latency=settings.zero_latency,
    )


def _limits(settings: Settings) -> SchedulerLimits:
    return SchedulerLimits(
        max_num_seqs=settings.max_num_seqs,
        max_num_batched_tokens=settings.max_num_batched_tokens,
        capacity_blocks=settings.kv_capacity_blocks,
        block_tokens=settings.kv_block_tokens,
    )


def _timing(settings: Settings) -> StepTiming:
    return StepTiming(
        itl_ms=settings.itl_ms,
        itl_jitter=settings.itl_jitter,
        prefill_ms_per_token=settings.prefill_ms_per_token,
        ttft_jitter=settings.ttft_jitter,
        load_slowdown=settings.load_slowdown,
        zero_latency=settings.zero_latency,
    )


def _nothing() -> None:
    pass
