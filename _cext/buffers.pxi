# Buffers.
#
# ReadBuffer: received chunks kept by reference in a list used as a deque, so
#   feeding is O(1) and nothing is copied until a reader asks for bytes. A read
#   that is exactly one whole chunk returns that chunk object itself; a read
#   inside one chunk is one slice; only a read that straddles chunks joins.
# WriteBuffer: one growable contiguous C buffer that serializers append to, so
#   every frame produced between two flushes leaves in a single write. It
#   exports the buffer protocol, counts live views, and refuses to be changed
#   (written, cleared, recycled) while any view is alive: a view handed to a
#   transport must never see its bytes overwritten underneath it.
# BufferPool: recycles WriteBuffers (their allocations) across flushes.
#
# The fields and cdef signatures of its classes: buffers.pxd.pxi.


cdef char* BYTE_FORMAT = "B"
cdef Py_ssize_t WRITE_BUFFER_INITIAL = 4096
# A buffer that grew past this for one big message gives the memory back on
# clear(), so one 100 MiB call does not pin 100 MiB for the connection's life.
cdef Py_ssize_t WRITE_BUFFER_KEEP = 4 * 1024 * 1024


@cython.no_gc_clear
cdef class ReadBuffer:
    def __cinit__(self):
        self._chunks = []
        self._head = 0
        self._pos = 0
        self._size = 0

    def __len__(self):
        return self._size

    cpdef feed(self, data):
        """Append a received chunk. bytes are kept by reference (no copy);
        other bytes-like objects are copied once, because their owner may
        reuse them (asyncio BufferedProtocol, recv_into)."""
        cdef bytes chunk
        if PyBytes_CheckExact(data):
            chunk = <bytes>data
        else:
            chunk = bytes(data)
        if PyBytes_GET_SIZE(chunk) == 0:
            return
        if self._head > 16 and self._head * 2 > len(self._chunks):
            del self._chunks[:self._head]
            self._head = 0
        self._chunks.append(chunk)
        self._size += PyBytes_GET_SIZE(chunk)

    cdef inline bytes _first(self):
        return <bytes>self._chunks[self._head]

    cdef inline void _drop_first(self):
        self._chunks[self._head] = None
        self._head += 1
        self._pos = 0
        if self._head == len(self._chunks):
            self._chunks.clear()
            self._head = 0

    cdef int peek_into(self, char* dst, Py_ssize_t n) except -1:
        """Copy the next n bytes to dst without consuming them."""
        cdef Py_ssize_t i = self._head, pos = self._pos, avail, take
        cdef bytes chunk
        if n > self._size:
            raise ValueError("peek past the end of the buffer")
        while n > 0:
            chunk = <bytes>self._chunks[i]
            avail = PyBytes_GET_SIZE(chunk) - pos
            take = n if n < avail else avail
            memcpy(dst, PyBytes_AS_STRING(chunk) + pos, take)
            dst += take
            n -= take
            i += 1
            pos = 0
        return 0

    cdef int read_into(self, char* dst, Py_ssize_t n) except -1:
        """Copy the next n bytes to dst and consume them."""
        self.peek_into(dst, n)
        self.skip(n)
        return 0

    cpdef skip(self, Py_ssize_t n):
        cdef Py_ssize_t avail
        if n < 0 or n > self._size:
            raise ValueError("skip past the end of the buffer")
        self._size -= n
        while n > 0:
            avail = PyBytes_GET_SIZE(self._first()) - self._pos
            if n < avail:
                self._pos += n
                return
            n -= avail
            self._drop_first()

    cpdef bytes read(self, Py_ssize_t n):
        """Remove and return the next n bytes, copying as little as possible."""
        cdef bytes chunk, out
        cdef Py_ssize_t clen
        if n < 0 or n > self._size:
            raise ValueError("read past the end of the buffer")
        if n == 0:
            return b""
        chunk = self._first()
        clen = PyBytes_GET_SIZE(chunk)
        if self._pos == 0 and n == clen:
            self._drop_first()
            self._size -= n
            return chunk
        if clen - self._pos >= n:
            out = PyBytes_FromStringAndSize(PyBytes_AS_STRING(chunk) + self._pos, n)
            self.skip(n)
            return out
        out = PyBytes_FromStringAndSize(NULL, n)
        self.read_into(PyBytes_AS_STRING(out), n)
        return out

    cpdef clear(self):
        self._chunks.clear()
        self._head = 0
        self._pos = 0
        self._size = 0


cdef class WriteBuffer:
    def __cinit__(self, Py_ssize_t initial=WRITE_BUFFER_INITIAL):
        if initial < 64:
            initial = 64
        self._buf = <char*>PyMem_Malloc(initial)
        if self._buf is NULL:
            raise MemoryError()
        self._cap = initial
        self._len = 0
        self._exports = 0

    def __dealloc__(self):
        PyMem_Free(self._buf)
        self._buf = NULL

    def __len__(self):
        return self._len

    @property
    def exported(self):
        """Number of live memoryviews of this buffer."""
        return self._exports

    def __getbuffer__(self, Py_buffer* view, int flags):
        view.buf = self._buf
        view.obj = self
        view.len = self._len
        view.itemsize = 1
        view.readonly = 1
        view.ndim = 1
        view.format = NULL
        if flags & PyBUF_FORMAT:
            view.format = BYTE_FORMAT
        view.shape = NULL
        if flags & PyBUF_ND:
            view.shape = &view.len
        view.strides = NULL
        if (flags & PyBUF_STRIDES) == PyBUF_STRIDES:
            view.strides = &view.itemsize
        view.suboffsets = NULL
        view.internal = NULL
        self._exports += 1

    def __releasebuffer__(self, Py_buffer* view):
        self._exports -= 1

    cdef inline int _check_mutable(self) except -1:
        if self._exports:
            raise BufferError("WriteBuffer has %d live view(s); release them before changing it" % self._exports)
        return 0

    cdef int _grow(self, Py_ssize_t need) except -1:
        cdef Py_ssize_t cap = self._cap
        cdef char* nb
        while cap < need:
            cap <<= 1
        nb = <char*>PyMem_Realloc(self._buf, cap)
        if nb is NULL:
            raise MemoryError()
        self._buf = nb
        self._cap = cap
        return 0

    cdef inline char* reserve(self, Py_ssize_t n) except NULL:
        """Make room for n bytes, account for them, and return where they go."""
        cdef char* p
        if self._exports:
            self._check_mutable()
        if self._len + n > self._cap:
            self._grow(self._len + n)
        p = self._buf + self._len
        self._len += n
        return p

    cdef inline int write_raw(self, const char* data, Py_ssize_t n) except -1:
        memcpy(self.reserve(n), data, n)
        return 0

    cdef inline int write_u8(self, uint8_t v) except -1:
        self.reserve(1)[0] = <char>v
        return 0

    cdef inline int write_u32(self, uint32_t v) except -1:
        pack_u32(self.reserve(4), v)
        return 0

    cdef inline int write_frame_header(self, uint32_t length, uint8_t ftype,
                                       uint8_t flags, uint32_t stream_id) except -1:
        cdef char* p = self.reserve(FRAME_HEADER_SIZE)
        pack_u24(p, length)
        p[3] = <char>ftype
        p[4] = <char>flags
        pack_u32(p + 5, stream_id & STREAM_ID_MASK)
        return 0

    cpdef write(self, data):
        """Append any bytes-like object."""
        cdef Py_buffer pb
        if PyBytes_CheckExact(data):
            self.write_raw(PyBytes_AS_STRING(<bytes>data), PyBytes_GET_SIZE(<bytes>data))
            return
        PyObject_GetBuffer(data, &pb, PyBUF_SIMPLE)
        try:
            self.write_raw(<const char*>pb.buf, pb.len)
        finally:
            PyBuffer_Release(&pb)

    cpdef bytes take(self):
        """Return everything written so far as bytes and start over."""
        cdef bytes out = PyBytes_FromStringAndSize(self._buf, self._len)
        self.clear()
        return out

    cpdef clear(self):
        self._check_mutable()
        self._len = 0
        if self._cap > WRITE_BUFFER_KEEP:
            PyMem_Free(self._buf)
            self._buf = <char*>PyMem_Malloc(WRITE_BUFFER_INITIAL)
            if self._buf is NULL:
                self._cap = 0
                raise MemoryError()
            self._cap = WRITE_BUFFER_INITIAL


cdef class BufferPool:
    """A free list of WriteBuffers. release() refuses a buffer that still has a
    live view, so a recycled buffer is never overwritten under a reader."""

    def __cinit__(self, Py_ssize_t max_free=16, Py_ssize_t initial=WRITE_BUFFER_INITIAL):
        self._free = []
        self._max_free = max_free
        self._initial = initial

    def __len__(self):
        return len(self._free)

    cpdef WriteBuffer acquire(self):
        if self._free:
            return <WriteBuffer>self._free.pop()
        return WriteBuffer(self._initial)

    cpdef release(self, WriteBuffer buf):
        if buf is None:
            raise TypeError("a WriteBuffer is required, not None")
        buf.clear()          # raises BufferError while a view is alive
        if len(self._free) < self._max_free:
            self._free.append(buf)


# Byte order helpers (network order), inline so the C compiler folds them.

cdef inline void pack_u24(char* p, uint32_t v) noexcept nogil:
    p[0] = <char>((v >> 16) & 0xff)
    p[1] = <char>((v >> 8) & 0xff)
    p[2] = <char>(v & 0xff)

cdef inline void pack_u32(char* p, uint32_t v) noexcept nogil:
    p[0] = <char>((v >> 24) & 0xff)
    p[1] = <char>((v >> 16) & 0xff)
    p[2] = <char>((v >> 8) & 0xff)
    p[3] = <char>(v & 0xff)

cdef inline void pack_u16(char* p, uint16_t v) noexcept nogil:
    p[0] = <char>((v >> 8) & 0xff)
    p[1] = <char>(v & 0xff)

cdef inline uint32_t unpack_u24(const unsigned char* p) noexcept nogil:
    return (<uint32_t>p[0] << 16) | (<uint32_t>p[1] << 8) | <uint32_t>p[2]

cdef inline uint32_t unpack_u32(const unsigned char* p) noexcept nogil:
    return ((<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) |
            (<uint32_t>p[2] << 8) | <uint32_t>p[3])

cdef inline uint16_t unpack_u16(const unsigned char* p) noexcept nogil:
    return <uint16_t>((<uint16_t>p[0] << 8) | <uint16_t>p[1])
