"""The engine model through HTTP: what a real client sees, and what the server's figures say.

A server with ``--max-num-seqs`` (one KV worker, so one engine) queues what does not fit its
batch; these tests send concurrent requests with an asyncio httpx client, time every token,
and compare the server's queue, waiting and preemption figures with those timings.

The server runs as ``fakeai serve``, in a process of its own as a user's would, and the client
in the test's process with its garbage collector held off (the ``timing`` marker): a server in
a thread of the test's process, or a collection of pytest's heap in the middle of a test, moved
the client's clock against the server's by more than the milliseconds compared here.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import msgspec
import pytest

from tests.servers import eventually, running_cli

pytestmark = pytest.mark.timing

MODEL = "openai/gpt-oss-120b"


def _serving(**changes: object):
    """``fakeai serve`` with one engine, no jitter, nothing before the engine, 20 ms decode steps
    and free prefill, unless ``changes`` (settings by name) say otherwise: its base URL."""
    settings = {"models": MODEL, "kv_workers": 1, "ttft_ms": 0.0, "ttft_jitter": 0.0, "itl_jitter": 0.0,
                "prefill_ms_per_token": 0.0, "itl_ms": 20.0, **changes}
    flags = [part for name, value in settings.items() for part in ("--" + name.replace("_", "-"), str(value))]
    return running_cli(*flags)


async def _stream(client: httpx.AsyncClient, tokens: int, prompt: list[int] | str = "hello there") -> list[float]:
    """A streamed completion of exactly ``tokens`` tokens: when each token arrived (perf_counter)."""
    return (await _timed_stream(client, tokens, prompt))[1]


async def _timed_stream(client: httpx.AsyncClient, tokens: int, prompt: list[int] | str) -> tuple[float, list[float]]:
    """``_stream``, and when the response's headers arrived (the server sends them once it has
    the request: a start that leaves out the client's own sending)."""
    body = {"model": MODEL, "prompt": prompt, "max_tokens": tokens, "ignore_eos": True, "stream": True}
    arrivals = []
    async with client.stream("POST", "/v1/completions", json=body) as response:
        headers_at = time.perf_counter()
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: {") and '"text":"' in line and '"finish_reason"' not in line:
                arrivals.append(time.perf_counter())
    return headers_at, arrivals


def _metrics(base_url: str) -> dict:
    return httpx.get(base_url + "/metrics", headers={"Accept": "application/json"}).json()


def _engine(document: dict, engine: str = "0") -> dict:
    return document["models"][MODEL]["engines"][engine]


def _prometheus(base_url: str) -> str:
    return httpx.get(base_url + "/metrics/prometheus").text


def _warm(base_url: str) -> dict[str, float]:
    """One request first, so the timed ones do not pay for the server's first (its metrics
    cells, its connection); then the exposition's samples, to take differences from."""
    body = {"model": MODEL, "prompt": "warm", "max_tokens": 1}
    assert httpx.post(base_url + "/v1/completions", json=body).status_code == 200
    eventually(lambda: sum(_engine(_metrics(base_url))["requests_succeeded"].values()) == 1, "the warm-up recorded")
    return _samples(_prometheus(base_url))


def _samples(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def _change(base_url: str, before: dict[str, float]) -> dict[str, float]:
    """Each unlabelled-by-value family's change since ``before`` (summed over its samples)."""
    after = _samples(_prometheus(base_url))
    families: dict[str, float] = {}
    for key, value in after.items():
        family = key.split("{", 1)[0]
        families[family] = families.get(family, 0.0) + value - before.get(key, 0.0)
    return families


def _sample(text: str, family: str) -> float:
    for line in text.splitlines():
        if line.startswith(family + "{") or line.startswith(family + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{family} not in the exposition")


def test_a_request_beyond_max_num_seqs_waits_and_the_servers_queue_time_is_the_clients():
    """max_num_seqs 1: the second request waits for the first one's 5 tokens (4 decode steps of
    20 ms after a prefill of no time); the server's queue time is the delay its client saw."""
    with _serving(max_num_seqs=1) as base_url:
        before = _warm(base_url)

        async def both():
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
                return await asyncio.gather(_stream(client, 5), _stream(client, 5))

        first, second = asyncio.run(both())
        # whichever got in first, the other started when it ended
        early, late = sorted((first, second))
        assert late[0] - early[-1] == pytest.approx(0.0, abs=0.015)
        assert early[-1] - early[0] == pytest.approx(0.080, abs=0.015)
        client_queue = late[0] - early[0]  # the late one's wait: the early one's generation

        def recorded() -> bool:
            return _engine(_metrics(base_url))["requests_succeeded"]["length"] == 3

        eventually(recorded, "both requests recorded")
        change = _change(base_url, before)
        server_queue = change["vllm:request_queue_time_seconds_sum"]
        assert change["vllm:request_queue_time_seconds_count"] == 2
        assert server_queue == pytest.approx(client_queue, abs=0.010)
        # TTFT includes the queue: with nothing to prefill, the two TTFTs are their queue times
        # (and the few milliseconds of reading, planning and writing the first token)
        ttft = change["vllm:time_to_first_token_seconds_sum"]
        assert server_queue <= ttft < server_queue + 0.010
        # prefill (scheduling to first token) took no time; inference is each one's 4 steps
        assert change["vllm:request_prefill_time_seconds_sum"] == pytest.approx(0.0, abs=0.002)
        assert change["vllm:request_inference_time_seconds_sum"] == pytest.approx(0.160, abs=0.010)
        assert change["vllm:request_decode_time_seconds_sum"] == pytest.approx(0.160, abs=0.010)


def test_the_waiting_gauge_shows_the_queue_while_it_is_there():
    with _serving(max_num_seqs=2, itl_ms=5.0) as base_url:
        seen: list[tuple[int, int]] = []
        detailed: list[tuple[int, int]] = []  # /health/detailed's engine block, the one worker's
        exposed: list[tuple[float, float]] = []  # vLLM's gauges, engine="0"

        def gauge(text: str, family: str) -> float:
            line = next(line for line in text.splitlines() if line.startswith(family + "{") and 'engine="0"' in line)
            return float(line.rsplit(" ", 1)[1])

        async def load():
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
                streams = asyncio.gather(*(_stream(client, 60) for _ in range(5)))
                async with httpx.AsyncClient(base_url=base_url, timeout=30) as probe:
                    while not streams.done():
                        summary = (await probe.get("/metrics", headers={"Accept": "application/json"})).json()
                        seen.append((summary["summary"]["requests_running"], summary["summary"]["requests_waiting"]))
                        engine = (await probe.get("/health/detailed")).json()["engine"]
                        detailed.append((engine["running_by_worker"][0], engine["waiting_by_worker"][0]))
                        text = (await probe.get("/metrics/prometheus")).text
                        exposed.append((gauge(text, "vllm:num_requests_running"),
                                        gauge(text, "vllm:num_requests_waiting")))
                        await asyncio.sleep(0.02)
                await streams

        asyncio.run(load())
        # 5 requests of 60 tokens, 2 at a time: 2 run while 3 wait (0.3 s), then 2 and 1, then 1 and 0;
        # every view of the queue shows it (each read at its own instant)
        assert (2, 3) in seen and (2, 3) in detailed and (2.0, 3.0) in exposed
        assert all(running <= 2 for running, _ in seen)
        assert {waiting for _, waiting in seen} >= {3, 1}
        eventually(lambda: _metrics(base_url)["summary"]["requests_running"] == 0, "the engine emptied")
        document = _metrics(base_url)
        assert document["summary"]["requests_waiting"] == 0
        assert document["smart_routing"]["workers"][0]["requests_waiting"] == 0
        assert _engine(document)["requests_waiting"] == 0


def test_a_request_that_cannot_get_a_kv_block_preempts_the_last_one_and_both_finish():
    """4 blocks of 4 tokens; two prompts of 7 token ids and 6 tokens each: both prefill (2 blocks
    each; the second one beside the first one's first decode, 5 ms a prefill token), then the
    first one's ninth token needs a third block: the second one is preempted after its first
    token and recomputed once the first one has finished."""
    with _serving(max_num_seqs=2, kv_block_tokens=4, kv_capacity_blocks=4, prefill_ms_per_token=5.0,
                  itl_ms=10.0) as base_url:

        async def both():
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
                return await asyncio.gather(_stream(client, 6, list(range(1, 8))),
                                            _stream(client, 6, list(range(11, 18))))

        streams = asyncio.run(both())
        assert [len(arrivals) for arrivals in streams] == [6, 6]
        preempted = max(streams, key=lambda arrivals: arrivals[-1])
        kept = min(streams, key=lambda arrivals: arrivals[-1])
        # the preempted stream paused after its first token until the other one had ended
        assert preempted[0] < kept[-1] <= preempted[1]
        eventually(lambda: _engine(_metrics(base_url))["requests_succeeded"]["length"] == 2, "both recorded")
        document = _metrics(base_url)
        assert document["smart_routing"]["workers"][0]["preemptions"] == 1
        assert _sample(_prometheus(base_url), "vllm:num_preemptions_total") == 1
        assert document["smart_routing"]["workers"][0]["blocks_used"] == 0


def test_kv_usage_is_the_blocks_the_running_requests_hold():
    """Without the engine model a worker's blocks are its prefix cache's; with it, the blocks its
    running requests hold (vLLM's KV usage): a 32-token prompt holds 2 blocks of 16, a third from
    its first decode (33 tokens), a fourth from its 17th, and nothing once it has finished (its
    prefix stays cached)."""
    with _serving(max_num_seqs=4, kv_capacity_blocks=100, itl_ms=10.0) as base_url:
        usage: list[int] = []

        async def one():
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
                stream = asyncio.ensure_future(_stream(client, 30, list(range(1, 33))))
                async with httpx.AsyncClient(base_url=base_url, timeout=30) as probe:
                    while not stream.done():
                        document = (await probe.get("/kv-cache-metrics")).json()
                        usage.append(document["smart_routing"]["workers"][0]["blocks_used"])
                        await asyncio.sleep(0.01)
                return await stream

        assert len(asyncio.run(one())) == 30
        assert set(usage) - {0} <= {2, 3, 4} and {3, 4} <= set(usage)
        eventually(lambda: _metrics(base_url)["kv_cache"]["blocks_used"] == 0, "the blocks freed")
        assert _metrics(base_url)["kv_cache"]["usage"] == 0.0


def test_under_light_load_latency_is_the_unloaded_model():
    """An idle engine: TTFT is --ttft-ms (before the engine) plus the prefill step of the prompt's
    uncached tokens, each later token one decode step (--itl-ms) after the last: today's model."""
    with _serving(max_num_seqs=64, ttft_ms=30.0, itl_ms=15.0, prefill_ms_per_token=1.0) as base_url:
        before = _warm(base_url)

        async def one_at_a_time():
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
                await _stream(client, 1)  # the connection
                timed = []
                for _ in range(3):
                    sent = time.perf_counter()
                    timed.append((sent, *await _timed_stream(client, 8, list(range(1, 11)))))
                return timed

        # the server's start lies between the request's sending and its headers' arrival (which a
        # busy machine delays): the first token is never early for the one, nor late for the other
        for sent, started, arrivals in asyncio.run(one_at_a_time()):
            assert arrivals[0] - sent >= 0.030 + 0.010 - 0.001  # 10 prompt tokens
            assert arrivals[0] - started <= 0.030 + 0.010 + 0.008
            gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
            assert sum(gaps) / len(gaps) == pytest.approx(0.015, abs=0.002)
        eventually(lambda: _engine(_metrics(base_url))["requests_succeeded"]["length"] == 5, "recorded")
        change = _change(base_url, before)
        assert change["vllm:request_queue_time_seconds_sum"] == pytest.approx(0.0, abs=0.002)
        # the server's TTFTs: 33 ms for the connection's ("hello there": 3 prompt tokens), 40 for the others
        assert change["vllm:time_to_first_token_seconds_sum"] == pytest.approx(0.033 + 3 * 0.040, abs=0.006)


def test_a_request_joins_the_batch_at_the_next_step():
    """Continuous batching: a request that reaches a busy engine is prefilled in its next step,
    beside the decodes (a step: --itl-ms, plus the prefill tokens' time), not before."""
    with _serving(max_num_seqs=64, itl_ms=40.0, prefill_ms_per_token=0.0) as base_url:
        _warm(base_url)

        async def two():
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
                await _stream(client, 1)  # two connections, so that neither request makes one
                await asyncio.gather(_stream(client, 1), _stream(client, 1))
                first = asyncio.ensure_future(_stream(client, 10))
                await asyncio.sleep(0.05)  # 10 ms into the first one's second decode step
                sent = time.perf_counter()
                second = await _stream(client, 2)
                return await first, sent, second

        first, sent, second = asyncio.run(two())
        # the step in progress ends at 80 ms, the second one's prefill shares the next with a
        # decode: its first token comes with the first one's third decode, 120 ms in
        assert second[0] - sent == pytest.approx(0.070, abs=0.012)
        assert min(abs(second[0] - token) for token in first) < 0.005


def test_plain_answers_wait_their_turn_too():
    with _serving(max_num_seqs=1, itl_ms=10.0) as base_url:
        _warm(base_url)
        body = {"model": MODEL, "prompt": "hi", "max_tokens": 6, "ignore_eos": True}

        async def both():
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
                await asyncio.gather(client.post("/v1/completions", json={**body, "max_tokens": 1}),
                                     client.post("/v1/completions", json={**body, "max_tokens": 1}))
                async def one():
                    response = await client.post("/v1/completions", json=body)
                    assert response.status_code == 200
                    assert response.json()["usage"]["completion_tokens"] == 6
                    return time.perf_counter()

                sent = time.perf_counter()
                done = await asyncio.gather(one(), one())
                return sorted(when - sent for when in done)

        first, second = asyncio.run(both())
        assert first == pytest.approx(0.050, abs=0.012)  # 5 decode steps after the first token
        assert second == pytest.approx(0.100, abs=0.015)  # and as many after the first one's end


def test_a_waiting_client_that_leaves_frees_its_place():
    with _serving(max_num_seqs=1, itl_ms=10.0) as base_url:

        async def scenario():
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
                long = asyncio.ensure_future(_stream(client, 50))
                await asyncio.sleep(0.05)
                leaver = asyncio.ensure_future(_stream(client, 5))

                async def waiting() -> int:
                    document = (await client.get("/metrics", headers={"Accept": "application/json"})).json()
                    return document["summary"]["requests_waiting"]

                deadline = time.monotonic() + 5
                while await waiting() != 1:
                    assert time.monotonic() < deadline, "the second request never queued"
                    await asyncio.sleep(0.01)
                leaver.cancel()  # its client leaves while it waits
                with pytest.raises(asyncio.CancelledError):
                    await leaver
                while await waiting() != 0:
                    assert time.monotonic() < deadline, "the waiting gauge kept the client that left"
                    await asyncio.sleep(0.01)
                await long
                return await _stream(client, 3)  # the slot is free again

        assert len(asyncio.run(scenario())) == 3
        eventually(lambda: _metrics(base_url)["summary"]["requests_running"] == 0, "the engine emptied")
        document = _metrics(base_url)
        assert _engine(document)["requests_succeeded"]["abort"] == 1
        assert document["errors_by_status"]["/v1/completions"] == {"499": 1}


def test_a_request_no_engine_could_hold_is_refused_and_counted():
    with _serving(max_num_seqs=4, kv_block_tokens=16, kv_capacity_blocks=4) as base_url:
        body = {"model": MODEL, "prompt": list(range(1, 41)), "max_tokens": 30, "ignore_eos": True}
        response = httpx.post(base_url + "/v1/completions", json=body)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "kv_capacity_exceeded" and error["param"] == "max_tokens"
        assert "5 KV-cache blocks" in error["message"]  # 40 + 29 tokens at its peak
        body["max_tokens"] = 25  # 40 + 24 tokens: 4 blocks
        assert httpx.post(base_url + "/v1/completions", json=body).status_code == 200
        eventually(lambda: _metrics(base_url)["errors_by_status"]["/v1/completions"] == {"400": 1}, "counted")
        assert _metrics(base_url)["summary"]["requests_running"] == 0


def test_every_generation_endpoint_streams_through_the_engine_model():
    # answers far longer than asked for: every request ends at its max tokens ("length")
    with _serving(max_num_seqs=2, zero_latency=True, answer_tokens_mean=1000) as base_url:
        chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50,
                "ignore_eos": True, "stream": True, "n": 2}
        with httpx.stream("POST", base_url + "/v1/chat/completions", json=chat) as response:
            chunks = [msgspec.json.decode(line[6:]) for line in response.iter_lines()
                      if line.startswith("data: {")]
        contents = [chunk["choices"][0] for chunk in chunks if chunk["choices"]]
        assert sum(1 for choice in contents if choice["delta"].get("content")) == 100
        plain = {**chat, "stream": False}
        answer = httpx.post(base_url + "/v1/chat/completions", json=plain).json()
        assert answer["usage"]["completion_tokens"] == 100
        eventually(lambda: _engine(_metrics(base_url))["requests_succeeded"]["length"] == 2, "recorded")
        # the Responses API and Anthropic's Messages, streamed and whole, are the engine's requests too
        responses = {"model": MODEL, "input": "hi", "max_output_tokens": 30}
        with httpx.stream("POST", base_url + "/v1/responses", json={**responses, "stream": True}) as response:
            deltas = [line for line in response.iter_lines() if line.startswith("event: response.output_text.delta")]
        assert len(deltas) == 30
        whole = httpx.post(base_url + "/v1/responses", json=responses).json()
        assert whole["usage"]["output_tokens"] == 30 and whole["status"] == "incomplete"
        messages = {"model": MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
        with httpx.stream("POST", base_url + "/v1/messages", json={**messages, "stream": True}) as response:
            deltas = [line for line in response.iter_lines() if line.startswith("event: content_block_delta")]
        assert len(deltas) == 20
        assert httpx.post(base_url + "/v1/messages", json=messages).json()["usage"]["output_tokens"] == 20
        # a reasoning answer: the engine runs its reasoning tokens and its answer
        reasoning = {**plain, "n": 1, "max_tokens": 4000, "reasoning_effort": "low"}
        answer = httpx.post(base_url + "/v1/chat/completions", json=reasoning).json()
        assert answer["usage"]["completion_tokens"] == 4000
        assert answer["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
        eventually(lambda: _engine(_metrics(base_url))["requests_succeeded"]["length"] == 7, "recorded")
