"""Plain chat RPS of fakeai against bare ASGI and a minimal Litestar route, in one run.

    .venv/bin/python -m benchmarks.plain_rps                      # 7 rounds of 5 s
    .venv/bin/python -m benchmarks.plain_rps --baseline /tmp/base # also an older checkout

Every server runs at once, pinned to core 0 (``harness``), and is loaded in turn by wrk on
core 1 (64 connections, ``compare.py``'s chat body, zero latency), the order of the servers
reversed every other round; each ratio is the median of the per-round ratios, so a drift of
the machine during the run affects numerator and denominator alike. ``--baseline`` names a
directory holding another fakeai source tree (e.g. ``git archive`` of an earlier commit, with
this checkout's compiled kernels copied in): it is served by this interpreter, importing
``fakeai`` from that tree rather than from this checkout.

Besides requests per second, each server's CPU time per request is read from ``/proc`` (user
plus system): on a machine that other work also loads, the server gets less of its core and
its RPS falls, but what one request costs it changes much less.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics

from benchmarks import harness
from benchmarks.compare import CHAT_BODY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--baseline", help="another fakeai source tree to serve beside this one")
    args = parser.parse_args()
    servers = {
        "fakeai": (harness.fakeai_command("--zero-latency"), {}, "/health", "GET"),
        "bare_asgi": (harness.uvicorn_command("benchmarks.apps:bare_asgi"), {}, "/v1/chat/completions", "POST"),
        "minimal_litestar": (harness.uvicorn_command("benchmarks.apps:minimal_litestar", factory=True), {},
                             "/v1/chat/completions", "POST"),
    }
    if args.baseline:
        servers["baseline"] = (baseline_command(args.baseline, "--zero-latency"), {}, "/health", "GET")
    rps: dict[str, list[float]] = {name: [] for name in servers}
    cpu_us: dict[str, list[float]] = {name: [] for name in servers}
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(harness.server(command, env=env, ready_path=path, ready_method=method))
                for name, (command, env, path, method) in servers.items()}
        for url in urls.values():
            harness.wrk(url, CHAT_BODY, seconds=2)
        names = list(urls)
        for index in range(args.rounds):
            for name in names if index % 2 == 0 else names[::-1]:
                cpu_before = urls[name].cpu_seconds()
                result = harness.wrk(urls[name], CHAT_BODY, seconds=args.seconds)
                if result["non_2xx"] or result["socket_errors"]:
                    raise RuntimeError(f"{name}: {result['output']}")
                rps[name].append(result["rps"])
                cpu_us[name].append((urls[name].cpu_seconds() - cpu_before) / (result["rps"] * args.seconds) * 1e6)
            print(" ".join(f"{name} {values[-1]:,.0f} ({cpu_us[name][-1]:.1f} us)" for name, values in rps.items()),
                  flush=True)
    print(f"\n{'server':<20}{'median RPS':>11}{'fakeai / it':>12}{'it / bare':>10}{'CPU us/req':>11}"
          f"{'it / fakeai':>12}{'bare / it':>10}")
    for name, values in rps.items():
        ratio = statistics.median(a / b for a, b in zip(rps["fakeai"], values))
        to_bare = statistics.median(a / b for a, b in zip(values, rps["bare_asgi"]))
        cpu_ratio = statistics.median(b / a for a, b in zip(cpu_us["fakeai"], cpu_us[name]))
        cpu_to_bare = statistics.median(b / a for a, b in zip(cpu_us[name], cpu_us["bare_asgi"]))
        print(f"{name:<20}{statistics.median(values):>11,.0f}{ratio:>12.3f}{to_bare:>10.3f}"
              f"{statistics.median(cpu_us[name]):>11.1f}{cpu_ratio:>12.3f}{cpu_to_bare:>10.3f}")
    print("(fakeai / it, it / bare: ratios of RPS; it / fakeai, bare / it: ratios of CPU time per request,")
    print(" the same ratios when the server has its core to itself; medians of the per-round ratios)")


def baseline_command(tree: str, *flags: str) -> list[str]:
    """``fakeai serve`` from the source tree ``tree`` (this interpreter's editable install of this
    checkout set aside)."""
    launch = ("import sys; sys.path.insert(0, %r); "
              "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '')]; "
              "[sys.modules.pop(m) for m in list(sys.modules) if m == 'fakeai' or m.startswith('fakeai.')]; "
              "from fakeai.cli import main; sys.exit(main(sys.argv[1:]))" % tree)
    return [harness.PYTHON, "-c", launch, "serve", "--port", "{port}", "--log-level", "warning", *flags]


if __name__ == "__main__":
    main()
