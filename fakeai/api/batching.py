"""The engine model on the event loop: continuous batching, one timer wake-up per engine step.

With ``--max-num-seqs`` or ``--max-num-batched-tokens`` set, a chat or completions request is
not planned whole on arrival: it becomes a ``Job`` of the simulated engine (KV worker) the
router sent it to, and that engine's ``EngineScheduler`` (``fakeai.simulation.scheduler``)
decides when each of its tokens is sampled. ``ContinuousBatching`` runs every engine of this
process: an engine sleeps on the pacer until its step in progress ends (or, idle, until its
next request reaches it), then runs the steps due, samples their tokens and wakes the
requests that wait for them: one timer per engine step, however many requests run in it.

A job's ``offsets`` grow as its tokens are sampled (seconds after its arrival, like a plan's);
a stream sends them as they come (``wait``), a plain answer once the last one came. The
metrics follow the engine's states as they change: ``vllm:num_requests_running`` and
``_waiting`` of the request's (model, engine) pair, ``vllm:num_preemptions_total``, and the
engine's KV blocks in use (``KVCacheSimulator.state``); its queue and prefill times go to the
recorder with the request. Without the engine model nothing here runs.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from fakeai.simulation.scheduler import (
    ABORTED,
    FINISHED,
    PENDING,
    RUNNING,
    WAITING,
    EngineRequest,
    EngineScheduler,
    SchedulerLimits,
    StepTiming,
)

if TYPE_CHECKING:
    from fakeai.api.pacing import SleepPacer, TimerfdPacer
    from fakeai.region import EngineCells, MetricsWriter
    from fakeai.simulation.kvcache import KVCacheSimulator

__all__ = ("ContinuousBatching", "Job", "TooLarge")

_log = logging.getLogger("fakeai")

_SHIFTS = {
    (PENDING, WAITING): (0.0, 1.0, 0.0),
    (WAITING, RUNNING): (1.0, -1.0, 0.0),
    (RUNNING, WAITING): (-1.0, 1.0, 1.0),  # preempted
    (RUNNING, FINISHED): (-1.0, 0.0, 0.0),
    (RUNNING, ABORTED): (-1.0, 0.0, 0.0),
    (WAITING, ABORTED): (0.0, -1.0, 0.0),
}
"""A state change's (running, waiting, preemptions) for the request's (model, engine) pair."""


class TooLarge(Exception):
    """A request that needs more KV blocks at its peak than an engine has: it could never run."""

    def __init__(self, needed: int, limits: SchedulerLimits) -> None:
        super().__init__(needed)
        self.needed = needed
        self.limits = limits


class Job(EngineRequest):
    """A request on a simulated engine, with what the event loop needs of it."""

    __slots__ = ("cells", "loop", "waiter", "wants")

    def __init__(self, loop: _EngineLoop, cells: EngineCells | None, **request: float) -> None:
        super().__init__(**request)  # type: ignore[arg-type]
        self.loop = loop
        self.cells = cells
        """Its (model, engine) pair's metrics cells (``None``: not recorded)."""
        self.waiter: asyncio.Future[None] | None = None
        self.wants = 0
        """Tokens sampled after which ``waiter`` is woken."""

    def leave(self) -> None:
        """The request is over (answered, failed or abandoned): out of its engine, if still in it."""
        self.loop.batching.release(self)

    def times(self) -> tuple[float, float]:
        """``(queue, prefill)`` seconds, as vLLM observes them: from reaching the engine's queue
        to the first scheduling (to leaving, if never scheduled; 0 if it never reached the
        queue), and from that scheduling to the first token (NaN: none)."""
        scheduled = self.scheduled_at
        if scheduled is None:
            left = self.finished_at
            queue = left - self.ready_at if left is not None and left > self.ready_at else 0.0
            return queue, math.nan
        prefill = self.origin + self.offsets[0] - scheduled if self.offsets else math.nan
        return scheduled - self.ready_at, prefill


class _EngineLoop:
    """One engine's scheduler, woken by the pacer."""

    def __init__(self, batching: ContinuousBatching, index: int, worker: int, scheduler: EngineScheduler) -> None:
        self.batching = batching
        self.index = index
        self.worker = worker
        self.scheduler = scheduler
        scheduler.on_state = self._on_state
        scheduler.on_token = self._on_token
        self._armed = math.inf
        self._timer = 0
        """The live timer's number: a timer superseded by an earlier one is ignored when it fires."""

    def arm(self) -> None:
        """Wake up when the scheduler next has something to do (if earlier than planned)."""
        when = self.scheduler.next_event()
        if when is None or when >= self._armed:
            return
        self._armed = when
        self._timer += 1
        number = self._timer
        waiter = self.batching.pacer().wait_until(when)
        future = waiter if isinstance(waiter, asyncio.Future) else asyncio.ensure_future(waiter)
        future.add_done_callback(lambda done: self._fired(done, number))

    def _fired(self, future: asyncio.Future[None], number: int) -> None:
        if future.cancelled() or number != self._timer:
            return
        self._armed = math.inf
        self.tick()

    def tick(self) -> None:
        """Run the steps due now, then sleep until the next."""
        try:
            more = self.scheduler.advance(self.batching.clock())
            self.batching.publish(self.worker, self.batching.kv_cache.state(self.index))
        except Exception:  # never let the engine stop: its requests would wait forever
            _log.exception("the engine model of KV worker %s failed a step", self.worker)
            more = False
        if more:  # zero-latency steps: the rest in the next round, after the loop's other work
            asyncio.get_running_loop().call_soon(self.tick)
            return
        self.arm()

    def _on_state(self, request: EngineRequest, old: str, new: str) -> None:
        cells = request.cells  # type: ignore[attr-defined]
        if cells is not None:
            running, waiting, preempted = _SHIFTS.get((old, new), (0.0, 0.0, 0.0))
            if running or waiting or preempted:
                self.batching.shift(cells, running, waiting, preempted)

    @staticmethod
    def _on_token(request: EngineRequest) -> None:
        job: Job = request  # type: ignore[assignment]
        waiter = job.waiter
        if waiter is not None and (len(job.offsets) >= job.wants or job.state == FINISHED):
            job.waiter = None
            if not waiter.done():
                waiter.set_result(None)


class ContinuousBatching:
    """Every simulated engine of this process, when the engine model is on (``enabled``).

    Args:
        limits: The engines' limits (``--max-num-seqs``, ``--max-num-batched-tokens``, KV blocks).
        timing: The step-time model.
        kv_cache: The simulated workers: the engines are its workers, in its order.
        clock: Seconds on the clock the token deadlines use.
        pacer: The current pacer (it changes at start-up).
        writer: The metrics writer its gauges go to (``None``: nothing is recorded).
        publish: Publishes a KV worker's state (``MetricsRegistry.kv_publish``).
        seed: Seeds each engine's step jitter.
    """

    def __init__(
        self,
        limits: SchedulerLimits,
        timing: StepTiming,
        kv_cache: KVCacheSimulator,
        clock: Callable[[], float],
        pacer: Callable[[], TimerfdPacer | SleepPacer],
        writer: MetricsWriter | None = None,
        publish: Callable[[int, tuple[int, int, int, int]], None] | None = None,
        seed: int = 0,
    ) -> None:
        self.clock = clock
        self.pacer = pacer
        self.kv_cache = kv_cache
        self.shift = writer.shift if writer is not None else _ignore
        self.publish = publish or _ignore
        schedulers = [EngineScheduler(limits, timing, seed=seed + index) for index in range(len(kv_cache.workers))]
        self.engines = [
            _EngineLoop(self, index, worker, scheduler)
            for index, (worker, scheduler) in enumerate(zip(kv_cache.ids, schedulers))
        ]
        kv_cache.schedulers = schedulers
        self.limits = limits
        self.enabled = kv_cache.scheduled_usage = limits.enabled
        """Whether new requests go through the engine model (read once per request)."""

    def reconfigure(self, limits: SchedulerLimits, timing: StepTiming) -> None:
        """New limits and step times, from every engine's next step on (requests already in an
        engine stay in it; with the engine model turned off, new requests bypass it)."""
        self.limits = limits
        self.enabled = self.kv_cache.scheduled_usage = limits.enabled
        for engine in self.engines:
            engine.scheduler.limits = limits
            engine.scheduler.timing = timing
            engine.arm()

    def check(self, prompt_tokens: int, choices: int, tokens: int) -> None:
        """``TooLarge`` if a request of ``prompt_tokens`` and ``choices`` answers of up to ``tokens``
        tokens could need more KV blocks than an engine has (it could never run)."""
        probe = EngineRequest(origin=0.0, ready_at=0.0, prompt_tokens=prompt_tokens, choices=choices, tokens=tokens)
        scheduler = self.engines[0].scheduler
        if not scheduler.fits(probe):
            raise TooLarge(scheduler.blocks_for(probe.peak_tokens), scheduler.limits)

    def submit(self, index: int, cells: EngineCells | None, *, origin: float, ready_at: float, prompt_tokens: int,
               cached_tokens: int, choices: int, tokens: int) -> Job:
        """A request (that passed ``check``) for engine ``index``: it reaches the engine's queue at
        ``ready_at``."""
        engine = self.engines[index]
        job = Job(engine, cells, origin=origin, ready_at=ready_at, prompt_tokens=prompt_tokens,
                  cached_tokens=cached_tokens, choices=choices, tokens=tokens)
        engine.scheduler.add(job)
        engine.arm()
        return job

    def wait(self, job: Job, tokens: int) -> asyncio.Future[None]:
        """Done once ``tokens`` of the job's tokens are sampled (or it finished)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if len(job.offsets) >= tokens or job.state in (FINISHED, ABORTED):
            future.set_result(None)
            return future
        job.waiter = future
        job.wants = tokens
        return future

    def release(self, job: Job) -> None:
        """The request is over (answered, failed or abandoned): it leaves its engine now if it is
        still in it."""
        if job.state in (FINISHED, ABORTED):
            return
        engine = job.loop
        engine.scheduler.abort(job, self.clock())
        self.publish(engine.worker, self.kv_cache.state(engine.index))
        engine.arm()

    def state(self) -> list[dict[str, int]]:
        """Each engine's queue and batch now, for ``/health/detailed``."""
        return [
            {
                "worker": engine.worker,
                "running": len(engine.scheduler.running),
                "waiting": len(engine.scheduler.waiting),
                "blocks_used": engine.scheduler.used_blocks,
                "preemptions": engine.scheduler.preemptions,
                "steps": engine.scheduler.steps,
            }
            for engine in self.engines
        ]


def _ignore(*_: object) -> None:
    pass
