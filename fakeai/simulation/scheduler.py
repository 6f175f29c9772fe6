"""The engine model: one simulated engine's scheduler, after vLLM's v1 scheduler.

A simulated engine (a KV worker) runs in *steps*. Each step the scheduler picks what to compute,
as ``vllm/v1/core/sched/scheduler.py`` does:

1. **Running requests first**, in the order they were admitted: each gets the tokens it still
   needs (a prefill chunk, or one decode token per choice), at most what is left of the step's
   token budget (``max_num_batched_tokens``). A request needs KV blocks for every token it has
   computed plus the new ones; when the free blocks are too few, the *last* running request is
   preempted (recompute: its blocks are freed, it loses every computed token and goes back to
   the front of the waiting queue) until the request fits or it was itself the one preempted.
2. **Then the waiting queue, FCFS**, unless a request was preempted this step: while the budget
   lasts and fewer than ``max_num_seqs`` requests run, the queue's head is admitted when the
   blocks for its first chunk are free; otherwise admission stops (the head blocks the queue).

A request's tokens: ``prompt`` tokens, then ``tokens`` tokens for each of its ``choices`` (sampled
in lockstep). To sample the next token, every token so far must be computed: its KV tokens are
``prompt + choices x sampled``. A newly admitted request starts with its cached prompt tokens
computed (at most ``prompt - 1``: the last prompt token is always computed, as in vLLM); a
resumed one with the same. A step's end samples a token for every request whose tokens are all
computed; the request finishes with its last token and frees its blocks.

A request holds ``ceil(computed tokens / block_tokens)`` blocks; the engine has
``capacity_blocks``. A request whose peak (``prompt + choices x tokens`` tokens) needs more is
refused by ``add`` (it could never run).

**Step time** (``StepTiming``): ``itl_ms x (1 + load_slowdown x (decodes - 1))`` when the step
decodes any request, plus ``prefill_ms_per_token x prefill tokens`` in the step, the first part
jittered by ``itl_jitter``, the second by ``ttft_jitter``. A request reaches the engine's queue
``ready_at`` (its arrival plus the time before prefill, ``ttft_ms``, chosen by the caller).

Nothing here knows of asyncio or the metrics: the caller passes the time (``advance(now)``)
and learns of changes through two hooks, ``on_state(request, old, new)`` for every change of
state and ``on_token(request)`` for every step in which a request sampled a token. Times are
exact: a step that ended before ``advance`` was called still ended when the model says.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable

import msgspec

__all__ = ("ABORTED", "FINISHED", "PENDING", "RUNNING", "WAITING", "EngineRequest", "EngineScheduler",
           "SchedulerLimits", "StepTiming")

PENDING, WAITING, RUNNING, FINISHED, ABORTED = "pending", "waiting", "running", "finished", "aborted"
"""A request's states: before it reaches the engine, in its queue, in its batch, done, cut."""

MAX_STEPS_PER_ADVANCE = 256
"""Steps one ``advance`` runs at most (zero-latency steps take no time: the caller comes back)."""


class SchedulerLimits(msgspec.Struct, frozen=True, kw_only=True):
    """What one engine may hold; 0 means no limit for the first two."""

    max_num_seqs: int = 0
    """Requests running at once."""
    max_num_batched_tokens: int = 0
    """Tokens computed in one step."""
    capacity_blocks: int = 16_384
    block_tokens: int = 16

    @property
    def enabled(self) -> bool:
        """Whether the engine model is on (either limit set)."""
        return bool(self.max_num_seqs or self.max_num_batched_tokens)


class StepTiming(msgspec.Struct, frozen=True, kw_only=True):
    """How long a step takes (see the module docstring)."""

    itl_ms: float = 10.0
    itl_jitter: float = 0.0
    prefill_ms_per_token: float = 0.02
    ttft_jitter: float = 0.0
    load_slowdown: float = 0.0
    zero_latency: bool = False

    def step_seconds(self, rng: random.Random, decodes: int, prefill_tokens: int) -> float:
        if self.zero_latency:
            return 0.0
        milliseconds = 0.0
        if decodes:
            milliseconds += self.itl_ms * (1.0 + self.load_slowdown * (decodes - 1)) * _jitter(rng, self.itl_jitter)
        if prefill_tokens:
            milliseconds += self.prefill_ms_per_token * prefill_tokens * _jitter(rng, self.ttft_jitter)
        return milliseconds / 1000.0


def _jitter(rng: random.Random, fraction: float) -> float:
    return 1.0 + fraction * (2.0 * rng.random() - 1.0) if fraction else 1.0


class EngineRequest:
    """One request on an engine. ``offsets`` grows as its tokens are sampled: token ``i`` (of
    every choice) came ``offsets[i]`` seconds after ``origin``."""

    __slots__ = ("blocks", "cached_tokens", "choices", "computed", "finished_at", "offsets", "origin",
                 "preemptions", "prompt_tokens", "ready_at", "scheduled_at", "state", "tokens", "_order")

    def __init__(self, *, origin: float, ready_at: float, prompt_tokens: int, cached_tokens: int = 0,
                 choices: int = 1, tokens: int = 1) -> None:
        self.origin = origin
        """When the request arrived (its token offsets count from here)."""
        self.ready_at = ready_at
        """When it reaches the engine's queue."""
        self.prompt_tokens = max(int(prompt_tokens), 1)
        self.cached_tokens = min(max(int(cached_tokens), 0), self.prompt_tokens - 1)
        """Prompt tokens found in the prefix cache: computed on admission (the last one never is)."""
        self.choices = max(int(choices), 1)
        self.tokens = max(int(tokens), 1)
        """Tokens it samples (for each choice, in lockstep: its longest choice's)."""
        self.offsets: list[float] = []
        self.state = PENDING
        self.computed = 0
        self.blocks = 0
        self.scheduled_at: float | None = None
        """When it was first admitted to the batch (vLLM's scheduled time)."""
        self.finished_at: float | None = None
        self.preemptions = 0
        self._order = 0

    @property
    def sampled(self) -> int:
        return len(self.offsets)

    @property
    def kv_tokens(self) -> int:
        """Tokens that must be computed before its next token is sampled."""
        return self.prompt_tokens + self.choices * len(self.offsets)

    @property
    def peak_tokens(self) -> int:
        """Its KV tokens before its last sample: the most it ever holds."""
        return self.prompt_tokens + self.choices * (self.tokens - 1)


class EngineScheduler:
    """One simulated engine: its queue, its batch, its blocks and its steps."""

    def __init__(
        self,
        limits: SchedulerLimits,
        timing: StepTiming,
        *,
        seed: int = 0,
        on_state: Callable[[EngineRequest, str, str], None] | None = None,
        on_token: Callable[[EngineRequest], None] | None = None,
    ) -> None:
        self._limits = limits
        self.timing = timing
        """Read at every step: a change applies from the next one."""
        self.on_state = on_state
        self.on_token = on_token
        self.running: list[EngineRequest] = []
        self.waiting: deque[EngineRequest] = deque()
        self._pending: list[tuple[float, int, EngineRequest]] = []
        self._order = itertools.count()
        self._rng = random.Random(seed)
        self.used_blocks = 0
        self.preemptions = 0
        """Preemptions since start."""
        self.steps = 0
        self.free_at = 0.0
        """When the last step ended: the next one starts then (or when work arrives)."""
        self.step_end: float | None = None
        """When the step in progress ends (``None``: none is)."""
        self._batch: list[tuple[EngineRequest, int]] = []
        self._stalled = False
        """Nothing could be scheduled (cannot happen with requests that fit): no step until a
        request comes or goes, or the limits change."""

    @property
    def limits(self) -> SchedulerLimits:
        """Read at every step: a change applies from the next one."""
        return self._limits

    @limits.setter
    def limits(self, limits: SchedulerLimits) -> None:
        self._limits = limits
        self._stalled = False

    # -- requests --------------------------------------------------------------------------

    def blocks_for(self, tokens: int) -> int:
        block = self.limits.block_tokens
        return -(-tokens // block)

    def fits(self, request: EngineRequest) -> bool:
        """Whether the request's peak fits this engine at all."""
        return self.blocks_for(request.peak_tokens) <= self.limits.capacity_blocks

    def add(self, request: EngineRequest) -> None:
        """A request for this engine: it joins the queue at ``request.ready_at``."""
        if not self.fits(request):
            raise ValueError(f"the request needs {self.blocks_for(request.peak_tokens)} KV blocks; the engine has "
                             f"{self.limits.capacity_blocks}")
        request._order = next(self._order)
        heapq.heappush(self._pending, (request.ready_at, request._order, request))
        self._stalled = False

    def abort(self, request: EngineRequest, now: float) -> None:
        """The request is gone (its client left, or it failed): it leaves the engine now."""
        state = request.state
        if state in (FINISHED, ABORTED):
            return
        if state == WAITING:
            self.waiting.remove(request)
        elif state == RUNNING:
            self.running.remove(request)
            self._free(request)
        # a pending request is skipped when it comes up; one in the step in progress when it ends
        request.finished_at = now
        self._stalled = False
        self._set(request, ABORTED)

    def _set(self, request: EngineRequest, state: str) -> None:
        old = request.state
        request.state = state
        if self.on_state is not None:
            self.on_state(request, old, state)

    def _free(self, request: EngineRequest) -> None:
        self.used_blocks -= request.blocks
        request.blocks = 0

    # -- time ------------------------------------------------------------------------------

    def next_event(self) -> float | None:
        """When the engine next has something to do (``None``: nothing until a request comes)."""
        if self.step_end is not None:
            return self.step_end
        if self._stalled:
            return None
        if self.running or self.waiting:
            return self.free_at
        pending = self._pending
        while pending and pending[0][2].state == ABORTED:
            heapq.heappop(pending)
        if pending:
            return max(self.free_at, pending[0][0])
        return None

    def advance(self, now: float, max_steps: int = MAX_STEPS_PER_ADVANCE) -> bool:
        """Run every step that ends by ``now`` (at most ``max_steps``) and start the next one;
        whether steps are still due (call again at once)."""
        for _ in range(max_steps):
            if self.step_end is None and not self._start_step(now):
                return False
            if self.step_end > now:  # type: ignore[operator]
                return False
            self._end_step()
        due = self.next_event()
        return due is not None and due <= now

    def _start_step(self, now: float) -> bool:
        """Start a step at ``free_at`` (or when the first request came, if the engine was idle);
        False when there is nothing to run by ``now``."""
        if self._stalled:
            return False
        start = self.free_at
        pending = self._pending
        if not self.running and not self.waiting:
            while pending and pending[0][2].state == ABORTED:
                heapq.heappop(pending)
            if not pending or pending[0][0] > now:
                return False
            start = max(start, pending[0][0])
        while pending and pending[0][0] <= start:
            request = heapq.heappop(pending)[2]
            if request.state == PENDING:
                self.waiting.append(request)
                self._set(request, WAITING)
        batch, decodes, prefill_tokens = self._schedule(start)
        if not batch:  # nothing could be scheduled (cannot happen with requests that fit)
            self._stalled = True
            return False
        self._batch = batch
        self.free_at = start
        self.step_end = start + self.timing.step_seconds(self._rng, decodes, prefill_tokens)
        return True

    # -- the scheduler -------------------------------------------------------------------------

    def _schedule(self, start: float) -> tuple[list[tuple[EngineRequest, int]], int, int]:
        """The step's batch ``[(request, new tokens)]``, its decoding requests and prefill tokens."""
        limits = self.limits
        budget = limits.max_num_batched_tokens or 1 << 62
        capacity = limits.capacity_blocks
        batch: list[tuple[EngineRequest, int]] = []
        decodes = prefill_tokens = 0
        preempted = False
        running = self.running
        block = limits.block_tokens
        index = 0
        while index < len(running) and budget > 0:
            request = running[index]
            sampled = len(request.offsets)
            remaining = request.prompt_tokens + request.choices * sampled - request.computed
            new = remaining if remaining < budget else budget
            needed = (request.computed + new + block - 1) // block - request.blocks
            if needed > 0:  # a decode needs a block once every block_tokens tokens
                while needed > capacity - self.used_blocks:
                    # the last running request has not been scheduled in this step (the loop
                    # goes front to back), unless it is this one
                    victim = running.pop()
                    self._preempt(victim)
                    preempted = True
                    if victim is request:
                        break
                if request.state is not RUNNING:  # preempted itself: nothing else fits either
                    break
                self.used_blocks += needed
                request.blocks += needed
            batch.append((request, new))
            budget -= new
            if sampled and remaining <= request.choices:
                decodes += 1
            else:
                prefill_tokens += new
            index += 1
        if not preempted:
            waiting = self.waiting
            max_seqs = limits.max_num_seqs or 1 << 62
            while waiting and budget > 0 and len(running) < max_seqs:
                request = waiting[0]
                computed = min(request.cached_tokens, request.kv_tokens - 1)
                new = min(request.kv_tokens - computed, budget)
                needed = self.blocks_for(computed + new)
                if needed > capacity - self.used_blocks:
                    break
                waiting.popleft()
                request.computed = computed
                request.blocks = needed
                self.used_blocks += needed
                running.append(request)
                if request.scheduled_at is None:
                    request.scheduled_at = start
                self._set(request, RUNNING)
                batch.append((request, new))
                budget -= new
                prefill_tokens += new
        return batch, decodes, prefill_tokens

    def _preempt(self, request: EngineRequest) -> None:
        self._free(request)
        request.computed = 0
        request.preemptions += 1
        self.preemptions += 1
        self.waiting.appendleft(request)
        self._set(request, WAITING)

    def _end_step(self) -> None:
        end = self.step_end
        assert end is not None
        batch = self._batch
        self._batch = []
        self.step_end = None
        self.free_at = end
        self.steps += 1
        on_token = self.on_token
        for request, new in batch:
            if request.state is not RUNNING:  # aborted during the step
                continue
            computed = request.computed + new
            request.computed = computed
            offsets = request.offsets
            if computed < request.prompt_tokens + request.choices * len(offsets):  # a prefill chunk: more to do
                continue
            offsets.append(end - request.origin)
            if len(offsets) >= request.tokens:
                self.running.remove(request)
                self._free(request)
                request.finished_at = end
                self._set(request, FINISHED)
            if on_token is not None:
                on_token(request)
