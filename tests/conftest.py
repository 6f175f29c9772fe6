from __future__ import annotations

import gc
from collections.abc import Iterator
from types import SimpleNamespace

import httpx._transports.default
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


def _one_default_tls_context() -> None:
    """httpx makes a TLS context for every client it makes (57 ms here: it loads certifi's CA
    bundle), and ``httpx.get`` makes a client per call: the suite's thousands of requests to its
    plain-HTTP loopback servers spent minutes there. The default context (verify=True, no client
    certificate) is made once and shared; any other is made as httpx makes it."""
    make = httpx._transports.default.create_ssl_context
    shared = make()

    def create_ssl_context(verify=True, cert=None, trust_env=True):
        return shared if verify is True and cert is None else make(verify=verify, cert=cert, trust_env=trust_env)

    httpx._transports.default.create_ssl_context = create_ssl_context


_one_default_tls_context()

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


def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything collection made (the modules, fakeai, its dependencies: some 300,000 objects)
    lives until the end: frozen out of the collector's reach, a full collection traverses only
    what tests make (one of the whole heap took 340 ms here)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _no_collection_pauses_while_timing(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test marked ``timing`` compares a client's clock with the server's to milliseconds;
    a garbage collection in the test's process in the middle (tens of milliseconds on pytest's
    heap) moves its client's arrivals, not the server's: the collector waits until it is done."""
    if request.node.get_closest_marker("timing") is None:
        yield
        return
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
