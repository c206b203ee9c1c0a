"""Build grpcpy: the Cython sources in _cext/ become the extension grpcpy._cext.

The extension is one compilation unit (_cext/_cext.pyx includes its parts), so
the codec and the core call each other as plain C functions.

Its declarations (every cdef class's fields and cdef signatures) are
grpcpy/_cext.pxd, which includes the _cext/**/*.pxd.pxi pages.

Switches (environment variables, so they work through `pip install`):
  GRPCPY_CYTHON_ANNOTATE=1  write _cext/*.html annotation files (`cython -a`)
  GRPCPY_DEBUG=1            no optimisation, assertions and line tracing on
                            (for coverage and line profilers), and the
                            measurement hooks grpcpy._cext_debug (allocation
                            counting for perf/core_bench.py); its C files go
                            to build/cython-debug, apart from a release build's
"""
import glob
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
if DEBUG:
    extensions.append(Extension(
        "grpcpy._cext_debug",
        sources=["_cext/debug.pyx"],
        define_macros=macros,
        extra_compile_args=compile_args,
    ))
BUILD_DIR = "build/cython-debug" if DEBUG else None


def _declarations_changed():
    """cythonize follows the .pyx's includes but not the module's
    declarations (grpcpy/_cext.pxd and the pages it includes): regenerate
    the C file when one of those is newer than it."""
    c_file = os.path.join(BUILD_DIR or "", "_cext/_cext.c")
    if not os.path.exists(c_file):
        return False
    pages = ["grpcpy/_cext.pxd"] + glob.glob("_cext/**/*.pxd.pxi", recursive=True)
    return max(os.path.getmtime(p) for p in pages) > os.path.getmtime(c_file)


setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=ANNOTATE,
        # ".": Cython finds the declarations of grpcpy._cext as grpcpy/_cext.pxd
        include_path=["_cext", "."],
        build_dir=BUILD_DIR,
        force=_declarations_changed(),
    ),
)
