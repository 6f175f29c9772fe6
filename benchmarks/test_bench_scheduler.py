"""Cost of one engine step of the engine model (``fakeai.simulation.scheduler``).

An engine with ``running`` requests decoding (long answers, so none finishes, 16-token blocks:
one in 16 steps needs a block) runs steps with the hooks the server installs replaced by
counters: the figure is one step (its scheduling, its timing and its end, where every request
samples a token) divided by the requests in it, and per step. What the server adds per token
(waking the stream, writing it) is the paced path's own cost, with or without the engine model.
"""

from __future__ import annotations

import pytest

from fakeai.simulation.scheduler import EngineRequest, EngineScheduler, SchedulerLimits, StepTiming

STEPS = 200


@pytest.mark.parametrize("running", [16, 64, 256])
def test_engine_step(benchmark, report, running: int) -> None:
    tokens = [0]

    def on_token(_: EngineRequest) -> None:
        tokens[0] += 1

    def engine() -> tuple[EngineScheduler, float]:
        scheduler = EngineScheduler(SchedulerLimits(max_num_seqs=running, max_num_batched_tokens=8192),
                                    StepTiming(itl_ms=10.0), on_token=on_token)
        for index in range(running):
            scheduler.add(EngineRequest(origin=0.0, ready_at=0.0, prompt_tokens=200 + index, tokens=100_000))
        scheduler.advance(0.0)
        while scheduler.advance(1.0):  # every prefill done: only decodes from here
            pass
        return (scheduler, scheduler.step_end), {}  # type: ignore[return-value]

    def steps(scheduler: EngineScheduler, start: float) -> None:
        now = start
        for _ in range(STEPS):
            now += 0.010
            scheduler.advance(now)

    benchmark.pedantic(steps, setup=engine, rounds=20)
    report(f"engine step, {running} running, per request", benchmark, STEPS * running)
    report(f"engine step, {running} running, per step", benchmark, STEPS)
