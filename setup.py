"""Builds the compiled kernels; all metadata lives in pyproject.toml.

Three extensions, each the fast twin of a pure-Python module: ``fakeai._window`` (sliding
windows, C++ for ``std::nth_element``), ``fakeai._prefix`` (block hashing and the prefix
cache, C++ for its hash map) and ``fakeai._region`` (the shared-memory metrics region and
its writer; it cimports ``fakeai/_window.pxd``). Set ``FAKEAI_NO_EXTENSIONS=1`` to build
without them (the pure-Python twins are used then).

``FAKEAI_KERNEL_CACHE=DIR`` keeps each built kernel in ``DIR``, named by a digest of
everything its build depends on (this file, its ``.pyx``, every ``.pxd``, Cython's and
Python's versions, the compiler), and copies it from there instead of building it again: the
test command sets it, so a fresh checkout on a machine that has built the same kernels before
skips the minutes of compiling.
"""

import hashlib
import os
import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
DIRECTIVES = {"language_level": 3, "embedsignature": True}

ext_modules = []
cmdclass = {}
if os.environ.get("FAKEAI_NO_EXTENSIONS", "") in ("", "0"):
    import Cython
    from Cython.Build import cythonize
    from setuptools import Extension
    from setuptools.command.build_ext import build_ext

    def kernel(name: str, language: str) -> Extension:
        return Extension(
            f"fakeai.{name}", [f"fakeai/{name}.pyx"], language=language, extra_compile_args=["-O3"]
        )

    def build_digest(ext: Extension) -> str:
        digest = hashlib.sha256()
        inputs = [HERE / "setup.py", *(HERE / source for source in ext.sources), *sorted(HERE.glob("fakeai/*.pxd"))]
        for path in inputs:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        for part in (ext.name, ext.language, Cython.__version__, sys.version, sysconfig.get_config_var("EXT_SUFFIX"),
                     os.environ.get("CC", ""), os.environ.get("CFLAGS", "")):
            digest.update(str(part).encode() + b"\0")
        return digest.hexdigest()[:24]

    class BuildKernels(build_ext):
        """Cythonizes and compiles each kernel, or copies it from ``FAKEAI_KERNEL_CACHE``."""

        def build_extension(self, ext: Extension) -> None:
            cache = os.environ.get("FAKEAI_KERNEL_CACHE", "")
            target = Path(self.get_ext_fullpath(ext.name))
            cached = Path(cache) / f"{ext.name}-{build_digest(ext)}{sysconfig.get_config_var('EXT_SUFFIX')}"
            if cache and cached.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(cached, target)
                os.utime(cached)  # in use (the test command removes kernels unused for a week)
                return
            ext.sources = cythonize([ext], compiler_directives=DIRECTIVES)[0].sources
            super().build_extension(ext)
            if cache:  # written whole, then renamed: a concurrent build never reads half a kernel
                cached.parent.mkdir(parents=True, exist_ok=True)
                partial = cached.with_name(f"{cached.name}.{os.getpid()}.partial")
                shutil.copyfile(target, partial)
                partial.replace(cached)

    ext_modules = [kernel("_window", "c++"), kernel("_prefix", "c++"), kernel("_region", "c")]
    cmdclass = {"build_ext": BuildKernels}

setup(ext_modules=ext_modules, cmdclass=cmdclass)
