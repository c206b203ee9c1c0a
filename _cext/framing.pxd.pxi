# Declarations of framing.pxi: MessageDecoder (gRPC length-prefixed messages).

@cython.final
cdef class MessageDecoder:
    cdef ReadBuffer _buf
    cdef Py_ssize_t _max          # receive limit in bytes; -1: unlimited
    cdef Py_ssize_t _need         # body bytes of the message in progress; -1: waiting for a prefix
    cdef int _flag                # compressed flag of the message in progress
    cdef object _error            # first error raised; the decoder stays failed
    cdef bytes _body              # a large message assembled in place, or None
    cdef Py_ssize_t _body_pos     # bytes of _body filled

    cdef inline Py_ssize_t _missing(self)
    cdef int release(self) except -1
    cpdef list feed(self, data)
    cdef list feed_view(self, const unsigned char* p, Py_ssize_t n)
    cdef int _feed_view(self, const unsigned char* p, Py_ssize_t n, list out) except -1
    cdef int _decode(self, list out) except -1
    cdef int _fail(self, exc) except -1
