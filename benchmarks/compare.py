"""fakeai side by side with what people would otherwise use, end to end, in one run.

    scripts/bench.sh              # the whole run (about 25 minutes)
    scripts/bench.sh --quick      # the same measurements, short (about 3 minutes), for a smoke test

Every server is pinned to core 0 and every load generator to core 1 (``harness``); all
ratios come from the same run. Measured:

* sustained non-streaming chat RPS (wrk, 64 connections, zero latency, 60 s after a 60 s
  warm-up, so the PyPI package is in its steady state) for fakeai, a minimal Litestar + msgspec route, a
  bare ASGI app on uvicorn (the Python ceiling) and ``fakeai==0.3.2`` (installed into its own
  virtual environment by ``scripts/bench.sh``; latency set to zero by its own variables);
* streamed tokens per second (wrk on SSE requests x the tokens each stream carries) for fakeai
  and ``fakeai==0.3.2``;
* with 2 worker processes: RPS with recording on against the same 2 workers with
  ``--record-metrics false`` (order-alternated pairs), and 1-worker RPS for comparison;
* ``/metrics/prometheus`` scrape time with a window holding 500k samples, while wrk keeps
  loading the server;
* the server's RSS during a ``--soak-seconds`` (600 by default) run at a fixed rate.

Prints a table and writes ``benchmarks/results/compare.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import threading
import time
from pathlib import Path

import httpx

from benchmarks import harness

ROOT = Path(__file__).resolve().parent.parent
CHAT_BODY = ('{"model":"openai/gpt-oss-120b","messages":[{"role":"user","content":"Hello!"}],'
             '"max_tokens":16,"ignore_eos":true}')
STREAM_BODY = ('{"model":"openai/gpt-oss-120b","messages":[{"role":"user","content":"Hello!"}],'
               '"max_tokens":100,"ignore_eos":true,"stream":true}')
OLD_FAKEAI_ENV = {"FAKEAI_GENERATION__TTFT_MS": "0", "FAKEAI_GENERATION__ITL_MS": "0"}
TARGETS = {
    "rps_vs_fakeai_0_3_2": 20.0,
    "rps_vs_minimal_litestar": 0.9,
    "streamed_tokens_vs_fakeai_0_3_2": 7.0,
    "two_worker_recording_on_over_off": 0.95,
    "scrape_500k_ms": 50.0,
}


def old_fakeai_command(venv: Path) -> list[str]:
    return [str(venv / "bin" / "fakeai"), "server", "--host", "127.0.0.1", "--port", "{port}"]


def tokens_per_stream(url: str) -> int:
    """Content chunks one streamed answer carries (each is one token for fakeai)."""
    with httpx.Client(timeout=60) as client, client.stream(
        "POST", url + "/v1/chat/completions", content=STREAM_BODY, headers={"Content-Type": "application/json"}
    ) as response:
        count = 0
        for line in response.iter_lines():
            if line.startswith("data: {") and '"content":"' in line.replace('"content": "', '"content":"'):
                count += 1
    return count


def measure_rps(command: list[str], seconds: int, *, env: dict | None = None, ready: str = "/health",
                method: str = "GET") -> dict:
    """Sustained RPS: wrk for ``seconds`` after a warm-up as long (fakeai 0.3.2 slows down
    during its first minute, from about 800 to about 600 requests/s here; every server gets
    the same treatment)."""
    with harness.server(command, env=env, ready_path=ready, ready_method=method) as url:
        warm_up = harness.wrk(url, CHAT_BODY, seconds=seconds)
        result = harness.wrk(url, CHAT_BODY, seconds=seconds)
    if result["non_2xx"]:
        raise RuntimeError(f"{command[0]}: {result['non_2xx']} failed responses\n{result['output']}")
    return {"rps": result["rps"], "seconds": seconds, "warm_up_rps": warm_up["rps"]}


def measure_streaming(command: list[str], seconds: int, *, env: dict | None = None) -> dict:
    with harness.server(command, env=env) as url:
        tokens = tokens_per_stream(url)
        harness.wrk(url, STREAM_BODY, seconds=3)
        result = harness.wrk(url, STREAM_BODY, seconds=seconds)
    return {"streams_per_second": result["rps"], "tokens_per_stream": tokens,
            "tokens_per_second": result["rps"] * tokens, "non_2xx": result["non_2xx"]}


def recording_cost(workers: int, seconds: int, pairs: int) -> dict:
    on = harness.fakeai_command("--zero-latency", "--workers", str(workers))
    off = harness.fakeai_command("--zero-latency", "--workers", str(workers), "--record-metrics", "false")
    rps: dict[str, list[float]] = {"on": [], "off": []}
    with harness.server(on) as on_url, harness.server(off) as off_url:
        urls = {"on": on_url, "off": off_url}
        for url in urls.values():
            harness.wrk(url, CHAT_BODY, seconds=3)
        for pair in range(pairs):
            for name in (("on", "off") if pair % 2 == 0 else ("off", "on")):
                rps[name].append(harness.wrk(urls[name], CHAT_BODY, seconds=seconds)["rps"])
    return {"workers": workers, "rps_on": statistics.median(rps["on"]), "rps_off": statistics.median(rps["off"]),
            "on_over_off": statistics.median(a / b for a, b in zip(rps["on"], rps["off"]))}


def scrape_under_load(samples: int, fill_seconds: int, scrapes: int) -> dict:
    """Fill a window to ``samples`` requests, then time scrapes while wrk keeps loading."""
    command = harness.fakeai_command("--zero-latency", "--window-seconds", "3600",
                                     "--max-window-samples", str(samples + samples // 2))
    with harness.server(command) as url:
        with httpx.Client(timeout=120) as client:
            deadline = time.monotonic() + fill_seconds * 4
            while True:
                harness.wrk(url, CHAT_BODY, seconds=fill_seconds)
                first_started = time.perf_counter()
                count = client.get(url + "/metrics").json()["responses"]["/v1/chat/completions"]["count"]
                first_ms = (time.perf_counter() - first_started) * 1000
                if count >= samples or time.monotonic() > deadline:
                    break
            load = threading.Thread(target=harness.wrk, args=(url, CHAT_BODY), kwargs={"seconds": scrapes + 5})
            load.start()
            timings = []
            for _ in range(scrapes):
                time.sleep(1.0)  # one scrape a second, as a busy Prometheus would
                started = time.perf_counter()
                client.get(url + "/metrics/prometheus").raise_for_status()
                timings.append((time.perf_counter() - started) * 1000)
            load.join()
    return {"window_samples": count, "first_scrape_ms": first_ms, "scrape_ms_median": statistics.median(timings),
            "scrape_ms_max": max(timings)}


def rss_kib(pid: int) -> int:
    total = 0
    for process in [pid, *_children(pid)]:
        with open(f"/proc/{process}/status") as status:
            total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return total


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(child) for child in listing.read().split()]
    except FileNotFoundError:
        return []


def soak(seconds: int, rate: int) -> dict:
    command = harness.fakeai_command("--ttft-ms", "5", "--itl-ms", "1")
    samples: list[tuple[float, int]] = []
    with harness.server(command) as url:
        done = threading.Event()

        def sample() -> None:
            started = time.monotonic()
            while not done.wait(5.0):
                samples.append((time.monotonic() - started, rss_kib(url.pid)))

        sampler = threading.Thread(target=sample)
        sampler.start()
        result = harness.fixed_rate(url, CHAT_BODY.encode(), rate, seconds=seconds)
        done.set()
        sampler.join()
    values = [kib for _, kib in samples]
    tail = values[len(values) // 5 :] or values  # after the first fifth (warm-up)
    return {"seconds": seconds, "rate": rate, "achieved_rps": result["achieved_rps"],
            "rss_mib_first": values[0] / 1024, "rss_mib_after_warmup": tail[0] / 1024,
            "rss_mib_end": values[-1] / 1024, "rss_mib_max": max(values) / 1024,
            "rss_growth_after_warmup_mib": (values[-1] - tail[0]) / 1024,
            "rss_mib_series": [(round(at), round(kib / 1024, 1)) for at, kib in samples]}


def machine() -> dict:
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old-fakeai-venv", type=Path, required=True, help="a venv with fakeai==0.3.2 and pillow")
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test, not figures to quote")
    args = parser.parse_args()
    seconds, soak_seconds, pairs = (10, 60, 2) if args.quick else (60, 600, 4)
    results: dict = {"machine": machine(), "quick": args.quick}
    print("non-streaming RPS ...", flush=True)
    results["rps"] = {
        "fakeai": measure_rps(harness.fakeai_command("--zero-latency"), seconds),
        "minimal_litestar": measure_rps(harness.uvicorn_command("benchmarks.apps:minimal_litestar", factory=True),
                                        seconds, ready="/v1/chat/completions", method="POST"),
        "bare_asgi": measure_rps(harness.uvicorn_command("benchmarks.apps:bare_asgi"), seconds,
                                 ready="/v1/chat/completions", method="POST"),
        "fakeai_0_3_2": measure_rps(old_fakeai_command(args.old_fakeai_venv), seconds, env=OLD_FAKEAI_ENV),
    }
    print("streamed tokens/s ...", flush=True)
    results["streaming"] = {
        "fakeai": measure_streaming(harness.fakeai_command("--zero-latency"), seconds // 2),
        "fakeai_0_3_2": measure_streaming(old_fakeai_command(args.old_fakeai_venv), seconds // 2, env=OLD_FAKEAI_ENV),
    }
    print("recording cost with 2 workers ...", flush=True)
    results["recording_two_workers"] = recording_cost(2, max(5, seconds // 4), pairs)
    print("scrape time with a full window under load ...", flush=True)
    results["scrape"] = scrape_under_load(500_000 if not args.quick else 100_000, 20, 10)
    print("RSS soak ...", flush=True)
    results["soak"] = soak(soak_seconds, 1000)

    rps = {name: run["rps"] for name, run in results["rps"].items()}
    ratios = {
        "rps_vs_fakeai_0_3_2": rps["fakeai"] / rps["fakeai_0_3_2"],
        "rps_vs_minimal_litestar": rps["fakeai"] / rps["minimal_litestar"],
        "rps_vs_bare_asgi": rps["fakeai"] / rps["bare_asgi"],
        "streamed_tokens_vs_fakeai_0_3_2": results["streaming"]["fakeai"]["tokens_per_second"]
        / results["streaming"]["fakeai_0_3_2"]["tokens_per_second"],
        "two_worker_recording_on_over_off": results["recording_two_workers"]["on_over_off"],
        "scrape_500k_ms": results["scrape"]["scrape_ms_median"],
    }
    results["ratios"] = ratios
    results["targets"] = TARGETS
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "compare.json").write_text(json.dumps(results, indent=2))
    print(f"\n{results['machine']}")
    print(f"{'figure':<52}{'value':>16}")
    for name, value in rps.items():
        print(f"{'RPS ' + name:<52}{value:>16,.0f}")
    for name, run in results["streaming"].items():
        print(f"{'streamed tokens/s ' + name:<52}{run['tokens_per_second']:>16,.0f}")
    two = results["recording_two_workers"]
    print(f"{'RPS 2 workers, recording on / off':<52}{two['rps_on']:>8,.0f} / {two['rps_off']:,.0f}")
    scrape = results["scrape"]
    print(f"{'scrape, window of %d samples (median, max)' % scrape['window_samples']:<52}"
          f"{scrape['scrape_ms_median']:>9.1f} / {scrape['scrape_ms_max']:.1f} ms")
    soaked = results["soak"]
    print(f"{'RSS during %d s at %d req/s: after warm-up -> end' % (soaked['seconds'], soaked['rate']):<52}"
          f"{soaked['rss_mib_after_warmup']:>9.1f} -> {soaked['rss_mib_end']:.1f} MiB")
    for name, value in ratios.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else (
            ("  ok" if value <= target else "  MISSED") if name.endswith("_ms") else ("  ok" if value >= target else "  MISSED"))
        print(f"{name:<52}{value:>16.2f}{'' if target is None else f'  (target {target})'}{verdict}")


if __name__ == "__main__":
    main()
