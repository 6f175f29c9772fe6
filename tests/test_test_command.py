"""The test command (scripts/test.sh) tests every Python fakeai says it supports, and fails when
one is missing."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = (ROOT / "scripts" / "test.sh").read_text()
INTERPRETER = re.search(r"^interpreter\(\) \{.*?^\}\n", SCRIPT, re.M | re.S)[0]


def find(version: str, path: str) -> subprocess.CompletedProcess[str]:
    """The script's ``interpreter VERSION`` with ``path`` as PATH (pyenv found only through it)."""
    environment = {"PATH": path, "HOME": "/nonexistent"}
    return subprocess.run(["bash", "-c", f"{INTERPRETER}\ninterpreter {version}"], env=environment,
                          capture_output=True, text=True, timeout=60)


def test_every_python_the_package_names_is_tested() -> None:
    classifiers = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["classifiers"]
    named = {line.rsplit(" :: ", 1)[1] for line in classifiers
             if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", line)}
    others = set(re.search(r"^other_pythons=\(([^)]*)\)", SCRIPT, re.M)[1].split())
    assert re.search(r'^python=\$\(interpreter 3\.11\)$', SCRIPT, re.M), "the whole suite runs on 3.11"
    assert named == {"3.11"} | others
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == f">={min(named, key=lambda version: tuple(map(int, version.split('.'))))}"


def test_a_missing_python_fails_the_run_loudly() -> None:
    done = find("3.99", "/usr/bin:/bin")
    assert done.returncode == 1 and done.stdout == ""
    assert "no Python 3.99 on this machine" in done.stderr


def test_a_present_python_is_found() -> None:
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    done = find(here, str(Path(sys.executable).parent) + ":/usr/bin:/bin")
    assert done.returncode == 0, done.stderr
    found = done.stdout.strip()
    version = subprocess.run([found, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                             text=True, check=True)
    assert version.stdout.strip() == str(sys.version_info[:2])
