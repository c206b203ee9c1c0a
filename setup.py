"""Build grpcpy: the Cython sources in _cext/ become the extension grpcpy._cext.

The extension is one compilation unit (_cext/_cext.pyx includes its parts), so
the codec and the core call each other as plain C functions.

Switches (environment variables, so they work through `pip install`):
  GRPCPY_CYTHON_ANNOTATE=1  write _cext/*.html annotation files (`cython -a`)
  GRPCPY_DEBUG=1            no optimisation, assertions and line tracing on
                            (for coverage and line profilers)
"""
import os

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError as exc:  # pragma: no cover - pyproject.toml declares Cython
    raise SystemExit(
        "grpcpy needs Cython to build; `pip install .` installs it as a build "
        "requirement (pyproject.toml). For a manual build: pip install Cython"
    ) from exc

DEBUG = os.environ.get("GRPCPY_DEBUG") == "1"
ANNOTATE = os.environ.get("GRPCPY_CYTHON_ANNOTATE") == "1"

directives = {
    "language_level": "3",
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": True,
}
macros = []
compile_args = ["-O2"]
if DEBUG:
    directives.update(boundscheck=True, wraparound=True, linetrace=True, profile=True)
    macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]
    compile_args = ["-O0", "-g"]

extensions = [
    Extension(
        "grpcpy._cext",
        sources=["_cext/_cext.pyx"],
        define_macros=macros,
        extra_compile_args=compile_args,
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=ANNOTATE,
        include_path=["_cext"],
    ),
)
