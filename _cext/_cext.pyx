# cython: language_level=3
"""grpcpy._cext: the compiled bottom of grpcpy.

One extension built from the parts below (each part declares its own cdef
classes), so the codec and the state machines above it call each other as C.

    consts.pxi    HTTP/2 frame types, flags, error codes, settings (RFC 9113)
    errors.pxi    the codec's exception types (the only ones it raises)
    buffers.pxi   ReadBuffer (chunk deque), WriteBuffer (one contiguous write), BufferPool
    frames.pxi    HTTP/2 frame parser and serializers (RFC 9113 §4, §6)
    huffman.pxi   HPACK Huffman code (RFC 7541 Appendix B), table-driven both ways
    hpack.pxi     HPACK encoder and decoder (RFC 7541)
    framing.pxi   gRPC 5-byte length-prefixed message framing
    h2conn.pxi    HTTP/2 connection state machine (RFC 9113), both roles, sans-IO
    call.pxi      gRPC calls over it (PROTOCOL-HTTP2.md), client and server, sans-IO
    debug.pxi     allocation counting for perf/
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE, PyBytes_CheckExact
from cpython.tuple cimport PyTuple_CheckExact
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from libc.string cimport memcpy, memmove, memset
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t

include "consts.pxi"
include "errors.pxi"
include "buffers.pxi"
include "frames.pxi"
include "huffman.pxi"
include "hpack.pxi"
include "framing.pxi"
include "h2conn.pxi"
include "call.pxi"
include "debug.pxi"
