# cython: language_level=3
# grpcpy._cext_checked: the whole core again under its own name, built only
# with GRPCPY_CHECKED=1 (`make checked`) with bounds checks and line tracing
# (setup.py), for the fuzzers in fuzz/. Nothing of grpcpy imports it.
include "_cext.pyx"
