"""What `pip install .` installs: the wheel carries every module, the compiled kernel and the
dashboard, and a server installed from it alone, outside the source tree, works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest

from fakeai.api.dashboard import ASSETS
from tests.servers import free_port, stop_process, wait_until_serving

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built as a user's `pip install .` builds it, from a copy without build outputs
    (a stale build/ folder would hide a missing package)."""
    where = tmp_path_factory.mktemp("wheel")
    source = where / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "*.so", "*.cpp", "__pycache__",
                                      "results", ".benchmarks", ".hypothesis", "test-artifacts"),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(where), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = where.glob("fakeai-*.whl")
    return built


def test_the_wheel_carries_every_module_the_kernel_and_the_dashboard(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {path.relative_to(ROOT).as_posix() for path in (ROOT / "fakeai").rglob("*.py")}
    missing = sources - names
    assert not missing, f"modules missing from the wheel: {sorted(missing)}"
    assert any(name.startswith("fakeai/_window.") and name.endswith(".so") for name in names)
    assert "fakeai/py.typed" in names
    assert {"fakeai/dashboard/index.html", *(f"fakeai/dashboard/{asset}" for asset in ASSETS)} <= names
    assert not any(name.endswith((".pyx", ".cpp", ".c")) for name in names), "no sources of the extension"


def test_a_server_installed_from_the_wheel_alone_serves_everything(wheel: Path, tmp_path: Path) -> None:
    """A fresh virtual environment outside the source tree gets the wheel and nothing else of
    fakeai; its dependencies (litestar, uvicorn, msgspec) are borrowed from the test environment
    by a path file, so no network is needed. Settings come only from FAKEAI_* variables."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    (purelib / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    located = subprocess.run([str(python), "-c", "import fakeai._window, fakeai; print(fakeai.__file__)"],
                             check=True, capture_output=True, text=True, cwd=tmp_path).stdout.strip()
    assert located.startswith(str(venv)), f"fakeai came from {located}, not the wheel"

    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("FAKEAI_", "PYTHON"))}
    environment.update(FAKEAI_HOST="127.0.0.1", FAKEAI_PORT=str(port), FAKEAI_ZERO_LATENCY="true",
                       FAKEAI_MODELS="my-model", FAKEAI_DASHBOARD_REFRESH_SECONDS="7")
    process = subprocess.Popen([str(venv / "bin" / "fakeai"), "serve"], cwd=tmp_path, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base_url, process)
        with httpx.Client(base_url=base_url, timeout=10) as client:
            assert client.get("/health").json()["status"] == "healthy"
            answer = client.post("/v1/chat/completions",
                                 json={"model": "my-model", "messages": [{"role": "user", "content": "hi"}]})
            assert answer.status_code == 200 and answer.json()["model"] == "my-model"
            prometheus = client.get("/metrics/prometheus").text
            assert 'fakeai_requests_total{endpoint="/v1/chat/completions"} 1' in prometheus
            assert "fakeai_kernel_compiled 1" in prometheus
            page = client.get("/dashboard")
            assert page.status_code == 200 and 'data-refresh-seconds="7.0"' in page.text
            for asset in ASSETS:
                response = client.get(f"/dashboard/{asset}")
                assert response.status_code == 200 and response.content == (ROOT / "fakeai" / "dashboard" / asset).read_bytes()
    finally:
        stop_process(process)
        process.stdout.close()  # type: ignore[union-attr]
