"""A real Prometheus server (Debian's package) on loopback, and its promtool, for tests."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.servers import free_port, stop_process


def promtool(*arguments: str) -> subprocess.CompletedProcess:
    """``promtool`` (Debian's, beside the server) with ``arguments``; its output captured."""
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: scripts/test.sh installs Debian's prometheus package"
    return subprocess.run([binary, *arguments], capture_output=True, text=True)


class Prometheus:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def query(self, promql: str) -> list[dict]:
        response = httpx.get(self.base_url + "/api/v1/query", params={"query": promql}, timeout=5)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for(self, promql: str, condition, seconds: float = 30.0) -> list[dict]:
        """Poll ``promql`` until ``condition(result)`` holds (scrapes take their interval)."""
        deadline = time.monotonic() + seconds
        while True:
            result = self.query(promql)
            if condition(result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{promql!r} never satisfied the condition; last result {result}")
            time.sleep(0.25)


@contextlib.contextmanager
def running_prometheus(config: str, rule_files: dict[str, str] | None = None) -> Iterator[Prometheus]:
    """Prometheus with ``config`` (YAML; ``{rules_dir}`` is replaced by the rules' folder)."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: scripts/test.sh installs Debian's prometheus package"
    with tempfile.TemporaryDirectory(prefix="fakeai-prometheus-") as folder:
        root = Path(folder)
        for name, text in (rule_files or {}).items():
            (root / name).write_text(text)
        (root / "prometheus.yml").write_text(config.replace("{rules_dir}", str(root)))
        port = free_port()
        process = subprocess.Popen(
            [binary, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"prometheus exited: {process.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
                try:
                    if httpx.get(base_url + "/-/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("prometheus did not become ready")
                time.sleep(0.1)
            yield Prometheus(base_url)
        finally:
            stop_process(process)
            process.stderr.close()  # type: ignore[union-attr]
