# gRPC message framing (PROTOCOL-HTTP2.md "Length-Prefixed-Message"):
#
#   Compressed-Flag (1 byte: 0 or 1) | Message-Length (4 bytes, big-endian) | Message
#
# MessageDecoder assembles messages from DATA payloads cut at arbitrary
# places (down to one byte at a time). The prefix is validated the moment its
# five bytes are present: a length above the receive limit is refused before
# a single body byte is waited for, so a peer cannot make us buffer a message
# we would reject anyway. Bodies accumulate in a ReadBuffer; a message that
# arrived in one piece is handed out as one slice, or as the very chunk object
# when the chunk was exactly that message.
#
# A large message (BODY_DIRECT or more) is assembled in place instead: once an
# eighth of it has arrived, its bytes object is allocated at full size, what
# the ReadBuffer holds moves into it, and the rest is copied straight from the
# received chunks (feed_view: from the connection's read buffer, without a
# bytes object per DATA frame). The eighth bounds what a peer that declares a
# large message and stops can make us reserve: 8x what it sent.
#
# The fields and cdef signatures of its classes: framing.pxd.pxi.

cdef enum:
    MESSAGE_PREFIX_SIZE = 5

cdef Py_ssize_t BODY_DIRECT = 64 * 1024


cdef class MessageDecoder:
    def __cinit__(self, Py_ssize_t max_message_size=4 * 1024 * 1024):
        self._buf = ReadBuffer()
        self._max = max_message_size
        self._need = -1
        self._flag = 0
        self._error = None
        self._body = None
        self._body_pos = 0

    @property
    def max_message_size(self):
        return self._max

    @max_message_size.setter
    def max_message_size(self, Py_ssize_t value):
        self._max = value

    @property
    def buffered(self):
        """Bytes received that are not yet part of a complete message."""
        return len(self._buf) + (MESSAGE_PREFIX_SIZE if self._need >= 0 else 0) + self._body_pos

    @property
    def missing(self):
        """Bytes still to come for the message in progress (0 when none, or
        while its prefix is incomplete)."""
        return self._missing()

    cdef inline Py_ssize_t _missing(self):
        if self._need < 0:
            return 0
        if self._body is not None:
            return self._need - self._body_pos
        return self._need - self._buf._size

    @property
    def in_message(self):
        """True when part of a message (prefix or body) has been received:
        a stream that ends now ends in the middle of a message."""
        return self._need >= 0 or len(self._buf) > 0

    cdef int release(self) except -1:
        """Drop what is buffered (the call it decodes for is over): a large
        message in progress holds its whole declared size."""
        self._buf = ReadBuffer()
        self._body = None
        self._body_pos = 0
        self._need = -1
        return 0

    cpdef list feed(self, data):
        """Add received bytes; return the messages they complete, in order, as
        (compressed_flag, payload) tuples. Raises MessageTooLarge or
        MessageFlagError as soon as a bad prefix is complete; after an error
        the decoder refuses further input with the same error."""
        cdef list out = []
        cdef Py_buffer pb
        if self._error is not None:
            raise self._error
        if self._body is not None:
            PyObject_GetBuffer(data, &pb, PyBUF_SIMPLE)
            try:
                self._feed_view(<const unsigned char*>pb.buf, pb.len, out)
            finally:
                PyBuffer_Release(&pb)
            return out
        self._buf.feed(data)
        self._decode(out)
        return out

    cdef list feed_view(self, const unsigned char* p, Py_ssize_t n):
        """feed() for bytes that lie at p (valid during the call only): a
        large message in progress takes them straight into its body."""
        cdef list out = []
        if self._error is not None:
            raise self._error
        self._feed_view(p, n, out)
        return out

    cdef int _feed_view(self, const unsigned char* p, Py_ssize_t n, list out) except -1:
        cdef Py_ssize_t take
        while self._body is not None and n > 0:
            take = self._need - self._body_pos
            if take > n:
                take = n
            memcpy(PyBytes_AS_STRING(self._body) + self._body_pos, p, take)
            self._body_pos += take
            p += take
            n -= take
            if self._body_pos == self._need:
                out.append((self._flag, self._body))
                self._body = None
                self._body_pos = 0
                self._need = -1
        if n > 0:
            self._buf.feed(PyBytes_FromStringAndSize(<const char*>p, n))
            self._decode(out)
        return 0

    cdef int _decode(self, list out) except -1:
        cdef unsigned char prefix[MESSAGE_PREFIX_SIZE]
        cdef uint32_t length
        cdef ReadBuffer buf = self._buf
        while True:
            if self._need < 0:
                if buf._size < MESSAGE_PREFIX_SIZE:
                    return 0
                buf.read_into(<char*>prefix, MESSAGE_PREFIX_SIZE)
                length = unpack_u32(prefix + 1)
                if prefix[0] > 1:
                    self._fail(MessageFlagError(prefix[0]))
                if self._max >= 0 and length > <uint64_t>self._max:
                    self._fail(MessageTooLarge(length, self._max))
                self._flag = prefix[0]
                self._need = length
            if buf._size < self._need:
                if self._need >= BODY_DIRECT and buf._size * 8 >= self._need:
                    # assemble it in place from now on
                    self._body = PyBytes_FromStringAndSize(NULL, self._need)
                    self._body_pos = buf._size
                    buf.read_into(PyBytes_AS_STRING(self._body), buf._size)
                return 0
            out.append((self._flag, buf.read(self._need)))
            self._need = -1

    cdef int _fail(self, exc) except -1:
        self._error = exc
        self._buf.clear()
        self._body = None
        self._body_pos = 0
        raise exc


cpdef bytes message_prefix(Py_ssize_t length, bint compressed=False):
    """The 5-byte prefix of a message of `length` bytes."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, MESSAGE_PREFIX_SIZE)
    cdef char* p = PyBytes_AS_STRING(out)
    if length < 0 or length > 0xffffffff:
        raise ValueError("message length %d does not fit the 4-byte prefix" % length)
    p[0] = 1 if compressed else 0
    pack_u32(p + 1, <uint32_t>length)
    return out


cpdef bytes encode_message(payload, bint compressed=False):
    """Prefix and payload as one bytes object (one allocation, one copy)."""
    cdef Py_buffer pb
    cdef bytes out
    cdef char* p
    PyObject_GetBuffer(payload, &pb, PyBUF_SIMPLE)
    try:
        if pb.len > 0xffffffff:
            raise ValueError("message of %d bytes does not fit the 4-byte prefix" % pb.len)
        out = PyBytes_FromStringAndSize(NULL, MESSAGE_PREFIX_SIZE + pb.len)
        p = PyBytes_AS_STRING(out)
        p[0] = 1 if compressed else 0
        pack_u32(p + 1, <uint32_t>pb.len)
        memcpy(p + MESSAGE_PREFIX_SIZE, pb.buf, pb.len)
    finally:
        PyBuffer_Release(&pb)
    return out


cdef int write_message_prefix(WriteBuffer wb, Py_ssize_t length, bint compressed) except -1:
    cdef char* p = wb.reserve(MESSAGE_PREFIX_SIZE)
    p[0] = 1 if compressed else 0
    pack_u32(p + 1, <uint32_t>length)
    return 0
