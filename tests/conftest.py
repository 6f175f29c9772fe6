from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import settings

settings.register_profile("fuzz", max_examples=10_000, deadline=None)
"""The dedicated slow run of the fuzz suite: ``pytest tests/test_fuzz.py --hypothesis-profile=fuzz``."""

from fakeai import _prefix_py, _region_py, _window_py
from fakeai._extensions import KERNEL, NO_EXTENSIONS

try:
    from fakeai import _prefix, _region, _window
except ImportError:  # pragma: no cover - the suite insists below unless told otherwise
    COMPILED = None
else:
    COMPILED = SimpleNamespace(window=_window, prefix=_prefix, region=_region)
    """The compiled kernels."""

PYTHON = SimpleNamespace(window=_window_py, prefix=_prefix_py, region=_region_py)
"""The pure-Python twins: the reference every compiled kernel is tested against."""

KERNEL_SIDES = [pytest.param(PYTHON, id="python")]
if not NO_EXTENSIONS:
    KERNEL_SIDES.append(pytest.param(COMPILED, id="compiled"))


def pytest_report_header() -> str:
    return f"fakeai kernels in use: {KERNEL} (FAKEAI_NO_EXTENSIONS={'1' if NO_EXTENSIONS else 'unset'})"


def pytest_sessionstart(session: pytest.Session) -> None:
    # A missing build must fail loudly, not quietly test the fallback twice.
    if not NO_EXTENSIONS and (COMPILED is None or KERNEL != "compiled"):
        raise pytest.UsageError(
            "the compiled kernels fakeai._window, fakeai._prefix and fakeai._region are not built (or are "
            "built from an older source); run `pip install -e .` or set FAKEAI_NO_EXTENSIONS=1 to test the "
            "pure-Python twins on purpose"
        )


@pytest.fixture(params=KERNEL_SIDES, scope="session")
def kernels(request: pytest.FixtureRequest) -> SimpleNamespace:
    """One side's three kernels (``.window``, ``.prefix``, ``.region``): each test using it (or
    one of the fixtures below) runs against the pure-Python twins and the compiled kernels."""
    return request.param


@pytest.fixture(scope="session")
def window_kernel(kernels: SimpleNamespace):
    """``fakeai._window_py`` or ``fakeai._window``."""
    return kernels.window


@pytest.fixture(scope="session")
def prefix_kernel(kernels: SimpleNamespace):
    """``fakeai._prefix_py`` or ``fakeai._prefix``."""
    return kernels.prefix


@pytest.fixture(scope="session")
def region_kernel(kernels: SimpleNamespace):
    """``fakeai._region_py`` or ``fakeai._region`` (with ``window_kernel``: the same side's windows)."""
    return kernels.region


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With the twins forced there is no compiled side to compare them with: the tests marked
    ``compiled_vs_twin`` are left out of that run (they ran in the normal one), not skipped."""
    if not NO_EXTENSIONS:
        return
    left_out = [item for item in items if item.get_closest_marker("compiled_vs_twin")]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not item.get_closest_marker("compiled_vs_twin")]
