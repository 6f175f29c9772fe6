"""Builds the compiled sliding-window kernel; all metadata lives in pyproject.toml.

Set ``FAKEAI_NO_EXTENSIONS=1`` to build without it (the pure-Python twin is used then).
"""

import os

from setuptools import setup

ext_modules = []
if os.environ.get("FAKEAI_NO_EXTENSIONS", "") in ("", "0"):
    from Cython.Build import cythonize
    from setuptools import Extension

    ext_modules = cythonize(
        [Extension("fakeai._window", ["fakeai/_window.pyx"], language="c++", extra_compile_args=["-O3"])],
        compiler_directives={"language_level": 3, "embedsignature": True},
    )

setup(ext_modules=ext_modules)
