# cython: language_level=3
# The declaration page of grpcpy._cext (built from _cext/_cext.pyx): every
# cdef class's fields and cdef method signatures, part by part (each
# _cext/**/part.pxd.pxi beside the part.pxi that holds the bodies). Cython
# reads it before the implementation, which then carries only method bodies;
# a reader finds a class's layout and its C-level API in one place. It lives
# here, as grpcpy/_cext.pxd, because that is where Cython looks for the
# declarations of the module grpcpy._cext.
cimport cython
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t

include "buffers.pxd.pxi"
include "frames.pxd.pxi"
include "hpack.pxd.pxi"
include "framing.pxd.pxi"
include "h2/streams.pxd.pxi"
include "h2/connection.pxd.pxi"
include "grpc/call.pxd.pxi"
include "grpc/client.pxd.pxi"
include "grpc/server.pxd.pxi"
