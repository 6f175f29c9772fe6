"""A server process's garbage collector: no collection for what requests hold in flight, one
when cyclic garbage piles up."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from fakeai.app import SERVING_COLLECTION_THRESHOLD


def test_a_server_process_collects_when_garbage_piles_up_not_for_what_is_in_flight() -> None:
    # in a process of its own: the collector's settings are the whole process's
    script = textwrap.dedent(f"""
        import gc
        from fakeai.app import prepare_collector_for_serving

        collections = []
        prepare_collector_for_serving()
        gc.callbacks.append(lambda phase, info: phase == "stop" and collections.append(info))
        in_flight = [[index] for index in range({SERVING_COLLECTION_THRESHOLD} * 9 // 10)]
        del in_flight  # freed by reference counting: nothing to collect
        assert collections == [], collections
        for _ in range({SERVING_COLLECTION_THRESHOLD} + 100):  # cycles: only a collection frees them
            cycle = []
            cycle.append(cycle)
        assert collections and sum(info["collected"] for info in collections) > 0, collections
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
