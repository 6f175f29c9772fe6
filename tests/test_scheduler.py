"""The engine model's scheduler against schedules computed by hand.

Each test drives one ``EngineScheduler`` with explicit times (the clock is whatever ``advance``
is given) and checks who runs, who waits, and when each token is due. Step time is
``itl_ms x (1 + load_slowdown x (decodes - 1)) + prefill_ms_per_token x prefill tokens``; the
tests use no jitter and round numbers (1 ms a prefill token, 10 ms a decode step).
"""

from __future__ import annotations

import pytest

from fakeai.simulation.scheduler import (
    ABORTED,
    FINISHED,
    RUNNING,
    WAITING,
    EngineRequest,
    EngineScheduler,
    SchedulerLimits,
    StepTiming,
)

TIMING = StepTiming(itl_ms=10.0, prefill_ms_per_token=1.0)


def request(prompt: int, tokens: int, *, at: float = 0.0, ready: float | None = None, cached: int = 0,
            choices: int = 1) -> EngineRequest:
    return EngineRequest(origin=at, ready_at=at if ready is None else ready, prompt_tokens=prompt,
                         cached_tokens=cached, choices=choices, tokens=tokens)


def times(req: EngineRequest) -> list[float]:
    """Absolute times of its tokens, rounded to the microsecond."""
    return [round(req.origin + offset, 6) for offset in req.offsets]


def run(engine: EngineScheduler, until: float = 10.0) -> None:
    while engine.advance(until):
        pass


def test_max_num_seqs_holds_the_third_request_until_a_slot_frees():
    engine = EngineScheduler(SchedulerLimits(max_num_seqs=2), TIMING)
    a, b, c = request(10, 3), request(10, 3), request(10, 3)
    for r in (a, b, c):
        engine.add(r)
    engine.advance(0.025)
    # step 1 (0 -> 20 ms): a and b prefill 10 tokens each; step 2 (20 -> 30 ms) is in progress
    assert engine.running == [a, b] and list(engine.waiting) == [c]
    assert times(a) == times(b) == [0.02]
    assert engine.step_end == pytest.approx(0.03)
    run(engine)
    # step 2 and 3 decode a and b (10 ms each, no slowdown); c is admitted at 40 ms, prefills
    # its 10 tokens (10 ms) and decodes twice
    assert times(a) == times(b) == [0.02, 0.03, 0.04]
    assert times(c) == [0.05, 0.06, 0.07]
    assert (a.scheduled_at, c.scheduled_at) == (0.0, pytest.approx(0.04))
    assert all(r.state == FINISHED for r in (a, b, c)) and engine.used_blocks == 0


def test_chunked_prefill_shares_steps_with_decodes_under_the_token_budget():
    engine = EngineScheduler(SchedulerLimits(max_num_seqs=4, max_num_batched_tokens=8), TIMING)
    a = request(4, 4)
    b = request(20, 2, at=0.0, ready=0.015)  # 15 ms before its prefill (ttft_ms)
    engine.add(a)
    engine.add(b)
    engine.advance(0.020)
    # a: prefill 4 tokens (0 -> 4 ms), decodes (4 -> 14, 14 -> 24 ms); b became ready at 15 ms,
    # during the third step, so it waits for the fourth
    assert times(a) == [0.004, 0.014]
    assert b.state == "pending" or b.state == WAITING
    run(engine)
    # step 4 (24 -> 41 ms): a decodes 1 token, b prefills a chunk of the 7 left: 10 + 7 ms;
    # step 5: 8 more (8 ms), step 6: the last 5 (5 ms) and b's first token; then one decode
    assert times(a) == [0.004, 0.014, 0.024, 0.041]
    assert times(b) == [0.054, 0.064]
    assert b.scheduled_at == pytest.approx(0.024)
    assert b.scheduled_at - b.ready_at == pytest.approx(0.009)  # vLLM's queue time
    assert engine.steps == 7


def test_a_request_that_cannot_get_a_block_preempts_the_last_one_which_recomputes():
    # 4 blocks of 4 tokens; a and b prefill 7 tokens (2 blocks each: the engine is full)
    engine = EngineScheduler(SchedulerLimits(max_num_seqs=8, capacity_blocks=4, block_tokens=4), TIMING)
    states: list[tuple[str, str]] = []
    engine.on_state = lambda req, old, new: states.append((old, new)) if req is b else None
    a, b = request(7, 6), request(7, 6)
    engine.add(a)
    engine.add(b)
    engine.advance(0.040)
    # 0 -> 14 ms: both prefill (first tokens); 14 -> 24: both decode. At 24 ms a's 9th token
    # needs a third block: b (the last running) is preempted and its 2 blocks freed; a decodes
    # alone (24 -> 34); at 34 ms b's recompute (7 prompt + 2 sampled tokens: 3 blocks) does not
    # fit beside a's 3, so b waits
    assert times(a) == [0.014, 0.024, 0.034]
    assert times(b) == [0.014, 0.024]
    assert engine.running == [a] and list(engine.waiting) == [b]
    assert (engine.preemptions, b.preemptions, engine.used_blocks) == (1, 1, 3)
    run(engine)
    # a decodes until 64 ms and frees its blocks; b recomputes its 9 tokens (9 ms) and samples
    # its third token, then decodes the rest
    assert times(a) == [0.014, 0.024, 0.034, 0.044, 0.054, 0.064]
    assert times(b) == [0.014, 0.024, 0.073, 0.083, 0.093, 0.103]
    assert states == [("pending", WAITING), (WAITING, RUNNING), (RUNNING, WAITING), (WAITING, RUNNING),
                      (RUNNING, FINISHED)]
    assert b.scheduled_at == 0.0  # the first scheduling, as vLLM's queue time counts it
    assert engine.used_blocks == 0


def test_kv_admission_keeps_the_queue_head_waiting_and_blocks_those_behind_it():
    engine = EngineScheduler(SchedulerLimits(max_num_seqs=8, capacity_blocks=5, block_tokens=4), TIMING)
    a = request(12, 2)  # 3 blocks
    b = request(12, 1)  # 3 blocks: does not fit beside a
    c = request(4, 1)  # 1 block: would fit, but FCFS keeps it behind b
    for r in (a, b, c):
        engine.add(r)
    engine.advance(0.0)
    assert engine.running == [a] and list(engine.waiting) == [b, c]
    run(engine)
    # a: prefill 12 (12 ms), decode (10 ms); then b and c together: 16 prefill tokens
    assert times(a) == [0.012, 0.022]
    assert times(b) == times(c) == [0.038]


def test_a_step_grows_with_the_decoding_batch_and_the_prefill_tokens_in_it():
    timing = StepTiming(itl_ms=10.0, prefill_ms_per_token=0.5, load_slowdown=0.5)
    engine = EngineScheduler(SchedulerLimits(max_num_seqs=8), timing)
    first = [request(10, 3) for _ in range(3)]
    for r in first:
        engine.add(r)
    late = request(40, 1, at=0.016)
    engine.add(late)
    run(engine)
    # 0 -> 15 ms: prefill 30 tokens x 0.5 ms. 15 -> 35: 3 decodes, 10 x (1 + 0.5 x 2) = 20 ms;
    # the late request (ready at 16 ms) joins the next step: 3 decodes + 40 prefill tokens,
    # 20 + 20 = 40 ms
    assert times(first[0]) == [0.015, 0.035, 0.075]
    assert times(late) == [0.075]


def test_cached_prompt_tokens_are_not_prefilled_but_the_last_one_always_is():
    engine = EngineScheduler(SchedulerLimits(max_num_seqs=1), TIMING)
    partly, wholly = request(100, 1, cached=64), request(100, 1, cached=100)
    engine.add(partly)
    engine.add(wholly)
    run(engine)
    assert times(partly) == [0.036]  # 36 uncached tokens
    assert times(wholly) == [0.037]  # one token computed to sample from


def test_choices_decode_in_lockstep_and_hold_blocks_for_each():
    engine = EngineScheduler(SchedulerLimits(max_num_seqs=1, max_num_batched_tokens=4, block_tokens=4), TIMING)
    req = request(4, 3, choices=3)
    engine.add(req)
    engine.advance(0.0045)
    # prefill 4 tokens (one block); the decode step begun at 4 ms computes the 3 choices' first
    # tokens (7 tokens: a second block)
    assert times(req) == [0.004]
    assert engine.used_blocks == 2
    run(engine)
    assert times(req) == [0.004, 0.014, 0.024]
    assert req.peak_tokens == 4 + 3 * 2


def test_an_aborted_request_frees_its_slot_and_blocks_at_once():
    engine = EngineScheduler(SchedulerLimits(max_num_seqs=1), TIMING)
    a, b = request(16, 100), request(16, 1)
    engine.add(a)
    engine.add(b)
    engine.advance(0.05)
    assert engine.running == [a] and engine.used_blocks == 2
    engine.abort(a, 0.05)
    assert a.state == ABORTED and engine.running == [] and engine.used_blocks == 0
    run(engine)
    # the step in progress (a's decode, 46 -> 56 ms) ends without a; b is admitted after it
    assert times(b) == [0.072]
    assert len(a.offsets) == 4


def test_an_idle_engine_wakes_when_the_next_request_reaches_it():
    engine = EngineScheduler(SchedulerLimits(max_num_seqs=1), TIMING)
    assert engine.next_event() is None
    req = request(5, 1, at=1.0, ready=1.05)
    engine.add(req)
    assert engine.next_event() == 1.05
    assert not engine.advance(1.04) and engine.step_end is None
    engine.advance(1.05)
    assert engine.step_end == pytest.approx(1.055)
    run(engine)
    assert req.offsets == [pytest.approx(0.055)]
    assert engine.next_event() is None


def test_a_request_larger_than_the_engine_is_refused():
    engine = EngineScheduler(SchedulerLimits(max_num_seqs=1, capacity_blocks=4, block_tokens=4), TIMING)
    with pytest.raises(ValueError, match="needs 5 KV blocks"):
        engine.add(request(10, 8))  # 10 + 7 tokens at its peak: 5 blocks
    engine.add(request(10, 7))  # 16 tokens: 4 blocks


def test_zero_latency_steps_are_run_in_bounded_rounds():
    engine = EngineScheduler(SchedulerLimits(max_num_seqs=1), StepTiming(zero_latency=True))
    req = request(10, 1000)
    engine.add(req)
    assert engine.advance(0.0, max_steps=100) is True  # more is due: the caller comes back
    assert len(req.offsets) == 100
    run(engine, 0.0)
    assert len(req.offsets) == 1000 and set(req.offsets) == {0.0}


def test_limits_changed_between_steps_apply_from_the_next_one():
    engine = EngineScheduler(SchedulerLimits(max_num_seqs=1), TIMING)
    a, b = request(10, 5), request(10, 5)
    engine.add(a)
    engine.add(b)
    engine.advance(0.015)
    assert list(engine.waiting) == [b]
    engine.limits = SchedulerLimits(max_num_seqs=2)
    run(engine)
    # the step in progress (10 -> 20 ms) ran a alone; from 20 ms b prefills beside a's decode
    assert times(a)[:3] == [0.01, 0.02, 0.04]
    assert times(b)[0] == 0.04
