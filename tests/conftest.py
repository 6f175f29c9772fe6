from __future__ import annotations

import pytest
from hypothesis import settings

settings.register_profile("fuzz", max_examples=10_000, deadline=None)
"""The dedicated slow run of the fuzz suite: ``pytest tests/test_fuzz.py --hypothesis-profile=fuzz``."""

from fakeai import _window_py
from fakeai.window import KERNEL, NO_EXTENSIONS

try:
    from fakeai import _window as _window_compiled
except ImportError:  # pragma: no cover - the suite insists below unless told otherwise
    _window_compiled = None

KERNEL_MODULES = [pytest.param(_window_py, id="python")]
if not NO_EXTENSIONS:
    KERNEL_MODULES.append(pytest.param(_window_compiled, id="compiled"))


def pytest_report_header() -> str:
    return f"fakeai kernel in use: {KERNEL} (FAKEAI_NO_EXTENSIONS={'1' if NO_EXTENSIONS else 'unset'})"


def pytest_sessionstart(session: pytest.Session) -> None:
    # A missing build must fail loudly, not quietly test the fallback twice.
    if not NO_EXTENSIONS and _window_compiled is None:
        raise pytest.UsageError(
            "the compiled kernel fakeai._window is not built; run `pip install -e .` "
            "or set FAKEAI_NO_EXTENSIONS=1 to test the pure-Python twin on purpose"
        )


@pytest.fixture(params=KERNEL_MODULES, scope="session")
def kernel(request: pytest.FixtureRequest):
    """Each test using it runs against the pure-Python twin and the compiled kernel."""
    return request.param
