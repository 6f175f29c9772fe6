"""``fakeai_paced_lateness_seconds`` in a served exposition: a real server on the real clock (the
timerfd pacer, which measures it, needs ``time.monotonic``)."""

from __future__ import annotations

import json
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def test_a_served_answer_shows_its_lateness_in_the_exposition(fakeai_server_factory) -> None:
    server = fakeai_server_factory(zero_latency=False, ttft_ms=5, itl_ms=1, ttft_jitter=0, itl_jitter=0)

    def readings() -> tuple[float, float]:
        with urllib.request.urlopen(server.base_url + "/metrics/prometheus", timeout=10) as answer:
            text = answer.read().decode()
        family = next(f for f in text_string_to_metric_families(text) if f.name == "fakeai_paced_lateness_seconds")
        found = {sample.name: sample.value for sample in family.samples if not sample.labels}
        return found["fakeai_paced_lateness_seconds_count"], found["fakeai_paced_lateness_seconds_sum"]

    count, total = readings()
    body = json.dumps({"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}],
                       "max_tokens": 3}).encode()
    request = urllib.request.Request(server.base_url + "/v1/chat/completions", body,
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
    later_count, later_total = readings()
    assert later_count == count + 1  # a plain answer waits once, for its last token's deadline
    assert later_total >= total
