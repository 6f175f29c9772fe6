"""What `pip install .` installs: the wheel carries every module and the compiled kernel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_every_module_and_the_kernel(tmp_path: Path) -> None:
    # Build from a copy without build outputs: a stale build/ folder would hide a missing package.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "*.so", "*.cpp", "__pycache__",
                                      "results", ".benchmarks", ".hypothesis"),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("fakeai-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {path.relative_to(ROOT).as_posix() for path in (ROOT / "fakeai").rglob("*.py")}
    missing = sources - names
    assert not missing, f"modules missing from the wheel: {sorted(missing)}"
    assert any(name.startswith("fakeai/_window.") and name.endswith(".so") for name in names)
    assert "fakeai/py.typed" in names
    assert not any(name.endswith((".pyx", ".cpp", ".c")) for name in names), "no sources of the extension"
