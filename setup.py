"""Builds the compiled kernels; all metadata lives in pyproject.toml.

Three extensions, each the fast twin of a pure-Python module: ``fakeai._window`` (sliding
windows, C++ for ``std::nth_element``), ``fakeai._prefix`` (block hashing and the prefix
cache, C++ for its hash map) and ``fakeai._region`` (the shared-memory metrics region and
its writer; it cimports ``fakeai/_window.pxd``). Set ``FAKEAI_NO_EXTENSIONS=1`` to build
without them (the pure-Python twins are used then).
"""

import os

from setuptools import setup

ext_modules = []
if os.environ.get("FAKEAI_NO_EXTENSIONS", "") in ("", "0"):
    from Cython.Build import cythonize
    from setuptools import Extension

    def kernel(name: str, language: str) -> Extension:
        return Extension(
            f"fakeai.{name}", [f"fakeai/{name}.pyx"], language=language, extra_compile_args=["-O3"]
        )

    ext_modules = cythonize(
        [kernel("_window", "c++"), kernel("_prefix", "c++"), kernel("_region", "c")],
        compiler_directives={"language_level": 3, "embedsignature": True},
    )

setup(ext_modules=ext_modules)
