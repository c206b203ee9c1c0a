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
  GRPCPY_CHECKED=1          build only grpcpy._cext_checked: the same core
                            under another name, with bounds and negative-index
                            checks and line tracing on (an unchecked index
                            becomes an IndexError, and the fuzzers in fuzz/
                            get line coverage from it); it sits beside the
                            release grpcpy._cext, which it leaves untouched
                            (C files in build/cython-checked; `make checked`)
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
CHECKED = os.environ.get("GRPCPY_CHECKED") == "1"
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
INCLUDE_PATH = ["_cext", "."]
if CHECKED:
    # _cext/_cext_checked.pyx includes _cext.pyx. Cython looks for a module's
    # declarations under its own name: grpcpy/_cext.pxd is copied to where it
    # finds them for grpcpy._cext_checked, in the build directory (the
    # package's sources stay as they are).
    decl = os.path.join("build", "cython-checked", "decl")
    os.makedirs(os.path.join(decl, "grpcpy"), exist_ok=True)
    with open("grpcpy/_cext.pxd") as src:
        text = src.read()
    target = os.path.join(decl, "grpcpy", "_cext_checked.pxd")
    if not os.path.exists(target) or open(target).read() != text:
        with open(target, "w") as out:
            out.write(text)
    open(os.path.join(decl, "grpcpy", "__init__.pxd"), "a").close()
    INCLUDE_PATH.insert(0, decl)
    directives.update(boundscheck=True, wraparound=True, linetrace=True)
    extensions = [Extension(
        "grpcpy._cext_checked",
        sources=["_cext/_cext_checked.pyx"],
        define_macros=[("CYTHON_TRACE", "1")],
        extra_compile_args=["-O1", "-g0"],
    )]
    BUILD_DIR = "build/cython-checked"


def _declarations_changed():
    """cythonize follows the .pyx's includes but not the module's
    declarations (grpcpy/_cext.pxd and the pages it includes): regenerate
    the C file when one of those is newer than it."""
    c_file = os.path.join(BUILD_DIR or "", "_cext/_cext_checked.c" if CHECKED else "_cext/_cext.c")
    if not os.path.exists(c_file):
        return False
    pages = ["grpcpy/_cext.pxd"] + glob.glob("_cext/**/*.pxd.pxi", recursive=True)
    return max(os.path.getmtime(p) for p in pages) > os.path.getmtime(c_file)


def _patch_checked_tracing(c_file):
    """Line tracing in the checked build (Python 3.11, Cython 3.x): a frame
    whose call event Cython skips (the C body of a cpdef function, entered
    from its traced wrapper) gets Py_None as its local trace function, and
    its first line event then fails with "'NoneType' object is not
    callable". Give such frames the global trace function instead, which
    receives their line events (fuzz/_support.py's tracer handles both)."""
    with open(c_file) as f:
        text = f.read()
    old = ("        if (CYTHON_TRACE && (*frame)->f_trace == NULL) {\n"
           "            Py_INCREF(Py_None);\n"
           "            (*frame)->f_trace = Py_None;\n")
    new = ("        if (CYTHON_TRACE && (*frame)->f_trace == NULL) {\n"
           "            PyObject *global_trace = tstate->c_traceobj ? tstate->c_traceobj : Py_None;\n"
           "            Py_INCREF(global_trace);\n"
           "            (*frame)->f_trace = global_trace;\n")
    if old in text:
        with open(c_file, "w") as f:
            f.write(text.replace(old, new))


EXT_MODULES = cythonize(
    extensions,
    compiler_directives=directives,
    annotate=ANNOTATE,
    # ".": Cython finds the declarations of grpcpy._cext as grpcpy/_cext.pxd
    include_path=INCLUDE_PATH,
    build_dir=BUILD_DIR,
    force=_declarations_changed(),
)
if CHECKED:
    _patch_checked_tracing(os.path.join(BUILD_DIR, "_cext", "_cext_checked.c"))

setup(
    ext_modules=EXT_MODULES,
)
