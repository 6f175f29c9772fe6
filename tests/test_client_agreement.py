"""What a benchmarking client measures agrees with what fakeai reports (issue #14, item 5).

The client here knows nothing of fakeai's internals: it streams chat answers over plain
HTTP/1.1 (a few lines of asyncio, so that its own overhead stays small next to 1 ms), times each content chunk's arrival, and counts the answer's tokens by
tokenizing the text it received with the real o200k_base tokenizer (gpt-oss's), as AIPerf,
``vllm bench serve`` and genai-perf do. At a light load (two streams at a time on a
server of its own):

* the client's token count of every answer == its ``usage.completion_tokens``, and their
  sum == fakeai's counters (``vllm:generation_tokens_total``, ``fakeai_tokens_total``);
* the client's inter-token gap p50 is within 2 % of ``--itl-ms``;
* fakeai's TTFT p50, from ``/metrics`` (JSON) and from ``histogram_quantile`` over
  ``vllm:time_to_first_token_seconds`` in a real Prometheus, is within 1 ms of the
  client's (the client's includes its own network and parsing time);
* the request counts are equal.

``histogram_quantile`` interpolates linearly inside a bucket, so it can only be as exact as
the buckets allow: with every TTFT inside vLLM's bucket (40 ms, 60 ms] it answers that bucket's
middle, 50 ms. fakeai's own TTFT ends when the write carrying the first token is made; the
client's, when it has read it: on this machine the write's system call (loopback delivers
to the reader inside it) and the reader's wake-up put the client 0.5 to 0.8 ms behind
fakeai. The TTFT is set to 49.6 ms, without jitter, so that the bucket's middle falls
between the two figures rather than at one end of that span.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import httpx
import pytest
import uvloop

from tests.prometheus_server import running_prometheus
from tests.real_tokenizers import O200K
from tests.servers import running_cli

pytestmark = pytest.mark.timing

MODEL = "openai/gpt-oss-120b"
TTFT_MS = 49.6
ITL_MS = 10.0
STREAMS = 48
CONCURRENCY = 2
TOKENS = 40

CONFIG = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: fakeai
    metrics_path: /metrics/prometheus
    static_configs:
      - targets: ['{target}']
"""


class Measured:
    def __init__(self) -> None:
        self.ttft: list[float] = []
        self.gaps: list[float] = []
        self.client_tokens: list[int] = []
        self.usage_tokens: list[int] = []


async def _stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, encoding,
                  measured: Measured, index: int) -> None:
    """One streamed chat answer on a kept-alive connection: plain HTTP/1.1, chunked SSE."""
    body = json.dumps({
        "model": MODEL,
        "messages": [{"role": "user", "content": f"Tell me a story, number {index}."}],
        "max_tokens": TOKENS,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }).encode()
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    text: list[str] = []
    arrivals: list[float] = []
    usage = None
    sent_at = time.perf_counter()
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"transfer-encoding: chunked" in head.lower(), head
    pending = b""
    done = False
    while not done:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        arrived = time.perf_counter()
        if size == 0:
            break
        pending += chunk[:-2]
        *events, pending = pending.split(b"\n\n")
        for event in events:
            data = event.removeprefix(b"data: ")
            if data == b"[DONE]":
                done = True
                continue
            parsed = json.loads(data)
            if parsed.get("usage"):
                usage = parsed["usage"]
            for choice in parsed["choices"]:
                content = choice.get("delta", {}).get("content")
                if content:
                    text.append(content)
                    arrivals.append(arrived)
    if done:  # the terminating zero-length chunk
        assert await reader.readexactly(5) == b"0\r\n\r\n"
    assert usage is not None
    measured.ttft.append(arrivals[0] - sent_at)
    measured.gaps.extend(later - earlier for earlier, later in zip(arrivals, arrivals[1:]))
    measured.client_tokens.append(len(encoding.encode("".join(text))))
    measured.usage_tokens.append(usage["completion_tokens"])


async def _drive(base_url: str, encoding) -> Measured:
    """``CONCURRENCY`` kept-alive connections, each streaming its share of the answers in turn."""
    measured = Measured()
    host, port = base_url.removeprefix("http://").split(":")

    async def connection(first: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for index in range(first, STREAMS, CONCURRENCY):
                await _stream(reader, writer, f"{host}:{port}", encoding, measured, index)
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(connection(first) for first in range(CONCURRENCY)))
    return measured


def _sample(text: str, name: str) -> float:
    """The sum of a family's samples named exactly ``name`` (over every label set)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_client_measurements_agree_with_fakeai() -> None:
    encoding = O200K
    flags = ["--ttft-ms", str(TTFT_MS), "--ttft-jitter", "0", "--prefill-ms-per-token", "0",
             "--itl-ms", str(ITL_MS), "--itl-jitter", "0", "--window-seconds", "600"]
    with running_cli(*flags) as base_url:
        measured = uvloop.run(_drive(base_url, encoding))  # a client's loop, as AIPerf's
        target = base_url.removeprefix("http://")
        with running_prometheus(CONFIG.replace("{target}", target)) as prometheus:
            exposition = httpx.get(base_url + "/metrics/prometheus").text
            document = httpx.get(base_url + "/metrics").json()
            quantile = prometheus.wait_for(
                "histogram_quantile(0.5, sum by (le) (vllm:time_to_first_token_seconds_bucket))",
                lambda result: bool(result) and result[0]["value"][1] != "NaN",
            )

    client_ttft = statistics.median(measured.ttft)
    print(f"\nclient: {sum(measured.client_tokens)} tokens in {STREAMS} answers, gap p50 "
          f"{statistics.median(measured.gaps) * 1e3:.3f} ms, TTFT p50 {client_ttft * 1e3:.3f} ms; fakeai: TTFT p50 "
          f"{document['streaming_stats']['ttft']['p50'] * 1e3:.3f} ms (JSON), "
          f"{float(quantile[0]['value'][1]) * 1e3:.3f} ms (histogram_quantile)")
    # tokens: what the client counts is what fakeai says it sent, and what it counted
    assert measured.client_tokens == measured.usage_tokens == [TOKENS] * STREAMS
    assert _sample(exposition, "vllm:generation_tokens_total") == sum(measured.client_tokens)
    assert _sample(exposition, 'fakeai_tokens_total{endpoint="/v1/chat/completions",kind="completion"}') == sum(
        measured.client_tokens
    )
    # requests: the same count on both sides
    assert _sample(exposition, 'fakeai_requests_total{endpoint="/v1/chat/completions"}') == STREAMS
    assert _sample(exposition, "vllm:request_success_total") == STREAMS
    assert document["streaming_stats"]["ttft"]["count"] == STREAMS
    # inter-token latency: the client's gaps are the configured ITL
    client_itl = statistics.median(measured.gaps)
    assert abs(client_itl - ITL_MS / 1000) <= 0.02 * ITL_MS / 1000, client_itl
    # time to first token: fakeai's figures are the client's, less the client's own overhead
    server_ttft = document["streaming_stats"]["ttft"]["p50"]
    assert abs(server_ttft - client_ttft) <= 0.001, (server_ttft, client_ttft)
    prometheus_ttft = float(quantile[0]["value"][1])
    assert abs(prometheus_ttft - client_ttft) <= 0.001, (prometheus_ttft, client_ttft)
