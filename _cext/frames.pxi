# HTTP/2 frames (RFC 9113 §4, §6): the parser and the serializers.
#
# Theory of operation
# -------------------
# FrameParser.receive(chunk) walks the chunk with a C pointer. Each frame is
# a 9-byte header (24-bit length, type, flags, R bit + 31-bit stream id)
# followed by `length` payload bytes. For every header the parser first runs
# the checks that the header alone decides (frame-size limit, stream id rules,
# fixed payload lengths, header-block sequencing), so a hostile length is
# refused before a single payload byte is kept. A frame that lies whole inside
# the chunk is decoded in place: its fields are read straight from the chunk
# and its byte fields become bytes objects made with one
# PyBytes_FromStringAndSize each. Only a frame cut by the end of the chunk is
# copied into the pending buffer, and only what that frame needs: first up to
# its 9-byte header, then exactly the rest of its payload; once it is whole it
# is decoded from the pending buffer and parsing goes back to the next chunk
# directly. Payloads of unknown frame types are never copied: the parser
# counts their bytes off as they go by (`_skip`).
#
# A HEADERS or PUSH_PROMISE frame without END_HEADERS opens a header block:
# the frame is held, the fragments of the CONTINUATION frames that follow on
# the same stream are appended to the block buffer, and on END_HEADERS one
# frame of the original type comes out with the whole block. Nothing else may
# come in between (§6.10).
#
# Errors: a connection error raises FrameError(connection=True) and kills the
# parser (the connection is going away; nothing after the error can be
# trusted). The frames completed earlier in the same call are attached to the
# exception as `.frames`, so a caller can still act on them (a GOAWAY, a
# SETTINGS ack) if it wants. A stream error is not raised: the frame is
# returned with `.error` set to a FrameError(connection=False), its fields
# filled as far as they could be read, and parsing goes on.
#
# The serializers are cpdef functions appending to a WriteBuffer, so the core
# batches every frame of a flush into one contiguous write and calls them as
# C functions.
#
# The fields and cdef signatures of its classes: frames.pxd.pxi.


# Names for repr() and messages; index = frame type.
cdef tuple FRAME_TYPE_NAMES = (
    "DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS",
    "PUSH_PROMISE", "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION",
)
# The highest frame type this codec knows; anything above is an extension
# frame, which RFC 9113 §4.1/§5.5 says to ignore.
cdef int FT_LAST_KNOWN = FT_CONTINUATION

# Limits on header blocks spread over CONTINUATION frames. Without them a
# peer can send HEADERS without END_HEADERS and then CONTINUATION frames
# forever: each one is small and legal, yet the receiver must keep every
# fragment until END_HEADERS (the "CONTINUATION flood" attacks disclosed
# against many HTTP/2 servers in 2024). Real gRPC metadata fits in one or
# two frames; 64 frames and 256 KiB leave ample room for honest peers while
# bounding what a hostile one can make us hold. The frame count matters on
# its own: empty CONTINUATION frames cost the sender nothing and grow no
# buffer, but each still costs us a wake-up.
cdef Py_ssize_t DEFAULT_MAX_CONTINUATIONS = 64
cdef Py_ssize_t DEFAULT_MAX_HEADER_BLOCK_SIZE = 256 * 1024

# The pending buffer keeps its allocation between frames so a stream of
# straddling frames does not malloc every time; past this size (one large
# DATA frame) it is given back once that frame is done.
cdef Py_ssize_t PENDING_KEEP = 64 * 1024

cdef uint32_t MAX_U32 = 0xffffffff


def frame_type_name(int ftype):
    """Name of a frame type, e.g. 'HEADERS', or 'UNKNOWN(0xNN)'."""
    if 0 <= ftype <= FT_LAST_KNOWN:
        return FRAME_TYPE_NAMES[ftype]
    return "UNKNOWN(0x%x)" % ftype


cdef object _empty_bytes = b""


# One 16 KiB chunk of small gRPC frames yields a couple of hundred frames,
# all released together once the caller is done with them; a freelist that
# size lets the next chunk's frames reuse them without touching malloc.
@cython.freelist(256)
cdef class Frame:
    """One received HTTP/2 frame (read-only).

    type, flags, stream_id  the frame header (flags is the raw flags byte,
                            stream_id without the reserved bit)
    data                DATA: payload without padding; HEADERS/PUSH_PROMISE:
                        the complete header block; PING: the 8 opaque bytes;
                        GOAWAY: the debug data; b"" for the other types
    pad_length          padding length (DATA, HEADERS, PUSH_PROMISE)
    flow_length         DATA: the whole payload length (data + padding + the
                        pad length byte): what counts against flow control
    depends_on, weight, exclusive
                        priority fields (HEADERS with PRIORITY, PRIORITY);
                        weight is the real weight 1..256, 0 when absent
    error_code          RST_STREAM, GOAWAY
    last_stream_id      GOAWAY
    window_increment    WINDOW_UPDATE
    promised_stream_id  PUSH_PROMISE
    settings            SETTINGS: list of (identifier, value), in wire order,
                        unknown identifiers included; None for other types
    error               None, or a FrameError(connection=False): this frame is
                        a stream error; the stream must be reset, the
                        connection goes on
    """

    @property
    def end_stream(self):
        return (self.type == FT_DATA or self.type == FT_HEADERS) and (self.flags & FLAG_END_STREAM) != 0

    @property
    def end_headers(self):
        return (self.type == FT_HEADERS or self.type == FT_PUSH_PROMISE
                or self.type == FT_CONTINUATION) and (self.flags & FLAG_END_HEADERS) != 0

    @property
    def ack(self):
        return (self.type == FT_SETTINGS or self.type == FT_PING) and (self.flags & FLAG_ACK) != 0

    @property
    def padded(self):
        return (self.type == FT_DATA or self.type == FT_HEADERS
                or self.type == FT_PUSH_PROMISE) and (self.flags & FLAG_PADDED) != 0

    @property
    def priority(self):
        """(depends_on, weight, exclusive) when the frame carries priority
        fields, else None."""
        if self.weight == 0:
            return None
        return (self.depends_on, self.weight, bool(self.exclusive))

    @property
    def type_name(self):
        return frame_type_name(self.type)

    def __repr__(self):
        cdef int t = self.type
        parts = ["%s stream=%d flags=0x%02x" % (frame_type_name(t), self.stream_id, self.flags)]
        if t == FT_DATA:
            parts.append("data=%r flow_length=%d" % (_short(self.data), self.flow_length))
        elif t == FT_HEADERS or t == FT_PUSH_PROMISE:
            if t == FT_PUSH_PROMISE:
                parts.append("promised_stream_id=%d" % self.promised_stream_id)
            parts.append("block=%r" % _short(self.data))
        elif t == FT_RST_STREAM:
            parts.append("error_code=0x%x" % self.error_code)
        elif t == FT_SETTINGS:
            parts.append("settings=%r" % (self.settings,))
        elif t == FT_PING:
            parts.append("opaque=%r" % self.data)
        elif t == FT_GOAWAY:
            parts.append("last_stream_id=%d error_code=0x%x debug=%r"
                         % (self.last_stream_id, self.error_code, _short(self.data)))
        elif t == FT_WINDOW_UPDATE:
            parts.append("increment=%d" % self.window_increment)
        if self.weight:
            parts.append("depends_on=%d weight=%d exclusive=%s"
                         % (self.depends_on, self.weight, bool(self.exclusive)))
        if self.pad_length:
            parts.append("pad_length=%d" % self.pad_length)
        if self.error is not None:
            parts.append("error=%r" % (self.error,))
        return "<Frame %s>" % " ".join(parts)


cdef object _short(bytes b):
    if b is None or len(b) <= 32:
        return b
    return b[:32] + b"..."


cdef inline Frame _new_frame(uint8_t ftype, uint8_t flags, uint32_t sid):
    cdef Frame f = Frame.__new__(Frame)
    f.type = ftype
    f.flags = flags
    f.stream_id = sid
    return f


cdef inline bytes _bytes_at(const unsigned char* p, Py_ssize_t n):
    return PyBytes_FromStringAndSize(<const char*>p, n)


cdef int _conn_error(uint32_t code, str message, uint32_t sid) except -1:
    raise FrameError(code, message, sid, True)


cdef object _stream_error(uint32_t code, str message, uint32_t sid):
    return FrameError(code, message, sid, False)


cdef class FrameParser:
    """Incremental HTTP/2 frame parser: receive(chunk) -> list of Frame.

    max_frame_size         our advertised SETTINGS_MAX_FRAME_SIZE; a larger
                           frame is a connection FRAME_SIZE_ERROR, detected
                           from its 9-byte header alone
    max_continuations      CONTINUATION frames allowed in one header block
    max_header_block_size  bytes of one header block held while it is being
                           assembled
    """

    def __cinit__(self):
        self._pend = NULL
        self._hb = NULL

    def __init__(self, max_frame_size=DEFAULT_MAX_FRAME_SIZE,
                 max_continuations=DEFAULT_MAX_CONTINUATIONS,
                 max_header_block_size=DEFAULT_MAX_HEADER_BLOCK_SIZE):
        self.max_frame_size = max_frame_size
        if not 0 <= max_continuations <= 1 << 30:
            raise ValueError("max_continuations must be >= 0")
        if not 0 <= max_header_block_size <= 1 << 30:
            raise ValueError("max_header_block_size must be in 0..2^30")
        self._max_continuations = max_continuations
        self._max_header_block_size = max_header_block_size

    def __dealloc__(self):
        PyMem_Free(self._pend)
        PyMem_Free(self._hb)

    @property
    def max_frame_size(self):
        return self._max_frame_size

    @max_frame_size.setter
    def max_frame_size(self, value):
        # RFC 9113 §6.5.2: the advertised value must lie in 2^14..2^24-1.
        if not DEFAULT_MAX_FRAME_SIZE <= value <= MAX_MAX_FRAME_SIZE:
            raise ValueError("max_frame_size must be in %d..%d, got %r"
                             % (DEFAULT_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE, value))
        self._max_frame_size = value

    @property
    def max_continuations(self):
        return self._max_continuations

    @property
    def max_header_block_size(self):
        return self._max_header_block_size

    @property
    def buffered(self):
        """Bytes held for frames not yet returned: the partial frame plus any
        open header block. At most max_frame_size + 9 + max_header_block_size."""
        return self._pend_len + self._hb_len

    @property
    def in_header_block(self):
        """True while a header block waits for its CONTINUATION frames."""
        return self._hb_frame is not None

    @property
    def dead(self):
        return self._dead is not None

    cpdef list receive(self, data):
        """Parse a chunk (bytes, bytearray, memoryview...) and return every
        frame it completes, in order. Raises FrameError on a connection error."""
        cdef Py_buffer pb
        if PyBytes_CheckExact(data):
            return self.receive_ptr(<const unsigned char*>PyBytes_AS_STRING(<bytes>data),
                                    PyBytes_GET_SIZE(<bytes>data))
        PyObject_GetBuffer(data, &pb, PyBUF_SIMPLE)
        try:
            return self.receive_ptr(<const unsigned char*>pb.buf, pb.len)
        finally:
            PyBuffer_Release(&pb)

    cdef list receive_ptr(self, const unsigned char* p, Py_ssize_t n):
        cdef list out = []
        if self._dead is not None:
            raise FrameError(self._dead.error_code, "frame parser already failed: %s" % (self._dead.args[0],),
                             self._dead.stream_id, True)
        try:
            self._run(p, n, out)
        except FrameError as exc:
            self._dead = exc
            exc.frames = out
            raise
        return out

    cdef int _run(self, const unsigned char* p, Py_ssize_t n, list out) except -1:
        cdef Py_ssize_t pos = 0, take, avail
        cdef uint32_t length, sid
        cdef uint8_t ftype, flags
        cdef const unsigned char* h

        if self._skip:
            take = self._skip if self._skip < n else n
            self._skip -= take
            pos = take
            if self._skip:
                return 0

        if self._pend_len:
            # Finish the frame that straddled the previous chunk boundary.
            if self._pend_len < FRAME_HEADER_SIZE:
                take = FRAME_HEADER_SIZE - self._pend_len
                if take > n - pos:
                    take = n - pos
                memcpy(self._pend + self._pend_len, p + pos, take)
                self._pend_len += take
                pos += take
                if self._pend_len < FRAME_HEADER_SIZE:
                    return 0
                h = self._pend
                length = unpack_u24(h)
                ftype = h[3]
                flags = h[4]
                sid = unpack_u32(h + 5) & STREAM_ID_MASK
                self._check_header(length, ftype, flags, sid)
                if ftype > FT_LAST_KNOWN:
                    self._pend_len = 0
                    self._skip = length
                    take = self._skip if self._skip < n - pos else n - pos
                    self._skip -= take
                    pos += take
                    if self._skip:
                        return 0
                else:
                    self._cur_length = length
                    self._cur_type = ftype
                    self._cur_flags = flags
                    self._cur_sid = sid
                    self._pend_reserve(FRAME_HEADER_SIZE + <Py_ssize_t>length)
            if self._pend_len:
                take = FRAME_HEADER_SIZE + <Py_ssize_t>self._cur_length - self._pend_len
                if take > n - pos:
                    take = n - pos
                memcpy(self._pend + self._pend_len, p + pos, take)
                self._pend_len += take
                pos += take
                if self._pend_len < FRAME_HEADER_SIZE + <Py_ssize_t>self._cur_length:
                    return 0
                # Whole: decode it from the pending buffer, then let go of it
                # before decoding (a stream of errors must not leave it set).
                self._pend_len = 0
                self._frame(self._pend + FRAME_HEADER_SIZE, self._cur_length,
                            self._cur_type, self._cur_flags, self._cur_sid, out)
                if self._pend_cap > PENDING_KEEP:
                    PyMem_Free(self._pend)
                    self._pend = NULL
                    self._pend_cap = 0

        # Frames directly in the chunk.
        while n - pos >= FRAME_HEADER_SIZE:
            h = p + pos
            length = unpack_u24(h)
            ftype = h[3]
            flags = h[4]
            sid = unpack_u32(h + 5) & STREAM_ID_MASK
            self._check_header(length, ftype, flags, sid)
            avail = n - pos - FRAME_HEADER_SIZE
            if avail >= <Py_ssize_t>length:
                if ftype <= FT_LAST_KNOWN:
                    self._frame(h + FRAME_HEADER_SIZE, length, ftype, flags, sid, out)
                pos += FRAME_HEADER_SIZE + <Py_ssize_t>length
                continue
            # Cut by the end of the chunk.
            if ftype > FT_LAST_KNOWN:
                self._skip = <Py_ssize_t>length - avail
                return 0
            self._cur_length = length
            self._cur_type = ftype
            self._cur_flags = flags
            self._cur_sid = sid
            self._pend_reserve(FRAME_HEADER_SIZE + <Py_ssize_t>length)
            memcpy(self._pend, h, n - pos)
            self._pend_len = n - pos
            return 0

        if pos < n:
            # A piece of a header: keep it; its size is checked once whole.
            self._pend_reserve(FRAME_HEADER_SIZE)
            memcpy(self._pend, p + pos, n - pos)
            self._pend_len = n - pos
        return 0

    cdef int _pend_reserve(self, Py_ssize_t need) except -1:
        cdef unsigned char* nb
        if need <= self._pend_cap:
            return 0
        nb = <unsigned char*>PyMem_Realloc(self._pend, need)
        if nb is NULL:
            raise MemoryError()
        self._pend = nb
        self._pend_cap = need
        return 0

    cdef int _hb_append(self, const unsigned char* p, Py_ssize_t n) except -1:
        cdef Py_ssize_t cap
        cdef unsigned char* nb
        if self._hb_len + n > self._hb_cap:
            cap = self._hb_cap * 2 if self._hb_cap else 1024
            while cap < self._hb_len + n:
                cap *= 2
            nb = <unsigned char*>PyMem_Realloc(self._hb, cap)
            if nb is NULL:
                raise MemoryError()
            self._hb = nb
            self._hb_cap = cap
        memcpy(self._hb + self._hb_len, p, n)
        self._hb_len += n
        return 0

    cdef inline int _check_header(self, uint32_t length, uint8_t ftype,
                                  uint8_t flags, uint32_t sid) except -1:
        """Checks decided by the 9-byte header alone, run before any payload
        byte is kept."""
        if length > self._max_frame_size:
            _conn_error(ERR_FRAME_SIZE_ERROR, "%s frame of %d bytes exceeds SETTINGS_MAX_FRAME_SIZE %d"
                        % (frame_type_name(ftype), length, self._max_frame_size), sid)
        if self._hb_frame is not None:
            # §6.10: only CONTINUATION frames of the same stream may follow
            # a header block fragment without END_HEADERS.
            if ftype != FT_CONTINUATION:
                _conn_error(ERR_PROTOCOL_ERROR, "%s frame inside the header block of stream %d"
                            % (frame_type_name(ftype), self._hb_frame.stream_id), sid)
            if sid != self._hb_frame.stream_id:
                _conn_error(ERR_PROTOCOL_ERROR, "CONTINUATION on stream %d inside the header block of stream %d"
                            % (sid, self._hb_frame.stream_id), sid)
            if self._hb_count >= self._max_continuations:
                _conn_error(ERR_ENHANCE_YOUR_CALM, "header block of stream %d needs more than %d CONTINUATION frames"
                            % (sid, self._max_continuations), sid)
            if self._hb_len + <Py_ssize_t>length > self._max_header_block_size:
                _conn_error(ERR_ENHANCE_YOUR_CALM, "header block of stream %d exceeds %d bytes"
                            % (sid, self._max_header_block_size), sid)
            return 0
        if ftype == FT_DATA:
            if sid == 0:
                _conn_error(ERR_PROTOCOL_ERROR, "DATA frame on stream 0", sid)
        elif ftype == FT_HEADERS or ftype == FT_PUSH_PROMISE:
            if sid == 0:
                _conn_error(ERR_PROTOCOL_ERROR, "%s frame on stream 0" % frame_type_name(ftype), sid)
            if not (flags & FLAG_END_HEADERS) and <Py_ssize_t>length > self._max_header_block_size:
                _conn_error(ERR_ENHANCE_YOUR_CALM, "header block of stream %d exceeds %d bytes"
                            % (sid, self._max_header_block_size), sid)
        elif ftype == FT_PRIORITY:
            if sid == 0:
                _conn_error(ERR_PROTOCOL_ERROR, "PRIORITY frame on stream 0", sid)
        elif ftype == FT_RST_STREAM:
            if sid == 0:
                _conn_error(ERR_PROTOCOL_ERROR, "RST_STREAM frame on stream 0", sid)
            if length != 4:
                _conn_error(ERR_FRAME_SIZE_ERROR, "RST_STREAM payload of %d bytes (must be 4)" % length, sid)
        elif ftype == FT_SETTINGS:
            if sid != 0:
                _conn_error(ERR_PROTOCOL_ERROR, "SETTINGS frame on stream %d" % sid, sid)
            if (flags & FLAG_ACK) and length != 0:
                _conn_error(ERR_FRAME_SIZE_ERROR, "SETTINGS ack with a %d-byte payload" % length, sid)
            if length % 6 != 0:
                _conn_error(ERR_FRAME_SIZE_ERROR, "SETTINGS payload of %d bytes is not a multiple of 6" % length, sid)
        elif ftype == FT_PING:
            if sid != 0:
                _conn_error(ERR_PROTOCOL_ERROR, "PING frame on stream %d" % sid, sid)
            if length != 8:
                _conn_error(ERR_FRAME_SIZE_ERROR, "PING payload of %d bytes (must be 8)" % length, sid)
        elif ftype == FT_GOAWAY:
            if sid != 0:
                _conn_error(ERR_PROTOCOL_ERROR, "GOAWAY frame on stream %d" % sid, sid)
            if length < 8:
                _conn_error(ERR_FRAME_SIZE_ERROR, "GOAWAY payload of %d bytes (at least 8)" % length, sid)
        elif ftype == FT_WINDOW_UPDATE:
            if length != 4:
                _conn_error(ERR_FRAME_SIZE_ERROR, "WINDOW_UPDATE payload of %d bytes (must be 4)" % length, sid)
        elif ftype == FT_CONTINUATION:
            _conn_error(ERR_PROTOCOL_ERROR, "CONTINUATION frame on stream %d without an open header block" % sid, sid)
        return 0

    cdef int _frame(self, const unsigned char* p, uint32_t length, uint8_t ftype,
                    uint8_t flags, uint32_t sid, list out) except -1:
        """Decode one whole frame of a known type whose header passed
        _check_header, and append the result (if any) to out."""
        cdef Frame f
        cdef Py_ssize_t off = 0, end = length
        cdef uint32_t pad = 0, v
        cdef uint16_t ident
        cdef list settings

        if ftype == FT_DATA:
            f = _new_frame(ftype, flags, sid)
            if flags & FLAG_PADDED:
                if length == 0:
                    _conn_error(ERR_FRAME_SIZE_ERROR, "padded DATA frame without room for the pad length", sid)
                pad = p[0]
                if pad >= length:
                    _conn_error(ERR_PROTOCOL_ERROR, "DATA padding of %d bytes in a %d-byte payload" % (pad, length), sid)
                off = 1
                end = length - pad
                f.pad_length = pad
            if self._data_views and not (self._pend != NULL and p >= self._pend
                                         and p < self._pend + self._pend_cap):
                f._dptr = p + off
                f._dlen = end - off
            else:
                f.data = _bytes_at(p + off, end - off)
            f.flow_length = length
            out.append(f)
            return 0

        if ftype == FT_HEADERS or ftype == FT_PUSH_PROMISE:
            f = _new_frame(ftype, flags, sid)
            if flags & FLAG_PADDED:
                if length == 0:
                    _conn_error(ERR_FRAME_SIZE_ERROR, "padded %s frame without room for the pad length"
                                % frame_type_name(ftype), sid)
                pad = p[0]
                off = 1
                f.pad_length = pad
            if ftype == FT_HEADERS:
                if flags & FLAG_PRIORITY:
                    if end - off < 5:
                        _conn_error(ERR_FRAME_SIZE_ERROR, "HEADERS frame too short for its priority fields", sid)
                    v = unpack_u32(p + off)
                    f.exclusive = (v >> 31) != 0
                    f.depends_on = v & STREAM_ID_MASK
                    f.weight = <int>p[off + 4] + 1
                    off += 5
            else:
                if end - off < 4:
                    _conn_error(ERR_FRAME_SIZE_ERROR, "PUSH_PROMISE frame too short for the promised stream id", sid)
                f.promised_stream_id = unpack_u32(p + off) & STREAM_ID_MASK
                off += 4
            if <Py_ssize_t>pad > end - off:
                _conn_error(ERR_PROTOCOL_ERROR, "%s padding of %d bytes exceeds the %d bytes left"
                            % (frame_type_name(ftype), pad, end - off), sid)
            end -= pad
            if f.weight and f.depends_on == sid:
                # §5.3.1: a stream cannot depend on itself. A stream error,
                # but the block still goes up so the HPACK state stays right.
                f.error = _stream_error(ERR_PROTOCOL_ERROR, "stream %d depends on itself" % sid, sid)
            if flags & FLAG_END_HEADERS:
                f.data = _bytes_at(p + off, end - off)
                out.append(f)
            else:
                self._hb_frame = f
                self._hb_len = 0
                self._hb_count = 0
                self._hb_append(p + off, end - off)
            return 0

        if ftype == FT_CONTINUATION:
            # _check_header made sure a block of this stream is open.
            self._hb_append(p, length)
            self._hb_count += 1
            if flags & FLAG_END_HEADERS:
                f = self._hb_frame
                f.data = _bytes_at(self._hb, self._hb_len)
                f.flags |= FLAG_END_HEADERS
                self._hb_frame = None
                self._hb_len = 0
                self._hb_count = 0
                if self._hb_cap > PENDING_KEEP:
                    PyMem_Free(self._hb)
                    self._hb = NULL
                    self._hb_cap = 0
                out.append(f)
            return 0

        f = _new_frame(ftype, flags, sid)
        f.data = _empty_bytes
        if ftype == FT_WINDOW_UPDATE:
            f.window_increment = unpack_u32(p) & STREAM_ID_MASK
            if f.window_increment == 0:
                # §6.9: a stream error, or a connection error when it is the
                # connection's own window.
                if sid == 0:
                    _conn_error(ERR_PROTOCOL_ERROR, "WINDOW_UPDATE of 0 on the connection", sid)
                f.error = _stream_error(ERR_PROTOCOL_ERROR, "WINDOW_UPDATE of 0 on stream %d" % sid, sid)
        elif ftype == FT_PING:
            f.data = _bytes_at(p, 8)
        elif ftype == FT_SETTINGS:
            settings = []
            while off < end:
                ident = unpack_u16(p + off)
                v = unpack_u32(p + off + 2)
                off += 6
                if ident == SETTINGS_ENABLE_PUSH:
                    if v > 1:
                        _conn_error(ERR_PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH of %d" % v, sid)
                elif ident == SETTINGS_INITIAL_WINDOW_SIZE:
                    if v > MAX_WINDOW_SIZE:
                        _conn_error(ERR_FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE of %d" % v, sid)
                elif ident == SETTINGS_MAX_FRAME_SIZE:
                    if v < DEFAULT_MAX_FRAME_SIZE or v > MAX_MAX_FRAME_SIZE:
                        _conn_error(ERR_PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE of %d" % v, sid)
                settings.append((ident, v))
            f.settings = settings
        elif ftype == FT_RST_STREAM:
            f.error_code = unpack_u32(p)
        elif ftype == FT_GOAWAY:
            f.last_stream_id = unpack_u32(p) & STREAM_ID_MASK
            f.error_code = unpack_u32(p + 4)
            f.data = _bytes_at(p + 8, end - 8)
        elif ftype == FT_PRIORITY:
            if length != 5:
                f.error = _stream_error(ERR_FRAME_SIZE_ERROR, "PRIORITY payload of %d bytes (must be 5)" % length, sid)
            else:
                v = unpack_u32(p)
                f.exclusive = (v >> 31) != 0
                f.depends_on = v & STREAM_ID_MASK
                f.weight = <int>p[4] + 1
                if f.depends_on == sid:
                    f.error = _stream_error(ERR_PROTOCOL_ERROR, "stream %d depends on itself" % sid, sid)
        out.append(f)
        return 0


# ---------------------------------------------------------------------------
# Serializers. Each appends whole frames to wb and returns the number of bytes
# it appended. A bad argument (one that would put an invalid frame on the
# wire) raises ValueError before anything is written.

cdef inline int _need_wb(WriteBuffer wb) except -1:
    if wb is None:
        raise TypeError("a WriteBuffer is required, not None")
    return 0


cdef inline int _check_stream_id(int64_t sid, bint nonzero) except -1:
    # stream ids have 31 bits (the 32nd is the reserved bit, sent as 0)
    if sid < 0 or sid > STREAM_ID_MASK:
        raise ValueError("stream id %d outside 0..2^31-1" % sid)
    if nonzero and sid == 0:
        raise ValueError("this frame type needs a stream id other than 0")
    return 0


cdef inline int _check_pad(int64_t pad_length) except -1:
    # the pad length travels in one byte
    if pad_length < 0 or pad_length > 255:
        raise ValueError("pad_length %d outside 0..255" % pad_length)
    return 0


cdef inline int _check_u32(int64_t v, str what) except -1:
    if v < 0 or v > MAX_U32:
        raise ValueError("%s %d outside 0..2^32-1" % (what, v))
    return 0


cdef inline int _check_payload_size(Py_ssize_t n) except -1:
    # the frame header's length field has 24 bits; a payload that is also
    # above the peer's SETTINGS_MAX_FRAME_SIZE is the caller's to avoid
    if n > MAX_MAX_FRAME_SIZE:
        raise ValueError("frame payload of %d bytes exceeds 2^24-1" % n)
    return 0


cpdef Py_ssize_t write_frame(WriteBuffer wb, int ftype, int flags, int64_t stream_id, payload) except -1:
    """Append one frame exactly as given (any type, flags, and a stream id
    whose reserved bit may be set): for extension frames and for tests that
    need malformed input."""
    _need_wb(wb)
    cdef Py_buffer pb
    cdef char* out
    if ftype < 0 or ftype > 255 or flags < 0 or flags > 255:
        raise ValueError("frame type and flags are single bytes")
    _check_u32(stream_id, "stream id")
    PyObject_GetBuffer(payload, &pb, PyBUF_SIMPLE)
    try:
        _check_payload_size(pb.len)
        out = wb.reserve(FRAME_HEADER_SIZE + pb.len)
        pack_u24(out, <uint32_t>pb.len)
        out[3] = <char>ftype
        out[4] = <char>flags
        pack_u32(out + 5, <uint32_t>stream_id)
        memcpy(out + FRAME_HEADER_SIZE, pb.buf, pb.len)
        return FRAME_HEADER_SIZE + pb.len
    finally:
        PyBuffer_Release(&pb)


cpdef Py_ssize_t write_data_frame(WriteBuffer wb, int64_t stream_id, data,
                                  bint end_stream=False, int pad_length=0) except -1:
    """Append one DATA frame. pad_length > 0 sets PADDED and adds that many
    zero bytes (the frame then also carries the 1-byte pad length)."""
    _need_wb(wb)
    cdef Py_buffer pb
    cdef char* out
    cdef Py_ssize_t plen
    cdef uint8_t flags = FLAG_END_STREAM if end_stream else 0
    _check_stream_id(stream_id, True)
    _check_pad(pad_length)
    PyObject_GetBuffer(data, &pb, PyBUF_SIMPLE)
    try:
        plen = pb.len
        if pad_length:
            plen += 1 + pad_length
            flags |= FLAG_PADDED
        _check_payload_size(plen)
        wb.write_frame_header(<uint32_t>plen, FT_DATA, flags, <uint32_t>stream_id)
        out = wb.reserve(plen)
        if pad_length:
            out[0] = <char><uint8_t>pad_length
            out += 1
        memcpy(out, pb.buf, pb.len)
        if pad_length:
            memset(out + pb.len, 0, pad_length)
        return FRAME_HEADER_SIZE + plen
    finally:
        PyBuffer_Release(&pb)


cdef Py_ssize_t _write_header_block(WriteBuffer wb, uint8_t ftype, int64_t stream_id, block,
                                    uint8_t flags, Py_ssize_t max_frame_size, int pad_length,
                                    const char* prefix, Py_ssize_t prefix_len) except -1:
    """HEADERS/PUSH_PROMISE + as many CONTINUATION frames as max_frame_size
    needs. prefix: the priority fields or the promised stream id."""
    cdef Py_buffer pb
    cdef Py_ssize_t overhead, first, pos, take, total
    cdef char* out
    if max_frame_size < 1 or max_frame_size > MAX_MAX_FRAME_SIZE:
        raise ValueError("max_frame_size %d outside 1..2^24-1" % max_frame_size)
    overhead = prefix_len + (1 + pad_length if pad_length else 0)
    if overhead > max_frame_size:
        raise ValueError("padding and fixed fields (%d bytes) do not fit in max_frame_size %d"
                         % (overhead, max_frame_size))
    if pad_length:
        flags |= FLAG_PADDED
    PyObject_GetBuffer(block, &pb, PyBUF_SIMPLE)
    try:
        first = max_frame_size - overhead
        if first >= pb.len:
            first = pb.len
            flags |= FLAG_END_HEADERS
        wb.write_frame_header(<uint32_t>(overhead + first), ftype, flags, <uint32_t>stream_id)
        out = wb.reserve(overhead + first)
        if pad_length:
            out[0] = <char><uint8_t>pad_length
            out += 1
        memcpy(out, prefix, prefix_len)
        out += prefix_len
        memcpy(out, pb.buf, first)
        if pad_length:
            memset(out + first, 0, pad_length)
        total = FRAME_HEADER_SIZE + overhead + first
        pos = first
        while pos < pb.len:
            take = pb.len - pos
            if take > max_frame_size:
                take = max_frame_size
            wb.write_frame_header(<uint32_t>take, FT_CONTINUATION,
                                  FLAG_END_HEADERS if pos + take == pb.len else 0,
                                  <uint32_t>stream_id)
            wb.write_raw(<const char*>pb.buf + pos, take)
            pos += take
            total += FRAME_HEADER_SIZE + take
        return total
    finally:
        PyBuffer_Release(&pb)


cdef int _pack_priority(char* out, int64_t stream_id, object priority) except -1:
    # weights 1..256 travel as one byte holding weight - 1 (§5.3.2 of RFC 7540)
    cdef int64_t dep, weight
    py_dep, py_weight, exclusive = priority
    dep = py_dep
    weight = py_weight
    if dep < 0 or dep > STREAM_ID_MASK:
        raise ValueError("depends_on %d outside 0..2^31-1" % dep)
    if dep == stream_id:
        raise ValueError("a stream cannot depend on itself")
    if weight < 1 or weight > 256:
        raise ValueError("weight %d outside 1..256" % weight)
    pack_u32(out, <uint32_t>dep | (0x80000000 if exclusive else 0))
    out[4] = <char><uint8_t>(weight - 1)
    return 0


cpdef Py_ssize_t write_headers_frame(WriteBuffer wb, int64_t stream_id, block, bint end_stream=False,
                                     Py_ssize_t max_frame_size=DEFAULT_MAX_FRAME_SIZE,
                                     priority=None, int pad_length=0) except -1:
    """Append a header block as one HEADERS frame, followed by CONTINUATION
    frames when it does not fit in max_frame_size (the peer's
    SETTINGS_MAX_FRAME_SIZE). priority: None or (depends_on, weight 1..256,
    exclusive), which sets the PRIORITY flag."""
    _need_wb(wb)
    cdef char prio[5]
    cdef Py_ssize_t prio_len = 0
    _check_stream_id(stream_id, True)
    _check_pad(pad_length)
    if priority is not None:
        _pack_priority(prio, stream_id, priority)
        prio_len = 5
    return _write_header_block(wb, FT_HEADERS, stream_id, block,
                               (FLAG_END_STREAM if end_stream else 0) | (FLAG_PRIORITY if prio_len else 0),
                               max_frame_size, pad_length, prio, prio_len)


cpdef Py_ssize_t write_push_promise_frame(WriteBuffer wb, int64_t stream_id, int64_t promised_stream_id,
                                          block, Py_ssize_t max_frame_size=DEFAULT_MAX_FRAME_SIZE,
                                          int pad_length=0) except -1:
    """Append a PUSH_PROMISE (+ CONTINUATION frames as needed)."""
    _need_wb(wb)
    cdef char promised[4]
    _check_stream_id(stream_id, True)
    _check_stream_id(promised_stream_id, True)
    _check_pad(pad_length)
    pack_u32(promised, <uint32_t>promised_stream_id)
    return _write_header_block(wb, FT_PUSH_PROMISE, stream_id, block, 0,
                               max_frame_size, pad_length, promised, 4)


cpdef Py_ssize_t write_continuation_frame(WriteBuffer wb, int64_t stream_id, fragment,
                                          bint end_headers) except -1:
    """Append one CONTINUATION frame (write_headers_frame splits blocks by
    itself; this is for callers doing their own splitting)."""
    _need_wb(wb)
    _check_stream_id(stream_id, True)
    return write_frame(wb, FT_CONTINUATION, FLAG_END_HEADERS if end_headers else 0, stream_id, fragment)


cpdef Py_ssize_t write_priority_frame(WriteBuffer wb, int64_t stream_id, int64_t depends_on,
                                      int weight=16, bint exclusive=False) except -1:
    """Append a PRIORITY frame (weight 1..256)."""
    _need_wb(wb)
    cdef char* out
    _check_stream_id(stream_id, True)
    _check_stream_id(depends_on, False)
    if depends_on == stream_id:
        raise ValueError("a stream cannot depend on itself")
    if not 1 <= weight <= 256:
        raise ValueError("weight %d outside 1..256" % weight)
    wb.write_frame_header(5, FT_PRIORITY, 0, <uint32_t>stream_id)
    out = wb.reserve(5)
    pack_u32(out, <uint32_t>depends_on | (0x80000000 if exclusive else 0))
    out[4] = <char><uint8_t>(weight - 1)
    return FRAME_HEADER_SIZE + 5


cpdef Py_ssize_t write_rst_stream_frame(WriteBuffer wb, int64_t stream_id, int64_t error_code) except -1:
    _need_wb(wb)
    _check_stream_id(stream_id, True)
    _check_u32(error_code, "error code")
    wb.write_frame_header(4, FT_RST_STREAM, 0, <uint32_t>stream_id)
    wb.write_u32(<uint32_t>error_code)
    return FRAME_HEADER_SIZE + 4


cpdef Py_ssize_t write_settings_frame(WriteBuffer wb, settings=(), bint ack=False) except -1:
    """Append a SETTINGS frame. settings: iterable of (identifier, value)
    pairs, written in that order. An ack carries no settings."""
    _need_wb(wb)
    cdef list pairs = list(settings)
    cdef Py_ssize_t i, n = len(pairs)
    cdef char* out
    cdef int64_t ident, value
    if ack and n:
        raise ValueError("a SETTINGS ack carries no settings")
    _check_payload_size(6 * n)
    # Validate everything before writing anything.
    for item in pairs:
        ident, value = item
        if ident < 0 or ident > 0xffff:
            raise ValueError("settings identifier %d outside 0..65535" % ident)
        _check_u32(value, "settings value")
        if ident == SETTINGS_ENABLE_PUSH and value > 1:
            raise ValueError("SETTINGS_ENABLE_PUSH must be 0 or 1")
        if ident == SETTINGS_INITIAL_WINDOW_SIZE and value > MAX_WINDOW_SIZE:
            raise ValueError("SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1")
        if ident == SETTINGS_MAX_FRAME_SIZE and not DEFAULT_MAX_FRAME_SIZE <= value <= MAX_MAX_FRAME_SIZE:
            raise ValueError("SETTINGS_MAX_FRAME_SIZE outside 2^14..2^24-1")
    wb.write_frame_header(<uint32_t>(6 * n), FT_SETTINGS, FLAG_ACK if ack else 0, 0)
    out = wb.reserve(6 * n)
    for i in range(n):
        ident, value = pairs[i]
        pack_u16(out, <uint16_t>ident)
        pack_u32(out + 2, <uint32_t>value)
        out += 6
    return FRAME_HEADER_SIZE + 6 * n


cpdef Py_ssize_t write_ping_frame(WriteBuffer wb, opaque, bint ack=False) except -1:
    """Append a PING frame; opaque: exactly 8 bytes."""
    _need_wb(wb)
    cdef Py_buffer pb
    PyObject_GetBuffer(opaque, &pb, PyBUF_SIMPLE)
    try:
        if pb.len != 8:
            raise ValueError("PING opaque data must be 8 bytes, got %d" % pb.len)
        wb.write_frame_header(8, FT_PING, FLAG_ACK if ack else 0, 0)
        wb.write_raw(<const char*>pb.buf, 8)
    finally:
        PyBuffer_Release(&pb)
    return FRAME_HEADER_SIZE + 8


cpdef Py_ssize_t write_goaway_frame(WriteBuffer wb, int64_t last_stream_id, int64_t error_code,
                                    debug_data=b"") except -1:
    _need_wb(wb)
    cdef Py_buffer pb
    _check_stream_id(last_stream_id, False)
    _check_u32(error_code, "error code")
    PyObject_GetBuffer(debug_data, &pb, PyBUF_SIMPLE)
    try:
        _check_payload_size(8 + pb.len)
        wb.write_frame_header(<uint32_t>(8 + pb.len), FT_GOAWAY, 0, 0)
        wb.write_u32(<uint32_t>last_stream_id)
        wb.write_u32(<uint32_t>error_code)
        wb.write_raw(<const char*>pb.buf, pb.len)
        return FRAME_HEADER_SIZE + 8 + pb.len
    finally:
        PyBuffer_Release(&pb)


cpdef Py_ssize_t write_window_update_frame(WriteBuffer wb, int64_t stream_id, int64_t increment) except -1:
    """Append a WINDOW_UPDATE (stream 0: the connection window)."""
    _need_wb(wb)
    _check_stream_id(stream_id, False)
    if increment < 1 or increment > MAX_WINDOW_SIZE:
        raise ValueError("window increment %d outside 1..2^31-1" % increment)
    wb.write_frame_header(4, FT_WINDOW_UPDATE, 0, <uint32_t>stream_id)
    wb.write_u32(<uint32_t>increment)
    return FRAME_HEADER_SIZE + 4
