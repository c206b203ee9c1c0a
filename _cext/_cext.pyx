# cython: language_level=3
"""grpcpy._cext: the compiled bottom of grpcpy.

One extension built from the parts below, so the codec and the state
machines above it call each other as C. Each part with cdef classes has a
declaration page beside it (part.pxd.pxi: fields and cdef signatures),
gathered by _cext.pxd; the part itself holds the bodies.

    consts.pxi           HTTP/2 frame types, flags, error codes, settings (RFC 9113)
    errors.pxi           the codec's exception types (the only ones it raises)
    buffers.pxi          ReadBuffer (chunk deque), WriteBuffer (one contiguous write), BufferPool
    frames.pxi           HTTP/2 frame parser and serializers (RFC 9113 §4, §6)
    huffman.pxi          HPACK Huffman code (RFC 7541 Appendix B), table-driven both ways
    hpack.pxi            HPACK encoder and decoder (RFC 7541)
    framing.pxi          gRPC 5-byte length-prefixed message framing
    h2/streams.pxi       the HTTP/2 stream record (RFC 9113 §5.1)
    h2/connection.pxi    HTTP/2 connection state machine (RFC 9113), both roles, sans-IO
    grpc/headers.pxi     gRPC header values: grpc-message, grpc-timeout, metadata
    grpc/compression.pxi message compression (grpc-encoding)
    grpc/call.pxi        gRPC calls over HTTP/2 (PROTOCOL-HTTP2.md): events, the call
                         record, what both roles share
    grpc/client.pxi      the client role
    grpc/server.pxi      the server role

Allocation counting for perf/ is a separate module, grpcpy._cext_debug
(_cext/debug.pyx), built only by debug builds (GRPCPY_DEBUG=1, `make debug`).
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE, PyBytes_CheckExact
from cpython.tuple cimport PyTuple_CheckExact
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from libc.string cimport memcpy, memmove, memset, memchr, memcmp
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t

include "consts.pxi"
include "errors.pxi"
include "buffers.pxi"
include "frames.pxi"
include "huffman.pxi"
include "hpack.pxi"
include "framing.pxi"
include "h2/streams.pxi"
include "h2/connection.pxi"
include "grpc/headers.pxi"
include "grpc/compression.pxi"
include "grpc/call.pxi"
include "grpc/client.pxi"
include "grpc/server.pxi"

# The enum members as module constants, for Python callers (facades, tests).
globals().update(H2EventKind.__members__)
globals().update(CallEventKind.__members__)
globals().update(StatusCodeNumber.__members__)
