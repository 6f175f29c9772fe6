"""Which kernels are in use: a compiled build that lacks a name (left from an older checkout)
is not used, and the twins serve instead of the server failing to start."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fakeai


STALE_PREFIX_BUILD = """
import sys, types
import fakeai._prefix as built
stale = types.ModuleType("fakeai._prefix")  # a build from before least_busy
stale.PrefixCache, stale.block_hashes = built.PrefixCache, built.block_hashes
sys.modules["fakeai._prefix"] = stale
from fakeai import prefix, region, window
from fakeai.simulation.kvcache import KVCacheSimulator
routing = KVCacheSimulator(workers=3).route(["a short prompt"], [3])
print(prefix.KERNEL, window.SlidingWindow.__module__, region.Region.__module__, prefix.least_busy.__module__)
"""


@pytest.mark.compiled_vs_twin  # with the twins forced there is no build to be stale: left out, not skipped
def test_a_compiled_kernel_missing_a_name_leaves_every_kernel_to_its_twin() -> None:
    env = {name: value for name, value in os.environ.items() if name != "FAKEAI_NO_EXTENSIONS"}
    result = subprocess.run([sys.executable, "-c", STALE_PREFIX_BUILD], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["python", "fakeai._window_py", "fakeai._region_py", "fakeai._prefix_py"]


@pytest.mark.parametrize("facade", ["window", "prefix", "region"])
def test_each_kernel_facade_imports_from_its_kernel_the_names_checked_to_be_built(facade: str) -> None:
    """``fakeai.<facade>`` imports the same names from the compiled kernel and from its twin,
    and ``COMPILED_NAMES`` (what decides whether a build is complete) lists exactly those."""
    from fakeai._extensions import COMPILED_NAMES

    tree = ast.parse(Path(fakeai.__file__).with_name(f"{facade}.py").read_text())
    imported = {node.module: sorted(alias.name for alias in node.names)
                for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    compiled, twin = f"fakeai._{facade}", f"fakeai._{facade}_py"
    assert imported[compiled] == imported[twin] == sorted(COMPILED_NAMES[compiled])
