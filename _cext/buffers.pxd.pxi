# Declarations of buffers.pxi: ReadBuffer, WriteBuffer, BufferPool.

@cython.final
cdef class ReadBuffer:
    cdef list _chunks       # bytes objects; _chunks[_head:] are unread
    cdef Py_ssize_t _head   # index of the first unread chunk
    cdef Py_ssize_t _pos    # read offset inside _chunks[_head]
    cdef Py_ssize_t _size   # unread bytes in total

    cpdef feed(self, data)
    cdef inline bytes _first(self)
    cdef inline void _drop_first(self)
    cdef int peek_into(self, char* dst, Py_ssize_t n) except -1
    cdef int read_into(self, char* dst, Py_ssize_t n) except -1
    cpdef skip(self, Py_ssize_t n)
    cpdef bytes read(self, Py_ssize_t n)
    cpdef clear(self)


@cython.final
cdef class WriteBuffer:
    cdef char* _buf
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _len
    cdef Py_ssize_t _exports    # live buffer-protocol views

    cdef inline int _check_mutable(self) except -1
    cdef int _grow(self, Py_ssize_t need) except -1
    cdef inline char* reserve(self, Py_ssize_t n) except NULL
    cdef inline int write_raw(self, const char* data, Py_ssize_t n) except -1
    cdef inline int write_u8(self, uint8_t v) except -1
    cdef inline int write_u32(self, uint32_t v) except -1
    cdef inline int write_frame_header(self, uint32_t length, uint8_t ftype, uint8_t flags, uint32_t stream_id) except -1
    cpdef write(self, data)
    cpdef bytes take(self)
    cpdef clear(self)


@cython.final
cdef class BufferPool:
    cdef list _free
    cdef Py_ssize_t _max_free
    cdef Py_ssize_t _initial

    cpdef WriteBuffer acquire(self)
    cpdef release(self, WriteBuffer buf)
