"""A fleet behind Prometheus: the recording rules of deploy/fakeai-rules.yml add every fakeai
instance of a job up into one set of figures, as one server serving all the traffic would report.

Two levels: promtool's rule unit tests feed the rules synthetic series with exact rates and
check every recorded figure to the last digit (a ratio of summed rates, not an average of
ratios; a quantile over summed buckets, not an average of quantiles); then three real
``fakeai serve`` processes on 127.0.0.1, .2 and .3 behind a real Prometheus take known traffic
and the recorded series are checked against what the clients sent and were answered.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.prometheus_server import Prometheus, promtool, running_prometheus
from tests.servers import running_cli

RULES_FILE = Path(__file__).resolve().parent.parent / "deploy" / "fakeai-rules.yml"
MODEL = "openai/gpt-oss-120b"

FLEET_RULES = {
    "job:fakeai_requests:rate1m", "job:fakeai_errors:rate1m", "job:fakeai_errors_per_requests:ratio_rate1m",
    "job_kind:fakeai_tokens:rate1m", "job:fakeai_kv_cache_cached_tokens_per_prompt_tokens:ratio_rate1m",
    "job_le:fakeai_request_duration_seconds_bucket:rate1m", "job:fakeai_request_duration_seconds:p50_rate1m",
    "job:fakeai_request_duration_seconds:p99_rate1m", "job:fakeai_time_to_first_token_seconds:p99_rate1m",
    "job:vllm_num_requests_running:sum", "job:vllm_num_requests_waiting:sum", "job:fakeai_requests_total:sum",
    "job:fakeai_errors_total:sum", "job_kind:fakeai_tokens_total:sum",
    "job:fakeai_kv_cache_cached_tokens_total:sum",
}


def test_promtool_accepts_the_fleet_rules_named_level_metric_operations() -> None:
    checked = promtool("check", "rules", str(RULES_FILE))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    names = [line.split(":", 1)[1].strip() for line in RULES_FILE.read_text().splitlines()
             if line.strip().startswith("- record:")]
    assert FLEET_RULES <= set(names), f"missing: {sorted(FLEET_RULES - set(names))}"
    for name in FLEET_RULES:
        level, metric, operations = name.split(":")
        assert level.split("_")[0] == "job", f"{name}: aggregated by job"
        assert not metric.endswith("_total") or operations == "sum", f"{name}: a rate drops _total"


# -- the rules on synthetic series (promtool test rules) -------------------------------------

STEP = 15
"""Seconds between two synthetic samples: five of them, 0 to 60 s, span a 1m window exactly,
so rate() extrapolates nothing and every rate below is exact."""


def _counter(name: str, per_second: float, **labels: str) -> dict:
    """A counter rising by ``per_second`` from 0 at t = 0 to t = 60 s."""
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{selector}}}", "values": f"0+{per_second * STEP:g}x4"}


def _gauge(name: str, value: float, **labels: str) -> dict:
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{selector}}}", "values": f"{value:g}x4"}


def _histogram(name: str, per_second_by_bound: dict[str, float], **labels: str) -> list[dict]:
    """Cumulative buckets: ``per_second_by_bound`` says how many observations per second fall
    at or below each bound (``+Inf`` included)."""
    return [_counter(f"{name}_bucket", rate, **labels, le=bound)
            for bound, rate in per_second_by_bound.items()]


def _fleet_series() -> list[dict]:
    """Job ``fakeai``: instance a serves 90 requests/s, fast (all within (25 ms, 50 ms]), no
    errors; c serves 10/s, slow ((200 ms, 300 ms]), half of them errors; b is idle but its
    engines hold requests. Job ``other`` (one instance) serves 1 request/s and never fails."""
    chat = "/v1/chat/completions"
    a = {"job": "fakeai", "instance": "a:8000"}
    b = {"job": "fakeai", "instance": "b:8000"}
    c = {"job": "fakeai", "instance": "c:8000"}
    other = {"job": "other", "instance": "d:8000"}
    bounds = ("0.025", "0.05", "0.2", "0.3", "+Inf")
    duration = "fakeai_request_duration_seconds"
    return [
        _counter("fakeai_requests_total", 90, **a, endpoint=chat),
        _counter("fakeai_requests_total", 0, **b, endpoint=chat),
        _counter("fakeai_requests_total", 10, **c, endpoint=chat),
        _counter("fakeai_errors_total", 5, **c, endpoint=chat, status="500"),
        _counter("fakeai_requests_total", 1, **other, endpoint=chat),
        _counter("fakeai_tokens_total", 100, **a, endpoint=chat, kind="prompt"),
        _counter("fakeai_tokens_total", 50, **a, endpoint=chat, kind="completion"),
        _counter("fakeai_tokens_total", 10, **c, endpoint=chat, kind="prompt"),
        _counter("fakeai_tokens_total", 1, **c, endpoint=chat, kind="completion"),
        _counter("fakeai_kv_cache_prompt_tokens_total", 100, **a, worker="0"),
        _counter("fakeai_kv_cache_cached_tokens_total", 80, **a, worker="0"),
        _counter("fakeai_kv_cache_prompt_tokens_total", 0, **a, worker="1"),
        _counter("fakeai_kv_cache_cached_tokens_total", 0, **a, worker="1"),
        _counter("fakeai_kv_cache_prompt_tokens_total", 10, **c, worker="0"),
        _counter("fakeai_kv_cache_cached_tokens_total", 0, **c, worker="0"),
        *_histogram(duration, dict(zip(bounds, (0, 90, 90, 90, 90))), **a, endpoint=chat),
        *_histogram(duration, dict(zip(bounds, (0, 0, 0, 10, 10))), **c, endpoint=chat),
        *_histogram("fakeai_time_to_first_token_seconds", dict(zip(bounds, (0, 45, 45, 45, 45))), **a),
        *_histogram("fakeai_time_to_first_token_seconds", dict(zip(bounds, (0, 0, 0, 5, 5))), **c),
        _gauge("vllm:num_requests_running", 3, **a, model_name=MODEL, engine="0"),
        _gauge("vllm:num_requests_waiting", 0, **a, model_name=MODEL, engine="0"),
        _gauge("vllm:num_requests_running", 1, **b, model_name=MODEL, engine="0"),
        _gauge("vllm:num_requests_running", 1, **b, model_name=MODEL, engine="1"),
        _gauge("vllm:num_requests_waiting", 2, **b, model_name=MODEL, engine="0"),
        _gauge("vllm:num_requests_waiting", 0, **b, model_name=MODEL, engine="1"),
    ]


FLEET_FIGURES = {
    # rates summed over a, b and c; other's alone
    'job:fakeai_requests:rate1m{job="fakeai"}': 100,
    'job:fakeai_requests:rate1m{job="other"}': 1,
    'job:fakeai_errors:rate1m{job="fakeai"}': 5,
    'job:fakeai_errors:rate1m{job="other"}': 0,  # no error series at all: 0, not absent
    # 5 / 100, where averaging the instances' ratios would say (0 + 0.5) / 2 = 0.25
    'job:fakeai_errors_per_requests:ratio_rate1m{job="fakeai"}': 0.05,
    'job:fakeai_errors_per_requests:ratio_rate1m{job="other"}': 0,
    'job_kind:fakeai_tokens:rate1m{job="fakeai",kind="prompt"}': 110,
    'job_kind:fakeai_tokens:rate1m{job="fakeai",kind="completion"}': 51,
    # 80 / 110 cached, where averaging a's 0.8 and c's 0 would say 0.4
    'job:fakeai_kv_cache_cached_tokens_per_prompt_tokens:ratio_rate1m{job="fakeai"}': 80 / 110,
    # 100 requests/s: 90 in (0.025, 0.05], 10 in (0.2, 0.3]. p50: rank 50 of 90 in the first,
    # 0.025 + 0.025 * 50/90; p99: rank 99, 9 of 10 into the second, 0.2 + 0.1 * 0.9 (a's own
    # p99 is 0.04975 and c's 0.299: their mean, 0.17, lies in neither bucket)
    'job:fakeai_request_duration_seconds:p50_rate1m{job="fakeai"}': 0.03888888888888889,
    'job:fakeai_request_duration_seconds:p99_rate1m{job="fakeai"}': 0.29,
    'job:fakeai_time_to_first_token_seconds:p99_rate1m{job="fakeai"}': 0.29,  # 45 fast, 5 slow: rank 49.5
    # requests in the engines now: 3 on a, 1 + 1 on b; 2 waiting on b
    'job:vllm_num_requests_running:sum{job="fakeai"}': 5,
    'job:vllm_num_requests_waiting:sum{job="fakeai"}': 2,
    # totals at t = 60 s: 60 s of each rate
    'job:fakeai_requests_total:sum{job="fakeai"}': 6000,
    'job:fakeai_requests_total:sum{job="other"}': 60,
    'job:fakeai_errors_total:sum{job="fakeai"}': 300,
    'job:fakeai_errors_total:sum{job="other"}': 0,
    'job_kind:fakeai_tokens_total:sum{job="fakeai",kind="prompt"}': 6600,
    'job_kind:fakeai_tokens_total:sum{job="fakeai",kind="completion"}': 3060,
    'job:fakeai_kv_cache_cached_tokens_total:sum{job="fakeai"}': 4800,
}


def test_the_fleet_rules_add_instances_up_as_one_server_would() -> None:
    by_rule: dict[str, list[dict]] = {}
    for series, value in FLEET_FIGURES.items():
        by_rule.setdefault(series.split("{")[0], []).append({"labels": series, "value": value})
    assert set(by_rule) | {"job_le:fakeai_request_duration_seconds_bucket:rate1m"} == FLEET_RULES
    unit_tests = {
        "rule_files": [str(RULES_FILE)],
        "evaluation_interval": f"{STEP}s",
        "tests": [{
            "interval": f"{STEP}s",
            "input_series": _fleet_series(),
            "promql_expr_test": [{"expr": rule, "eval_time": "1m", "exp_samples": samples}
                                 for rule, samples in by_rule.items()],
        }],
    }
    with tempfile.TemporaryDirectory(prefix="fakeai-promtool-") as folder:
        path = Path(folder) / "fleet-test.yml"
        path.write_text(json.dumps(unit_tests, indent=1))  # JSON is YAML
        result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# -- three real fakeai servers behind a real Prometheus --------------------------------------

INTERVAL = "250ms"
CONFIG = f"""
global:
  scrape_interval: {INTERVAL}
  scrape_timeout: {INTERVAL}
  evaluation_interval: {INTERVAL}
rule_files:
  - {{rules_dir}}/fakeai-rules.yml
scrape_configs:
  - job_name: fakeai
    metrics_path: /metrics/prometheus
    file_sd_configs:
      - files: [TARGETS]
"""
FIXED = ("--ttft-jitter", "0", "--itl-jitter", "0", "--prefill-ms-per-token", "0", "--itl-ms", "1")
"""Answers of a planned length: TTFT as set, then 1 ms a token."""
FAST = ("--ttft-ms", "30")
"""A's answers: 30 to 35 ms, in the request-duration and TTFT bucket (0.025, 0.05]."""
SLOW = ("--ttft-ms", "210")
"""C's answers: 210 to 215 ms, in the bucket (0.2, 0.3] (its injected errors take about 3 ms)."""
HELD = ("--max-num-seqs", "1", "--kv-workers", "1", "--ttft-ms", "30", "--itl-ms", "30")
"""B: one engine running one request at a time; a 100-token stream holds it 3 s."""
ERRORS = ("--error-rate", "0.5", "--error-kinds", "server_error", "--seed", "3")

SYSTEM = "You are a careful assistant. " * 20
"""A shared prompt prefix: repeated requests find it in the simulated prefix cache."""


@dataclass
class Sent:
    """What a client sent to the fleet and what the answers said (``usage``)."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    def __iadd__(self, other: Sent) -> Sent:
        for field in self.__dataclass_fields__:
            setattr(self, field, getattr(self, field) + getattr(other, field))
        return self


def _chat(client: httpx.Client, *, stream: bool, max_tokens: int = 4,
          on_first_chunk: threading.Event | None = None) -> Sent:
    """One chat request; its status and usage as the client saw them."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hi"}]
    body = {"model": MODEL, "messages": messages, "max_tokens": max_tokens, "ignore_eos": True,
            "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code >= 400:
            response.read()
            return Sent(requests=1, errors=1)
        usage = None
        if stream:
            for line in response.iter_lines():
                if on_first_chunk is not None:
                    on_first_chunk.set()
                if line.startswith("data: {"):
                    usage = json.loads(line[6:]).get("usage") or usage
        else:
            usage = json.loads(response.read())["usage"]
    assert usage is not None, "every answer reports its usage"
    return Sent(requests=1, prompt_tokens=usage["prompt_tokens"],
                completion_tokens=usage["completion_tokens"],
                cached_tokens=usage["prompt_tokens_details"]["cached_tokens"])


def _send(base_url: str, streams: list[bool]) -> Sent:
    """Requests one after another, streamed or not as ``streams`` says."""
    sent = Sent()
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for stream in streams:
            sent += _chat(client, stream=stream)
    return sent


def _warm_up(base_url: str, *, failing: bool = False) -> Sent:
    """One answered request, and on a ``failing`` server (errors injected) one failed one too:
    every series the rules read then exists before Prometheus first scrapes, so rate() sees
    all later traffic (a series' first sample is where its increase starts)."""
    sent = Sent()
    with httpx.Client(base_url=base_url, timeout=30) as client:
        while sent.requests == sent.errors or (failing and not sent.errors):
            assert sent.requests < 20, "error injection at 50 % failed or answered 20 requests in a row"
            sent += _chat(client, stream=False)
    return sent


def _value(prometheus: Prometheus, series: str) -> float | None:
    """The one value of ``series`` for the job (``None`` while it has none)."""
    result = prometheus.query(series)
    assert len(result) <= 1, f"one fleet series per job: {result}"
    return float(result[0]["value"][1]) if result else None


def _equals(prometheus: Prometheus, series: str, expected: float) -> None:
    """Until the one value of ``series`` is ``expected``, exactly."""
    prometheus.wait_for(series, lambda result: result and float(result[0]["value"][1]) == expected,
                        seconds=15)


def _within(prometheus: Prometheus, series: str, low: float, high: float) -> None:
    """Until the one value of ``series`` lies in [``low``, ``high``]."""
    prometheus.wait_for(series, lambda result: result and low <= float(result[0]["value"][1]) <= high,
                        seconds=15)


def _hold_the_engine(base_url: str) -> tuple[list[Sent], list[threading.Thread]]:
    """A 100-token stream that B's one engine runs for 3 s, then two short ones that wait for it."""
    answers: list[Sent] = []
    running = threading.Event()

    def stream(max_tokens: int, on_first_chunk: threading.Event | None = None) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            answers.append(_chat(client, stream=True, max_tokens=max_tokens, on_first_chunk=on_first_chunk))

    threads = [threading.Thread(target=stream, args=(100, running))]
    threads[0].start()
    assert running.wait(timeout=15), "the long stream started"
    threads += [threading.Thread(target=stream, args=(2,)) for _ in range(2)]
    for thread in threads[1:]:
        thread.start()
    return answers, threads


def _serve(servers: contextlib.ExitStack, *flag_sets: tuple[str, ...]) -> list[str]:
    """``fakeai serve`` with each set of flags, on 127.0.0.1, .2, .3 ..., started side by side."""
    starting = [running_cli(*flags, host=f"127.0.0.{number}") for number, flags in enumerate(flag_sets, 1)]
    with ThreadPoolExecutor(len(starting)) as pool:
        return list(pool.map(servers.enter_context, starting))


def _scrape(targets_file: Path, *base_urls: str) -> None:
    """Hand Prometheus its targets (file-based discovery; replaced at once, never half-written)."""
    staging = targets_file.with_suffix(".tmp")
    staging.write_text(json.dumps([{"targets": [url.removeprefix("http://") for url in base_urls]}]))
    staging.replace(targets_file)


def test_three_fakeai_behind_prometheus_add_up_to_what_was_sent() -> None:
    with tempfile.TemporaryDirectory(prefix="fakeai-fleet-") as folder, contextlib.ExitStack() as servers:
        targets_file = Path(folder) / "targets.json"
        _scrape(targets_file)
        # Prometheus first (it hands discovered targets to its scrapers every 5 s): it scrapes
        # nothing until the servers have served their warm-ups
        config = CONFIG.replace("TARGETS", json.dumps(str(targets_file)))
        rules = {"fakeai-rules.yml": RULES_FILE.read_text()}
        prometheus = servers.enter_context(running_prometheus(config, rules))
        a, b, c = _serve(servers, FIXED + FAST, FIXED + HELD, FIXED + SLOW + ERRORS)
        everything = _warm_up(a)
        everything += _warm_up(b)
        everything += _warm_up(c, failing=True)
        _scrape(targets_file, a, b, c)
        # Prometheus has scraped all three (the recorded total is all the warm-ups)
        _equals(prometheus, 'job:fakeai_requests_total:sum{job="fakeai"}', everything.requests)
        assert prometheus.query('count(up{job="fakeai"} == 1)')[0]["value"][1] == "3"

        # Known traffic, at once: A 20 answers and 10 streams, fast; C 10 streams, slow,
        # about half failed by injection
        with ThreadPoolExecutor(2) as pool:
            on_a = pool.submit(_send, a, [False] * 20 + [True] * 10)
            on_c = pool.submit(_send, c, [True] * 10)
            measured = on_a.result()
            measured += (on_c := on_c.result())
        assert 2 <= on_c.errors <= 8, f"the seeded injection failed {on_c.errors} of C's 10 streams"
        everything += measured

        # Totals since start, summed over the instances: exactly what the clients counted
        _equals(prometheus, 'job:fakeai_requests_total:sum{job="fakeai"}', everything.requests)
        _equals(prometheus, 'job:fakeai_errors_total:sum{job="fakeai"}', everything.errors)
        _equals(prometheus, 'job_kind:fakeai_tokens_total:sum{job="fakeai",kind="prompt"}',
                everything.prompt_tokens)
        _equals(prometheus, 'job_kind:fakeai_tokens_total:sum{job="fakeai",kind="completion"}',
                everything.completion_tokens)
        _equals(prometheus, 'job:fakeai_kv_cache_cached_tokens_total:sum{job="fakeai"}',
                everything.cached_tokens)
        assert everything.cached_tokens > 0, "A's repeated prefix was found cached"

        # Quantiles over the summed buckets of the traffic since the first scrape: most
        # answers are A's (fast), C's successes (slow) are far more than 1 %
        _within(prometheus, 'job:fakeai_request_duration_seconds:p50_rate1m{job="fakeai"}', 0.025, 0.05)
        _within(prometheus, 'job:fakeai_request_duration_seconds:p99_rate1m{job="fakeai"}', 0.2, 0.3)
        _within(prometheus, 'job:fakeai_time_to_first_token_seconds:p99_rate1m{job="fakeai"}', 0.2, 0.3)

        # A held load on B: one request running, two waiting, none anywhere else
        answers, threads = _hold_the_engine(b)
        try:
            _equals(prometheus, 'job:vllm_num_requests_running:sum{job="fakeai"}', 1)
            _equals(prometheus, 'job:vllm_num_requests_waiting:sum{job="fakeai"}', 2)
            b_instance = b.removeprefix("http://")
            assert _value(prometheus, f'sum(vllm:num_requests_waiting{{instance="{b_instance}"}})') == 2
        finally:
            for thread in threads:
                thread.join(timeout=30)
        assert len(answers) == 3
        for answer in answers:
            measured += answer
            everything += answer
        _equals(prometheus, 'job:vllm_num_requests_waiting:sum{job="fakeai"}', 0)
        _equals(prometheus, 'job:fakeai_requests_total:sum{job="fakeai"}', everything.requests)

        # Rates over the last minute: the whole measured traffic (the warm-ups were in the
        # first samples), over 60 s. rate() extrapolates each series past its first and last
        # sample by at most 1.1 scrape intervals each (Prometheus's extrapolatedRate), so a
        # rate lies between the increase / 60 and a few per cent above it
        slack = 1.15
        _within(prometheus, 'job:fakeai_requests:rate1m{job="fakeai"}',
                measured.requests / 60, measured.requests / 60 * slack)
        for kind, tokens in (("prompt", measured.prompt_tokens), ("completion", measured.completion_tokens)):
            _within(prometheus, f'job_kind:fakeai_tokens:rate1m{{job="fakeai",kind="{kind}"}}',
                    tokens / 60, tokens / 60 * slack)
        error_ratio = measured.errors / measured.requests
        _within(prometheus, 'job:fakeai_errors_per_requests:ratio_rate1m{job="fakeai"}',
                error_ratio / slack, error_ratio * slack)
        hit_ratio = measured.cached_tokens / measured.prompt_tokens
        _within(prometheus, 'job:fakeai_kv_cache_cached_tokens_per_prompt_tokens:ratio_rate1m{job="fakeai"}',
                hit_ratio / slack, hit_ratio * slack)
