# Declarations of frames.pxi: Frame (one parsed frame) and FrameParser.

@cython.final
cdef class Frame:
    cdef readonly int type
    cdef readonly int flags
    cdef readonly uint32_t stream_id
    cdef readonly bytes data
    cdef readonly int pad_length
    cdef readonly uint32_t flow_length
    cdef readonly uint32_t depends_on
    cdef readonly int weight
    cdef readonly bint exclusive
    cdef readonly uint32_t error_code
    cdef readonly uint32_t last_stream_id
    cdef readonly uint32_t window_increment
    cdef readonly uint32_t promised_stream_id
    cdef readonly list settings
    cdef readonly object error
    # DATA parsed by a parser in view mode (the connection's own): the
    # payload is left where it lies in the chunk being parsed, data is None.
    # Valid only while that chunk is (H2Connection.receive_data).
    cdef const unsigned char* _dptr
    cdef Py_ssize_t _dlen


@cython.final
cdef class FrameParser:
    cdef uint32_t _max_frame_size
    cdef Py_ssize_t _max_continuations
    cdef Py_ssize_t _max_header_block_size

    # Pending partial frame: its first _pend_len bytes. Once _pend_len >= 9
    # the header has been checked and _cur_* hold its fields.
    cdef unsigned char* _pend
    cdef Py_ssize_t _pend_cap
    cdef Py_ssize_t _pend_len
    cdef uint32_t _cur_length
    cdef uint8_t _cur_type
    cdef uint8_t _cur_flags
    cdef uint32_t _cur_sid

    # Payload bytes of an unknown-type frame still to be discarded.
    cdef Py_ssize_t _skip

    # Open header block (HEADERS/PUSH_PROMISE without END_HEADERS).
    cdef Frame _hb_frame           # None when no block is open
    cdef unsigned char* _hb
    cdef Py_ssize_t _hb_cap
    cdef Py_ssize_t _hb_len
    cdef Py_ssize_t _hb_count      # CONTINUATION frames so far

    cdef object _dead              # the connection error that ended us

    # View mode (set by H2Connection, never by the public API): DATA
    # payloads that lie whole in the chunk being parsed are not copied; the
    # frame points into the chunk (Frame._dptr) and is handled before the
    # chunk is let go. A payload assembled in the pending buffer is copied
    # as always (a later partial frame reuses that buffer).
    cdef bint _data_views

    cpdef list receive(self, data)
    cdef list receive_ptr(self, const unsigned char* p, Py_ssize_t n)
    cdef int _run(self, const unsigned char* p, Py_ssize_t n, list out) except -1
    cdef int _pend_reserve(self, Py_ssize_t need) except -1
    cdef int _hb_append(self, const unsigned char* p, Py_ssize_t n) except -1
    cdef inline int _check_header(self, uint32_t length, uint8_t ftype, uint8_t flags, uint32_t sid) except -1
    cdef int _frame(self, const unsigned char* p, uint32_t length, uint8_t ftype, uint8_t flags, uint32_t sid, list out) except -1
