"""What `pip install .` and the Dockerfile install: the wheel carries every module, the compiled
kernel and the dashboard, and a server installed from that wheel alone, outside the source
tree and configured only by FAKEAI_* variables, works. No Docker engine runs here, so the
container recipe's steps are proven one by one instead."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest

from fakeai.api.dashboard import ASSETS
from tests.servers import eventually, free_port, stop_process, wait_until_serving

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in joined.splitlines()
            if line.strip()]


INSTRUCTIONS = _instructions(DOCKERFILE)


def test_the_container_recipe_is_multi_stage_non_root_and_checks_its_health() -> None:
    stages = [arguments for instruction, arguments in INSTRUCTIONS if instruction == "FROM"]
    assert len(stages) == 2 and stages[0].endswith("AS build"), "a build stage, then the runtime"
    runtime = INSTRUCTIONS[[i for i, (instruction, _) in enumerate(INSTRUCTIONS) if instruction == "FROM"][1]:]
    runtime_copies = [arguments for instruction, arguments in runtime if instruction == "COPY"]
    assert runtime_copies == ["--from=build /wheels /wheels"], "the runtime gets the wheel and nothing else"
    users = [arguments for instruction, arguments in runtime if instruction == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert ("EXPOSE", "8000") in runtime
    (healthcheck,) = [arguments for instruction, arguments in runtime if instruction == "HEALTHCHECK"]
    assert "/health" in healthcheck
    (entrypoint,) = [arguments for instruction, arguments in runtime if instruction == "ENTRYPOINT"]
    assert entrypoint == '["fakeai", "serve", "--host", "0.0.0.0"]'
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "**/*.so", "build"} <= set(ignored)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built as the Dockerfile's build stage builds it: from a folder holding only
    what it COPYs, with its `pip wheel` command (here without build isolation: the test
    environment's setuptools and Cython, so no network is needed)."""
    where = tmp_path_factory.mktemp("wheel")
    context = where / "context"
    context.mkdir()
    build = INSTRUCTIONS[: [i for i, (instruction, _) in enumerate(INSTRUCTIONS) if instruction == "FROM"][1]]
    for instruction, arguments in build:
        if instruction != "COPY":
            continue
        *sources, _ = arguments.split()
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():
                shutil.copytree(origin, context / source,
                                ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.cpp", "*.c"))
            else:
                shutil.copy(origin, context / source)
    (command,) = [arguments for instruction, arguments in build
                  if instruction == "RUN" and "pip wheel" in arguments]
    argv = shlex.split(command.replace("/wheels", str(where)))
    assert argv[:4] == ["python", "-m", "pip", "wheel"]
    subprocess.run([sys.executable, *argv[1:4], "--no-build-isolation", "-q", *argv[4:]], cwd=context, check=True,
                   capture_output=True)
    (built,) = where.glob("fakeai-*.whl")
    return built


def test_the_wheel_carries_every_module_the_kernel_and_the_dashboard(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {path.relative_to(ROOT).as_posix() for path in (ROOT / "fakeai").rglob("*.py")}
    missing = sources - names
    assert not missing, f"modules missing from the wheel: {sorted(missing)}"
    for kernel in ("_window", "_prefix", "_region"):
        assert any(name.startswith(f"fakeai/{kernel}.") and name.endswith(".so") for name in names), kernel
    assert "fakeai/py.typed" in names
    assert {"fakeai/dashboard/index.html", *(f"fakeai/dashboard/{asset}" for asset in ASSETS)} <= names
    assert not any(name.endswith((".pyx", ".pxd", ".cpp", ".c")) for name in names), "no extension sources"
    (license_file,) = [name for name in names if ".dist-info/" in name and name.endswith("/LICENSE")]
    assert "Apache License\n                           Version 2.0" in zipfile.ZipFile(wheel).read(license_file).decode()
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "fakeai = fakeai.cli:main" in text and "fakeai = fakeai.pytest_plugin" in text


def test_a_server_installed_from_the_wheel_alone_serves_everything(wheel: Path, tmp_path: Path) -> None:
    """A fresh virtual environment outside the source tree gets the wheel and nothing else of
    fakeai; its dependencies (litestar, uvicorn, msgspec) are borrowed from the test environment
    by a path file, so no network is needed. Settings come only from FAKEAI_* variables (the
    host too: tests bind loopback, where the image's entry point binds 0.0.0.0)."""
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
    imports = "import fakeai._window, fakeai._prefix, fakeai._region, fakeai; print(fakeai.__file__)"
    located = subprocess.run([str(python), "-c", imports],
                             check=True, capture_output=True, text=True, cwd=tmp_path).stdout.strip()
    assert located.startswith(str(venv)), f"fakeai came from {located}, not the wheel"

    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("FAKEAI_", "PYTHON"))}
    environment["PATH"] = f"{venv / 'bin'}:{environment.get('PATH', '')}"
    environment.update(FAKEAI_HOST="127.0.0.1", FAKEAI_PORT=str(port), FAKEAI_ZERO_LATENCY="true",
                       FAKEAI_MODELS="my-model", FAKEAI_DASHBOARD_REFRESH_SECONDS="7", FAKEAI_WORKERS="2")
    (healthcheck,) = [arguments for instruction, arguments in INSTRUCTIONS if instruction == "HEALTHCHECK"]
    probe = healthcheck.split(" CMD ", 1)[1]
    process = subprocess.Popen([str(venv / "bin" / "fakeai"), "serve"], cwd=tmp_path, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base_url, process)
        # /health answers once one worker is up; the second may still be starting
        eventually(lambda: "fakeai_processes 2" in httpx.get(base_url + "/metrics/prometheus", timeout=5).text,
                   "both workers are up", seconds=30)
        assert subprocess.run(probe, shell=True, env=environment, capture_output=True).returncode == 0
        with httpx.Client(base_url=base_url, timeout=10) as client:
            assert client.get("/health").json()["status"] == "healthy"
            answer = client.post("/v1/chat/completions",
                                 json={"model": "my-model", "messages": [{"role": "user", "content": "hi"}]})
            assert answer.status_code == 200 and answer.json()["model"] == "my-model"
            prometheus = client.get("/metrics/prometheus").text
            assert 'fakeai_requests_total{endpoint="/v1/chat/completions"} 1' in prometheus
            assert "fakeai_kernel_compiled 1" in prometheus and "fakeai_processes 2" in prometheus
            page = client.get("/dashboard")
            assert page.status_code == 200 and 'data-refresh-seconds="7.0"' in page.text
            for asset in ASSETS:
                response = client.get(f"/dashboard/{asset}")
                assert response.status_code == 200 and response.content == (ROOT / "fakeai" / "dashboard" / asset).read_bytes()
    finally:
        stop_process(process)
        process.stdout.close()  # type: ignore[union-attr]
    assert subprocess.run(probe, shell=True, env=environment, capture_output=True).returncode != 0, (
        "the health check fails once the server is gone")
