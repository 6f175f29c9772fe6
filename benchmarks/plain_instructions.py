"""Server instructions per plain chat request (valgrind's callgrind): ratios a busy machine does not move.

    .venv/bin/python -m benchmarks.plain_instructions                      # about 5 minutes
    .venv/bin/python -m benchmarks.plain_instructions --baseline /tmp/base # also an older checkout
    .venv/bin/python -m benchmarks.plain_instructions --only fakeai_recording_off  # what recording costs

On a machine shared with other work, requests per second measure the machine's load as much
as the server, and so does CPU time per request (caches, clock, the hypervisor's share). The
number of instructions a server executes per request does not depend on them. Each server
(``plain_rps``'s, a Litestar ``@asgi`` route, Litestar's floor, and fakeai with
``--record-metrics false``: recording's share) runs under callgrind with
its instrumentation off; wrk warms it up, then instrumentation is switched on
(``callgrind_control``), wrk loads it for ``--seconds`` (16 connections, ``compare.py``'s chat
body, zero latency), instrumentation is switched off and the counts are read: instructions
executed by the server process (uvicorn, the application, everything in user space) divided
by the requests wrk completed. fakeai's metrics history is sampled once an hour here: under
valgrind a server serves a few hundred requests a second, and a sample a second would be
charged to each of them fifty times more than at full speed.

Instructions are not time (a cache miss or a system call costs more than an instruction, and
the kernel's work is not counted), but on an idle machine the RPS ratios follow these ratios
(README, "Plain requests"). Needs valgrind (Debian package ``valgrind``) and wrk.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import tempfile

from benchmarks import harness
from benchmarks.compare import CHAT_BODY
from benchmarks.plain_rps import baseline_command

QUIET = ("--history-interval-seconds", "3600", "--history-seconds", "3600", "--history-downsample-seconds",
         "3600")
"""fakeai's flags here: no periodic work charged to the slow instrumented requests (see above)."""


def servers(baseline: str | None) -> dict[str, tuple[list[str], str, str]]:
    """Name: (command, ready path, ready method)."""
    chosen = {
        "bare_asgi": (harness.uvicorn_command("benchmarks.apps:bare_asgi"), "/v1/chat/completions", "POST"),
        "litestar_asgi_route": (harness.uvicorn_command("benchmarks.apps:litestar_asgi_route", factory=True),
                                "/v1/chat/completions", "POST"),
        "minimal_litestar": (harness.uvicorn_command("benchmarks.apps:minimal_litestar", factory=True),
                             "/v1/chat/completions", "POST"),
        "fakeai": (harness.fakeai_command("--zero-latency", *QUIET), "/health", "GET"),
        "fakeai_recording_off": (harness.fakeai_command("--zero-latency", "--record-metrics", "false", *QUIET),
                                 "/health", "GET"),
    }
    if baseline:
        chosen["baseline"] = (baseline_command(baseline, "--zero-latency", *QUIET), "/health", "GET")
    return chosen


def instructions_per_request(command: list[str], ready_path: str, ready_method: str, seconds: int) -> float:
    with tempfile.TemporaryDirectory() as directory:
        out = os.path.join(directory, "callgrind.out")
        callgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        with harness.server([*callgrind, *command], ready_path=ready_path, ready_method=ready_method,
                            start_seconds=600) as url:
            harness.wrk(url, CHAT_BODY, seconds=5, connections=16, timeout_seconds=60)
            subprocess.run(["callgrind_control", "-i", "on", str(url.pid)], check=True, capture_output=True)
            result = harness.wrk(url, CHAT_BODY, seconds=seconds, connections=16, timeout_seconds=60)
            subprocess.run(["callgrind_control", "-i", "off", str(url.pid)], check=True, capture_output=True)
            subprocess.run(["callgrind_control", "-d", str(url.pid)], check=True, capture_output=True)
        if result["non_2xx"] or result["socket_errors"]:
            raise RuntimeError(result["output"])
        requests = int(re.search(r"(\d+) requests in", result["output"]).group(1))  # type: ignore[union-attr]
        total = 0
        for name in glob.glob(out + "*"):  # the dump, and the (empty) counts at exit
            with open(name) as counts:
                for line in counts:
                    if line.startswith("totals:"):  # (its "summary:" line repeats the count)
                        total += int(line.split()[1])
        return total / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=20, help="instrumented load per server")
    parser.add_argument("--baseline", help="another fakeai source tree (as plain_rps's --baseline)")
    parser.add_argument("--only", help="these servers, comma-separated (bare_asgi and fakeai are always measured)")
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    counts = {}
    chosen = servers(args.baseline)
    if args.only:
        wanted = {"bare_asgi", "fakeai", *args.only.split(",")}
        if wanted - set(chosen):
            raise SystemExit(f"no such server (or --baseline not given): {', '.join(sorted(wanted - set(chosen)))}")
        chosen = {name: server for name, server in chosen.items() if name in wanted}
    for name, (command, path, method) in chosen.items():
        counts[name] = instructions_per_request(command, path, method, args.seconds)
        print(f"{name:<22}{counts[name]:>12,.0f} instructions/request", flush=True)
    print(f"\n{'server':<22}{'instr/request':>14}{'bare / it':>11}{'it / fakeai':>13}")
    for name, count in counts.items():
        bare, fakeai = counts["bare_asgi"], counts["fakeai"]
        print(f"{name:<22}{count:>14,.0f}{bare / count:>11.3f}{count / fakeai:>13.3f}")
    print("(bare / it: the RPS ratio to bare ASGI this server would have if time followed instructions)")
    if "fakeai_recording_off" in counts:
        print(f"recording on / off, as a requests-per-second ratio if time followed instructions: "
              f"{counts['fakeai_recording_off'] / counts['fakeai']:.3f}")


if __name__ == "__main__":
    main()
