# The HTTP/2 connection state machine (RFC 9113), both roles, sans-IO.
#
# Theory of operation
# -------------------
# Bytes in: receive_data(data, now) runs the frame parser over the chunk and
# dispatches every frame to a handler here. Bytes out: every frame this side
# produces (replies, data, headers) is appended to one WriteBuffer, and
# data_to_send() hands all of it over for a single write (a large output is
# cut into pieces of about OUTPUT_CHUNK bytes, see data_to_send_chunks). Time comes in as a
# number (`now`, seconds, any monotonic origin); nothing here reads a clock,
# opens a socket, takes a lock or knows about asyncio.
#
# Everything that affects the state of streams and of the connection lives in
# this file (streams.pxi holds the per-stream record). It does not know about
# gRPC: what a stream *means* is decided by the subclasses in grpc/, which
# override the _on_* hooks. The base class turns the hooks into H2Event
# objects, which is what the tests and any plain HTTP/2 user see.
#
# Errors (RFC 9113 §5.4): a handler that finds a connection error raises
# _ConnectionError; receive_data catches it, sends GOAWAY with the code, fails
# every open stream and stops. A stream error sends RST_STREAM and closes only
# that stream; the connection goes on.
#
# Flow control (§5.2, §6.9): outgoing DATA waits in per-stream queues and is
# written round-robin, one frame per stream per turn, as windows allow.
# Incoming stream credit is returned only when the application says it has
# consumed the data (acknowledge_received_data), so a slow reader gets
# backpressure instead of unbounded buffering; connection credit is returned
# on receipt, so one stalled stream cannot starve the others. What a peer can
# make us hold is thus bounded by max_concurrent_streams x stream window.
# The stream window grows by BDP estimation: a PING is timed against the bytes
# that arrive while it is in flight, and when a window's worth arrives within
# one round trip the window is doubled (up to max_window_size).
#
# Keepalive and connection management (doc/keepalive.md, gRFC A8 and A9) are
# timers here too, for both roles, read through next_timer/handle_timeout:
# - keepalive: keepalive_time after the last bytes arrived, a PING goes out;
#   when nothing at all arrives within keepalive_timeout of it, the connection
#   is closed ("keepalive watchdog timeout") and its calls fail. Any input
#   proves the peer alive, not only the PING's ACK. Without an open stream
#   pings are sent only with keepalive_permit_without_calls.
# - max_pings_without_data bounds the keepalive PINGs sent in a row while no
#   stream is open and we send no HEADERS or DATA (an idle connection kept
#   alive); while a stream is open keepalive PINGs are never held back: a dead
#   peer must be found within keepalive_time + keepalive_timeout however long
#   the open calls have been silent, which is when it costs something. A
#   server that finds the pings too frequent says so (GOAWAY too_many_pings,
#   too_many_pings below) and the channel doubles its keepalive_time.
# - server ping policy (grpc-core's): a PING that comes sooner than
#   min_ping_interval_without_data after the previous one (two hours when no
#   stream is open and keepalive_permit_without_calls is off) is a strike; past
#   max_ping_strikes the connection ends with GOAWAY(ENHANCE_YOUR_CALM,
#   "too_many_pings"). Sending HEADERS or DATA clears the strikes.
# - server max_connection_idle (no stream open for that long) and
#   max_connection_age: the graceful two-step GOAWAY; once no stream is left
#   the connection closes; max_connection_age_grace after the first GOAWAY it
#   closes whatever still runs.
#
# The fields and cdef signatures of its classes: connection.pxd.pxi.

cpdef enum H2EventKind:
    EV_HEADERS = 1              # stream_id, headers, end_stream
    EV_DATA = 2                 # stream_id, data, end_stream, value=flow-controlled length
    EV_STREAM_RESET = 3         # stream_id, error_code, remote; value=1 if never processed (safe to retry)
    EV_SETTINGS_CHANGED = 4     # data = list of (id, value) the peer sent
    EV_SETTINGS_ACKED = 5
    EV_PING_RECEIVED = 6        # data = opaque (the ACK is already written)
    EV_PING_ACKED = 7           # data = opaque
    EV_GOAWAY = 8               # error_code, value=last_stream_id, data=debug
    EV_CONNECTION_TERMINATED = 9  # error_code, remote, data=message
    EV_HEADER_LIST_TOO_LARGE = 10  # stream_id, end_stream (the stream is still open)
    EV_STREAM_DRAINED = 11      # stream_id: its queued outgoing data has all been written
    EV_SETTINGS_TIMEOUT = 12    # the peer did not ACK our SETTINGS in time

cdef enum:
    ROLE_CLIENT = 1
    ROLE_SERVER = 2

cdef bytes CONNECTION_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
cdef uint32_t MAX_STREAM_ID = 0x7fffffff
# Opaque payloads of the PINGs the core sends for itself.
cdef bytes BDP_PING = b"grpcpyBD"
cdef bytes SHUTDOWN_PING = b"grpcpyGA"
cdef bytes KEEPALIVE_PING = b"grpcpyKA"
# A server's ping policy while no stream is open and pings without calls are
# not permitted: one PING per two hours (TCP keepalive's RFC 1122 minimum).
cdef double IDLE_PING_INTERVAL = 7200.0
cdef double _INF = float("inf")
# Output is sealed into a bytes piece whenever DATA frames have filled the
# WriteBuffer to this size. A large message thus leaves as a list of pieces of
# this size (data_to_send_chunks), never as one object of its whole size:
# each piece can be written - encrypted by TLS, copied by the kernel - while
# the next one is still hot in the cache, the receiver starts on the first
# piece while the next is encrypted, the buffer stays small and warm, and no
# large transient allocation (page faults, heap growth and trimming) is made
# per message. 64 KiB measured best for the TLS layer's memory BIOs.
cdef Py_ssize_t OUTPUT_CHUNK = 64 * 1024

class H2ProtocolError(Exception):
    """Raised to the caller for local misuse that the protocol forbids
    (sending on a closed stream, opening a stream after GOAWAY...)."""


class StreamIdsExhausted(H2ProtocolError):
    """No stream identifier is left on this connection (2^31-1 reached): the
    connection is going away gracefully and a new one is needed."""


class _ConnectionError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


@cython.freelist(256)
cdef class H2Event:
    def __repr__(self):
        return "H2Event(%s, stream=%d, end_stream=%s, error=%d, remote=%s, value=%d, headers=%r, data=%r)" % (
            EVENT_NAMES.get(self.kind, self.kind), self.stream_id, self.end_stream, self.error_code,
            self.remote, self.value, self.headers, self.data)


EVENT_NAMES = {
    EV_HEADERS: "HEADERS", EV_DATA: "DATA", EV_STREAM_RESET: "STREAM_RESET",
    EV_SETTINGS_CHANGED: "SETTINGS_CHANGED", EV_SETTINGS_ACKED: "SETTINGS_ACKED",
    EV_PING_RECEIVED: "PING_RECEIVED", EV_PING_ACKED: "PING_ACKED", EV_GOAWAY: "GOAWAY",
    EV_CONNECTION_TERMINATED: "CONNECTION_TERMINATED",
    EV_HEADER_LIST_TOO_LARGE: "HEADER_LIST_TOO_LARGE", EV_STREAM_DRAINED: "STREAM_DRAINED",
    EV_SETTINGS_TIMEOUT: "SETTINGS_TIMEOUT",
}


# Bytes a field name may hold (RFC 9113 §8.2.1): visible ASCII except
# upper-case letters; ':' only as the first byte of a pseudo-header.
cdef bint _NAME_BYTE_OK[256]
for _b in range(256):
    _NAME_BYTE_OK[_b] = 0x21 <= _b <= 0x7e and not (0x41 <= _b <= 0x5a) and _b != 0x3a


cdef inline bint _bad_value(object value) noexcept:
    """A field value holding NUL, CR or LF (RFC 9113 §8.2.1). Leading or
    trailing white space, which the same section also forbids, is let
    through: peers in the field send it in grpc-message and user metadata,
    and it cannot split a header the way CR/LF can. Eight bytes at a time
    look for any byte below 0x0e first (every value, every block)."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value), i = 0
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(value)
    cdef uint64_t w
    while i + 8 <= n:
        memcpy(&w, p + i, 8)
        if (w - 0x0E0E0E0E0E0E0E0EULL) & ~w & 0x8080808080808080ULL:
            break
        i += 8
    while i < n:
        if p[i] < 14 and (p[i] == 0 or p[i] == 10 or p[i] == 13):
            return True
        i += 1
    return False


cdef inline bint _connection_specific(const unsigned char* p, Py_ssize_t n, object value) noexcept:
    """A connection-specific field (RFC 9113 §8.2.2): Connection,
    Proxy-Connection, Keep-Alive, Transfer-Encoding, Upgrade, or a TE
    other than "trailers". Checked by length first: most names pass on it."""
    if n == 2:
        return memcmp(p, b"te", 2) == 0 and value != b"trailers"
    if n == 7:
        return memcmp(p, b"upgrade", 7) == 0
    if n == 10:
        return memcmp(p, b"connection", 10) == 0 or memcmp(p, b"keep-alive", 10) == 0
    if n == 16:
        return memcmp(p, b"proxy-connection", 16) == 0
    if n == 17:
        return memcmp(p, b"transfer-encoding", 17) == 0
    return False


cdef int _malformed_fields(list headers) except -1:
    """True when a decoded header block is malformed (RFC 9113 §8.2, §8.3):
    an empty name, a name byte outside the allowed set (upper case
    included), a pseudo-header after a regular field, a value with NUL, CR
    or LF, or a connection-specific field. HPACK itself accepts any bytes,
    so this is checked on every block received."""
    cdef object name
    cdef const unsigned char* p
    cdef Py_ssize_t n, i
    cdef bint regular = False
    for item in headers:
        name = (<tuple>item)[0]
        n = PyBytes_GET_SIZE(name)
        if n == 0:
            return True
        p = <const unsigned char*>PyBytes_AS_STRING(name)
        i = 0
        if p[0] == 58:                  # ':'
            if regular or n == 1:
                return True
            i = 1
        else:
            regular = True
            if _connection_specific(p, n, (<tuple>item)[1]):
                return True
        while i < n:
            if not _NAME_BYTE_OK[p[i]]:
                return True
            i += 1
        if _bad_value((<tuple>item)[1]):
            return True
    return False


cdef inline H2Event _event(int kind, uint32_t sid):
    cdef H2Event ev = H2Event.__new__(H2Event)
    ev.kind = kind
    ev.stream_id = sid
    return ev


cdef class H2Config:
    """Local settings and limits. Defaults follow grpcio where it has one."""

    def __init__(self, **options):
        self.header_table_size = 4096
        self.max_concurrent_streams = 0xffffffff
        self.initial_window_size = 65535
        self.max_frame_size = DEFAULT_MAX_FRAME_SIZE
        self.max_header_list_size = 16384            # grpcio's default hard limit
        self.connection_window_size = 1 << 20
        self.max_window_size = 16 << 20
        self.bdp_probing = True
        self.max_continuations = 64
        self.max_header_block_size = 256 * 1024
        self.max_pending_control_frames = 10000
        self.reset_burst = 1000.0
        self.reset_rate = 100.0
        self.settings_timeout = 10.0
        self.keepalive_time = _INF
        self.keepalive_timeout = 20.0
        self.keepalive_permit_without_calls = False
        self.max_pings_without_data = 2
        self.min_ping_interval_without_data = 0.0
        self.max_ping_strikes = 0
        self.max_connection_idle = _INF
        self.max_connection_age = _INF
        self.max_connection_age_grace = _INF
        for name, value in options.items():
            if not hasattr(self, name):
                raise TypeError("unknown H2Config option %r" % name)
            setattr(self, name, value)


cdef class H2Connection:
    def __init__(self, bint client, H2Config config=None):
        if config is None:
            config = H2Config()
        self.config = config
        self.role = ROLE_CLIENT if client else ROLE_SERVER
        self._parser = FrameParser(max_frame_size=config.max_frame_size,
                                   max_continuations=config.max_continuations,
                                   max_header_block_size=config.max_header_block_size)
        self._parser._data_views = True
        self._encoder = Encoder()
        self._decoder = Decoder(max_table_size=config.header_table_size,
                                max_header_list_size=config.max_header_list_size)
        self._out = WriteBuffer(16384)
        self._sealed = []
        self._events = []
        self.streams = {}
        self._closed = {}
        self._send_queue = []
        self._send_head = 0
        self._preface_received = client      # only a server reads the magic
        self._settings_received = False
        self._magic_buf = b""
        self.closed = False
        self.next_stream_id = 1 if client else 2
        self.last_peer_stream_id = 0
        self.peer_goaway_last_id = 0xffffffff
        self.goaway_sent_last_id = 0xffffffff
        self._shutdown_phase = 0
        self.local_open = 0
        self.peer_open = 0
        self.peer_max_concurrent_streams = 0xffffffff
        self.peer_initial_window_size = 65535
        self.peer_max_frame_size = DEFAULT_MAX_FRAME_SIZE
        self.peer_max_header_list_size = 0xffffffff
        self.peer_enable_push = True
        self.local_initial_window_size = 65535
        self._pending_settings = []
        self._settings_sent_at = -1.0
        self.send_window = 65535
        self.recv_window = 65535
        self._conn_unacked = 0
        self._conn_window_target = 65535
        self._bdp_in_flight = False
        self._bdp_rtt = 0.0
        self._control_pending = 0
        self.transport_paused = False
        self._reset_tokens = config.reset_burst
        self._reset_stamp = -1.0
        self._last_recv = 0.0
        self._ka_sent_at = -1.0
        self._pings_without_data = 0
        self._last_ping_recv = -1.0
        self._ping_strikes = 0
        self._started_at = 0.0
        self._idle_since = 0.0
        self._grace_ends = _INF
        self._close_when_drained = False
        self.too_many_pings = False
        self.close_reason = None
        self.keepalive_pings_sent = 0

    # ------------------------------------------------------------------
    # starting

    cpdef initiate(self, double now=0.0):
        """Queue this side's connection preface: the client magic (client
        only) and our SETTINGS, plus the connection window increase."""
        cdef H2Config c = self.config
        cdef list settings = []
        self._last_recv = self._started_at = self._idle_since = now
        if self.role == ROLE_CLIENT:
            self._out.write(CONNECTION_PREFACE)
        if c.header_table_size != 4096:
            settings.append((SETTINGS_HEADER_TABLE_SIZE, c.header_table_size))
        settings.append((SETTINGS_ENABLE_PUSH, 0))
        if c.max_concurrent_streams != 0xffffffff:
            settings.append((SETTINGS_MAX_CONCURRENT_STREAMS, c.max_concurrent_streams))
        if c.initial_window_size != 65535:
            settings.append((SETTINGS_INITIAL_WINDOW_SIZE, c.initial_window_size))
        if c.max_frame_size != DEFAULT_MAX_FRAME_SIZE:
            settings.append((SETTINGS_MAX_FRAME_SIZE, c.max_frame_size))
        settings.append((SETTINGS_MAX_HEADER_LIST_SIZE, c.max_header_list_size))
        self._send_settings(settings, now)
        if c.connection_window_size > 65535:
            write_window_update_frame(self._out, 0, c.connection_window_size - 65535)
            self.recv_window = c.connection_window_size
        self._conn_window_target = max(c.connection_window_size, 65535)

    cdef _send_settings(self, list settings, double now):
        write_settings_frame(self._out, settings, False)
        self._pending_settings.append(settings)
        if self._settings_sent_at < 0:
            self._settings_sent_at = now
        # A setting that makes us more permissive applies at once: the peer
        # may act on it before its ACK reaches us. One that makes us stricter
        # applies when the peer acknowledges it (§6.5.3).
        self._apply_local_settings(settings, False)

    cpdef update_settings(self, dict changes, double now=0.0):
        """Advertise new local settings {id: value}."""
        cdef list settings = []
        for ident, value in changes.items():
            settings.append((int(ident), int(value)))
            if ident == SETTINGS_HEADER_TABLE_SIZE:
                self.config.header_table_size = value
            elif ident == SETTINGS_MAX_CONCURRENT_STREAMS:
                self.config.max_concurrent_streams = value
            elif ident == SETTINGS_INITIAL_WINDOW_SIZE:
                self.config.initial_window_size = value
            elif ident == SETTINGS_MAX_FRAME_SIZE:
                self.config.max_frame_size = value
            elif ident == SETTINGS_MAX_HEADER_LIST_SIZE:
                self.config.max_header_list_size = value
        self._send_settings(settings, now)

    # ------------------------------------------------------------------
    # bytes in

    cpdef list receive_data(self, data, double now=0.0):
        """Feed received bytes (any bytes-like object; nothing of it is kept
        once this returns, so the caller may reuse its buffer); return the
        events they cause."""
        cdef list frames
        cdef Frame f
        cdef list events
        cdef Py_buffer pb
        if self.closed:
            return []
        self._now = now
        self._last_recv = now
        self._ka_sent_at = -1.0     # any input answers the keepalive PING
        try:
            if not self._preface_received:
                data = self._read_magic(data)
                if data is None:
                    return self._take_events()
            # the chunk stays held until its frames are handled: DATA frames
            # point into it
            PyObject_GetBuffer(data, &pb, PyBUF_SIMPLE)
            try:
                try:
                    frames = self._parser.receive_ptr(<const unsigned char*>pb.buf, pb.len)
                except FrameError as exc:
                    # frames that completed before the bad one are still handled
                    for f in getattr(exc, "frames", ()):
                        self._dispatch(f, now)
                    if exc.connection:
                        raise _ConnectionError(exc.error_code, exc.args[0])
                    raise
                for f in frames:
                    self._dispatch(f, now)
                    if self.closed:
                        break
            finally:
                PyBuffer_Release(&pb)
        except _ConnectionError as exc:
            self._terminate(exc.code, exc.args[0], now)
        return self._take_events()

    cdef object _read_magic(self, data):
        cdef bytes buf = self._magic_buf + bytes(data)
        cdef Py_ssize_t n = len(CONNECTION_PREFACE)
        if buf[:n] != CONNECTION_PREFACE[:len(buf)]:
            raise _ConnectionError(ERR_PROTOCOL_ERROR, "invalid connection preface")
        if len(buf) < n:
            self._magic_buf = buf
            return None
        self._magic_buf = b""
        self._preface_received = True
        return buf[n:]

    cdef list _take_events(self):
        cdef list ev = self._events
        self._events = []
        return ev

    cdef int _dispatch(self, Frame f, double now) except -1:
        cdef int t = f.type
        if not self._settings_received:
            # §3.4: the peer's preface starts with a SETTINGS frame.
            if t != FT_SETTINGS or (f.flags & FLAG_ACK):
                raise _ConnectionError(ERR_PROTOCOL_ERROR, "the peer's preface must begin with SETTINGS")
            self._settings_received = True
        if t == FT_DATA:
            self._recv_data(f, now)
        elif t == FT_HEADERS:
            self._recv_headers(f, now)
        elif t == FT_WINDOW_UPDATE:
            self._recv_window_update(f)
        elif t == FT_RST_STREAM:
            self._recv_rst_stream(f, now)
        elif t == FT_SETTINGS:
            self._recv_settings(f, now)
        elif t == FT_PING:
            self._recv_ping(f, now)
        elif t == FT_GOAWAY:
            self._recv_goaway(f)
        elif t == FT_PRIORITY:
            # validated by the parser; priorities are otherwise ignored (§5.3.2)
            # (a PRIORITY frame never opens a stream, §5.1)
            if f.error is not None:
                self._stream_error(f.stream_id, f.error.error_code)
        elif t == FT_PUSH_PROMISE:
            # We advertise ENABLE_PUSH=0 and servers can never receive one.
            raise _ConnectionError(ERR_PROTOCOL_ERROR, "PUSH_PROMISE received with push disabled")
        return 0

    # -- stream lookup helpers -------------------------------------------

    cdef inline object _active(self, uint32_t sid):
        """The stream the peer can know about: None if unknown, or allocated
        locally by open_stream() without any HEADERS sent yet (idle on the
        wire, §5.1)."""
        cdef object obj = self.streams.get(sid)
        if obj is not None and (<H2Stream>obj).state == ST_IDLE:
            return None
        return obj

    cdef inline bint _peer_initiated(self, uint32_t sid):
        # clients open odd streams, servers even ones
        return (sid & 1) == (1 if self.role == ROLE_SERVER else 0)

    cdef bint _is_idle(self, uint32_t sid):
        cdef object obj = self.streams.get(sid)
        if obj is not None:
            # allocated by open_stream() but no HEADERS sent yet: still idle
            # as far as the peer is concerned
            return (<H2Stream>obj).state == ST_IDLE
        if self._peer_initiated(sid):
            return sid > self.last_peer_stream_id
        return sid >= self.next_stream_id

    cdef int _frame_on_closed(self, Frame f) except -1:
        """A DATA or HEADERS frame for a stream that is not open."""
        cdef uint32_t sid = f.stream_id
        cdef object how = self._closed.get(sid)
        if how is not None:
            if how == CL_RESET_SENT:
                return 0   # in flight when we reset it: discard (§5.1 closed)
            if how == CL_RESET_RECEIVED:
                return self._stream_error(sid, ERR_STREAM_CLOSED)
            raise _ConnectionError(ERR_STREAM_CLOSED, "frame on stream %d after END_STREAM" % sid)
        if self._is_idle(sid):
            raise _ConnectionError(ERR_PROTOCOL_ERROR, "frame type %d on idle stream %d" % (f.type, sid))
        if f.type == FT_HEADERS and self._peer_initiated(sid):
            # A HEADERS for a peer stream below the highest one it opened,
            # and not one we remember closing: either the peer went back to
            # an id it skipped (§5.1.1: "an unexpected stream identifier" is
            # a connection PROTOCOL_ERROR) or one closed so long ago that we
            # no longer ignore frames for it (§5.1 closed allows treating it
            # as an error).
            raise _ConnectionError(ERR_PROTOCOL_ERROR, "HEADERS on stream %d, below the last opened %d"
                                   % (sid, self.last_peer_stream_id))
        return self._stream_error(sid, ERR_STREAM_CLOSED)

    # -- DATA ------------------------------------------------------------

    cdef int _recv_data(self, Frame f, double now) except -1:
        cdef uint32_t sid = f.stream_id
        cdef int64_t flen = f.flow_length
        cdef H2Stream s
        cdef object obj
        # Connection window: every DATA frame counts, whatever its stream.
        self.recv_window -= flen
        if self.recv_window < 0:
            raise _ConnectionError(ERR_FLOW_CONTROL_ERROR, "connection receive window exceeded")
        self._conn_unacked += flen
        self._bdp_sample += flen
        # Probe only on bulk transfer (a frame of 1/16 of the window or more):
        # small messages never fill a window and need no PING round trip.
        if self.config.bdp_probing and not self._bdp_in_flight and flen * 16 >= self.local_initial_window_size:
            self._start_bdp_probe(now)
        self._return_conn_credit()
        obj = self._active(sid)
        if obj is None:
            return self._frame_on_closed(f)
        s = <H2Stream>obj
        if s.state != ST_OPEN and s.state != ST_HALF_CLOSED_LOCAL:
            return self._stream_error(sid, ERR_STREAM_CLOSED)
        s.recv_window -= flen
        if s.recv_window < 0:
            return self._stream_error(sid, ERR_FLOW_CONTROL_ERROR)
        # padding is never seen by the application: credit it now
        s.recv_unacked += flen - (f._dlen if f.data is None else PyBytes_GET_SIZE(f.data))
        if f.flags & FLAG_END_STREAM:
            self._remote_end(s)
        if f.data is None:
            self._on_data_view(s, f._dptr, f._dlen, flen, (f.flags & FLAG_END_STREAM) != 0)
        else:
            self._on_data(s, f.data, flen, (f.flags & FLAG_END_STREAM) != 0)
        if s.state == ST_CLOSED:
            self._forget(s, CL_ENDED)
        return 0

    cdef inline void _return_conn_credit(self):
        if self._conn_unacked * 4 >= self._conn_window_target:
            write_window_update_frame(self._out, 0, <uint32_t>self._conn_unacked)
            self.recv_window += self._conn_unacked
            self._conn_unacked = 0

    cpdef acknowledge_received_data(self, uint32_t stream_id, int64_t n):
        """The application consumed n bytes of the stream's DATA: return that
        credit to the peer (batched: a WINDOW_UPDATE once a quarter of the
        window is owed)."""
        cdef H2Stream s
        cdef object obj = self.streams.get(stream_id)
        if obj is None or self.closed:
            return
        s = <H2Stream>obj
        s.recv_unacked += n
        self._maybe_credit_stream(s)

    cdef inline void _maybe_credit_stream(self, H2Stream s):
        cdef int64_t target = self.local_initial_window_size
        if s.state == ST_HALF_CLOSED_REMOTE or s.state == ST_CLOSED:
            s.recv_unacked = 0
            return
        if s.recv_unacked > 0 and s.recv_unacked * 4 >= target:
            write_window_update_frame(self._out, s.stream_id, <uint32_t>s.recv_unacked)
            s.recv_window += s.recv_unacked
            s.recv_unacked = 0

    cdef int _make_room(self, H2Stream s, int64_t needed) except -1:
        """The application is waiting for `needed` more bytes of the stream
        (the rest of a large message): let the peer send them all without
        waiting for credit, within max_window_size for the stream and the
        connection. A message larger than the window otherwise stalls its
        sender once per window, a round trip each time (grpc's C core sizes
        its windows for the message in progress in the same way)."""
        cdef int64_t limit = self.config.max_window_size
        cdef int64_t inc
        if needed > limit:
            needed = limit
        if s.recv_window >= needed or self.closed:
            return 0
        inc = needed - s.recv_window
        write_window_update_frame(self._out, s.stream_id, <uint32_t>inc)
        s.recv_window += inc
        if self.recv_window < needed:
            inc = needed - self.recv_window
            write_window_update_frame(self._out, 0, <uint32_t>inc)
            self.recv_window += inc
        if needed > self._conn_window_target:
            self._conn_window_target = needed
        return 0

    # -- BDP ---------------------------------------------------------------

    cdef void _start_bdp_probe(self, double now):
        if self.local_initial_window_size >= self.config.max_window_size:
            return
        write_ping_frame(self._out, BDP_PING, False)
        self._bdp_in_flight = True
        self._bdp_sent_at = now
        self._bdp_sample = 0

    cdef int _bdp_ack(self, double now) except -1:
        cdef double rtt = now - self._bdp_sent_at
        cdef int64_t sample = self._bdp_sample
        cdef int64_t window = self.local_initial_window_size
        cdef int64_t new_window
        self._bdp_in_flight = False
        self._bdp_rtt = rtt if self._bdp_rtt == 0 else 0.9 * self._bdp_rtt + 0.1 * rtt
        # A window's worth (2/3 of it) arrived within one round trip: the
        # window, not the network, limits the transfer. Double it.
        if sample * 3 >= window * 2 and window < self.config.max_window_size:
            new_window = min(max(2 * sample, 2 * window), <int64_t>self.config.max_window_size)
            self.config.initial_window_size = <uint32_t>new_window
            self._send_settings([(SETTINGS_INITIAL_WINDOW_SIZE, <uint32_t>new_window)], now)
            if new_window > self._conn_window_target:
                write_window_update_frame(self._out, 0, <uint32_t>(new_window - self._conn_window_target))
                self.recv_window += new_window - self._conn_window_target
                self._conn_window_target = new_window
        return 0

    # -- HEADERS -----------------------------------------------------------

    cdef int _recv_headers(self, Frame f, double now) except -1:
        cdef uint32_t sid = f.stream_id
        cdef bint end_stream = (f.flags & FLAG_END_STREAM) != 0
        cdef object headers = None
        cdef bint too_large = False
        cdef int64_t error = -1            # a stream error to answer with
        cdef H2Stream s
        cdef object obj
        # Decode first, always: the HPACK context is shared by the connection
        # and must see every block, even one for a stream we will refuse.
        try:
            headers = self._decoder.decode(f.data)
        except HeaderListTooLarge:
            too_large = True
        except HPACKError as exc:
            raise _ConnectionError(ERR_COMPRESSION_ERROR, str(exc))
        if f.error is not None:
            error = f.error.error_code
        elif headers is not None and _malformed_fields(<list>headers):
            error = ERR_PROTOCOL_ERROR     # a malformed message is a stream error (§8.1.1)
        obj = self._active(sid)
        if obj is None:
            if not self._is_idle(sid):
                return self._frame_on_closed(f)
            if not self._peer_initiated(sid):
                raise _ConnectionError(ERR_PROTOCOL_ERROR, "HEADERS opening stream %d with the wrong parity" % sid)
            if self.role == ROLE_CLIENT:
                # A server initiates streams only by PUSH_PROMISE (§8.4),
                # which we disable: there is no stream it may open.
                raise _ConnectionError(ERR_PROTOCOL_ERROR, "HEADERS opening server stream %d" % sid)
            if error >= 0:
                # The stream is opened and at once reset by us: its id is
                # used up, so frames that follow on it are late, not new.
                self.last_peer_stream_id = sid
                return self._stream_error(sid, <uint32_t>error)
            return self._open_remote_stream(f, headers, too_large, end_stream, now)
        if error >= 0:
            return self._stream_error(sid, <uint32_t>error)
        s = <H2Stream>obj
        if s.state != ST_OPEN and s.state != ST_HALF_CLOSED_LOCAL:
            return self._stream_error(sid, ERR_STREAM_CLOSED)
        if s.local and not s.headers_received:
            s.headers_received = True
        s.header_blocks += 1
        if end_stream:
            self._remote_end(s)
        if too_large:
            self._on_header_list_too_large(s, end_stream)
        else:
            self._on_headers(s, headers, end_stream)
        if s.state == ST_CLOSED:
            self._forget(s, CL_ENDED)
        return 0

    cdef int _open_remote_stream(self, Frame f, object headers, bint too_large, bint end_stream,
                                 double now) except -1:
        cdef uint32_t sid = f.stream_id
        cdef H2Stream s
        self.last_peer_stream_id = sid
        if self.goaway_sent_last_id != 0xffffffff and sid > self.goaway_sent_last_id:
            # opened after our GOAWAY: never processed, the peer may retry
            return self._stream_error(sid, ERR_REFUSED_STREAM)
        if <uint32_t>self.peer_open >= self.config.max_concurrent_streams:
            # §5.1.2: REFUSED_STREAM tells the peer the request was not processed
            return self._stream_error(sid, ERR_REFUSED_STREAM)
        s = self._new_stream(sid, False)
        s.state = ST_HALF_CLOSED_REMOTE if end_stream else ST_OPEN
        s.headers_received = True
        s.header_blocks = 1
        self.peer_open += 1
        if too_large:
            self._on_header_list_too_large(s, end_stream)
        else:
            self._on_headers(s, headers, end_stream)
        return 0

    cdef H2Stream _new_stream(self, uint32_t sid, bint local):
        cdef H2Stream s = H2Stream.__new__(H2Stream)
        s.stream_id = sid
        s.state = ST_IDLE
        s.local = local
        s.send_window = self.peer_initial_window_size
        s.recv_window = self.local_initial_window_size
        self.streams[sid] = s
        return s

    cdef inline void _remote_end(self, H2Stream s):
        if s.state == ST_OPEN:
            s.state = ST_HALF_CLOSED_REMOTE
        elif s.state == ST_HALF_CLOSED_LOCAL:
            s.state = ST_CLOSED

    cdef void _forget(self, H2Stream s, int how):
        """Drop a closed stream, remembering how it closed for late frames."""
        cdef uint32_t sid = s.stream_id
        s.state = ST_CLOSED
        if self.streams.pop(sid, None) is None:
            return
        if s.local:
            self.local_open -= 1
        else:
            self.peer_open -= 1
            if self.peer_open == 0:
                self._idle_since = self._now
        s._out = []
        s.pending_bytes = 0
        s._out_trailers = None
        self._remember_closed(sid, how)
        self._on_stream_closed(s)

    cdef inline void _remember_closed(self, uint32_t sid, int how):
        """Remember how a stream closed, keeping only the newest
        CLOSED_MEMORY entries (a peer must not be able to grow this)."""
        cdef dict closed = self._closed
        if sid in closed:
            closed[sid] = how
            return
        if self._closed_count == CLOSED_MEMORY:
            # forget the oldest (a ring of ids, not dict iteration: taking a
            # dict's first key costs a scan over every entry deleted before it)
            closed.pop(self._closed_order[self._closed_head], None)
            self._closed_order[self._closed_head] = sid
            self._closed_head = (self._closed_head + 1) % CLOSED_MEMORY
        else:
            self._closed_order[(self._closed_head + self._closed_count) % CLOSED_MEMORY] = sid
            self._closed_count += 1
        closed[sid] = how

    # -- RST_STREAM, WINDOW_UPDATE -----------------------------------------

    cdef int _recv_rst_stream(self, Frame f, double now) except -1:
        cdef uint32_t sid = f.stream_id
        cdef H2Stream s
        cdef object obj = self._active(sid)
        if obj is None:
            if self._is_idle(sid):
                raise _ConnectionError(ERR_PROTOCOL_ERROR, "RST_STREAM on idle stream %d" % sid)
            return 0
        s = <H2Stream>obj
        if not s.local:
            self._count_reset(now)
        self._forget(s, CL_RESET_RECEIVED)
        self._on_stream_reset(s, f.error_code, True, False)
        return 0

    cdef int _count_reset(self, double now) except -1:
        cdef H2Config c = self.config
        if self._reset_stamp >= 0:
            self._reset_tokens = min(c.reset_burst, self._reset_tokens + (now - self._reset_stamp) * c.reset_rate)
        self._reset_stamp = now
        self._reset_tokens -= 1.0
        if self._reset_tokens < 0:
            raise _ConnectionError(ERR_ENHANCE_YOUR_CALM, "too many stream resets")
        return 0

    cdef int _recv_window_update(self, Frame f) except -1:
        cdef uint32_t sid = f.stream_id
        cdef H2Stream s
        cdef object obj
        if sid == 0:
            self.send_window += f.window_increment
            if self.send_window > MAX_WINDOW_SIZE:
                raise _ConnectionError(ERR_FLOW_CONTROL_ERROR, "connection send window overflow")
            self._flush_data()
            return 0
        obj = self._active(sid)
        if obj is None:
            if self._is_idle(sid):
                raise _ConnectionError(ERR_PROTOCOL_ERROR, "WINDOW_UPDATE on idle stream %d" % sid)
            return 0   # closed: allowed for a short while, ignored
        if f.error is not None:
            return self._stream_error(sid, f.error.error_code)
        s = <H2Stream>obj
        s.send_window += f.window_increment
        if s.send_window > MAX_WINDOW_SIZE:
            return self._stream_error(sid, ERR_FLOW_CONTROL_ERROR)
        if s.pending_bytes > 0 or s._out_end or s._out_trailers is not None:
            self._enqueue(s)
            self._flush_data()
        return 0

    # -- SETTINGS ------------------------------------------------------------

    cdef int _recv_settings(self, Frame f, double now) except -1:
        cdef list applied
        cdef H2Event ev
        if f.flags & FLAG_ACK:
            if not self._pending_settings:
                return 0
            self._apply_local_settings(self._pending_settings.pop(0), True)
            self._settings_sent_at = now if self._pending_settings else -1.0
            self._on_settings_acked()
            return 0
        for ident, value in f.settings:
            self._apply_peer_setting(ident, value)
        write_settings_frame(self._out, (), True)
        self._control_reply()
        self._on_settings_changed(f.settings)
        self._flush_data()
        return 0

    cdef int _apply_peer_setting(self, int ident, uint32_t value) except -1:
        cdef int64_t delta
        cdef H2Stream s
        if ident == SETTINGS_HEADER_TABLE_SIZE:
            self._encoder.header_table_size = value
        elif ident == SETTINGS_ENABLE_PUSH:
            # §6.5.2: a server MUST NOT set it to 1; a client MUST treat a 1
            # as a connection error (the parser already refused values > 1).
            if value != 0 and self.role == ROLE_CLIENT:
                raise _ConnectionError(ERR_PROTOCOL_ERROR, "the server sent SETTINGS_ENABLE_PUSH=1")
            self.peer_enable_push = value == 1
        elif ident == SETTINGS_MAX_CONCURRENT_STREAMS:
            self.peer_max_concurrent_streams = value
        elif ident == SETTINGS_INITIAL_WINDOW_SIZE:
            # §6.9.2: applies to every open stream, retroactively
            delta = <int64_t>value - <int64_t>self.peer_initial_window_size
            self.peer_initial_window_size = value
            for s in self.streams.values():
                s.send_window += delta
                if s.send_window > MAX_WINDOW_SIZE:
                    raise _ConnectionError(ERR_FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream window")
                if delta > 0 and (s.pending_bytes > 0 or s._out_end):
                    self._enqueue(s)
        elif ident == SETTINGS_MAX_FRAME_SIZE:
            self.peer_max_frame_size = value
        elif ident == SETTINGS_MAX_HEADER_LIST_SIZE:
            self.peer_max_header_list_size = value
        return 0

    cdef void _apply_local_settings(self, list settings, bint acked):
        cdef int64_t delta
        cdef H2Stream s
        for ident, value in settings:
            if ident == SETTINGS_INITIAL_WINDOW_SIZE:
                delta = <int64_t>value - <int64_t>self.local_initial_window_size
                if delta == 0 or (delta < 0 and not acked) or (delta > 0 and acked):
                    continue
                self.local_initial_window_size = value
                for s in self.streams.values():
                    s.recv_window += delta
            elif ident == SETTINGS_HEADER_TABLE_SIZE:
                if (value > self._decoder.max_table_size) != acked:
                    self._decoder.max_table_size = value
            elif ident == SETTINGS_MAX_FRAME_SIZE:
                if (value > self._parser.max_frame_size) != acked:
                    self._parser.max_frame_size = value
            elif ident == SETTINGS_MAX_HEADER_LIST_SIZE:
                if not acked:
                    self._decoder.max_header_list_size = value

    # -- PING, GOAWAY ------------------------------------------------------------

    cdef int _recv_ping(self, Frame f, double now) except -1:
        cdef double interval
        if f.flags & FLAG_ACK:
            if self._bdp_in_flight and f.data == BDP_PING:
                return self._bdp_ack(now)
            if self._shutdown_phase == 1 and f.data == SHUTDOWN_PING:
                self._finish_graceful_shutdown()
                return 0
            if f.data == KEEPALIVE_PING:
                return 0        # receive_data already took it as a sign of life
            self._on_ping_acked(f.data)
            return 0
        if self.config.max_ping_strikes > 0 and self.role == ROLE_SERVER:
            # grpc-core's ping abuse policy (see the top of this file)
            if not self.config.keepalive_permit_without_calls and self.peer_open == 0:
                interval = IDLE_PING_INTERVAL
            else:
                interval = self.config.min_ping_interval_without_data
            if self._last_ping_recv >= 0 and now < self._last_ping_recv + interval:
                self._ping_strikes += 1
                if self._ping_strikes > self.config.max_ping_strikes:
                    raise _ConnectionError(ERR_ENHANCE_YOUR_CALM, "too_many_pings")
            self._last_ping_recv = now
        write_ping_frame(self._out, f.data, True)
        self._control_reply()
        self._on_ping_received(f.data)
        return 0

    cdef int _recv_goaway(self, Frame f) except -1:
        cdef uint32_t last = f.last_stream_id
        cdef H2Stream s
        cdef list refused = []
        if last < self.peer_goaway_last_id:
            self.peer_goaway_last_id = last
        if f.error_code == ERR_ENHANCE_YOUR_CALM and f.data == b"too_many_pings":
            self.too_many_pings = True
        # Streams we opened above last_stream_id were never processed: they
        # are closed now and may be retried on another connection (§6.8).
        for s in list(self.streams.values()):
            if s.local and s.stream_id > last:
                refused.append(s)
        self._on_goaway(f.error_code, last, f.data)
        for s in refused:
            self._forget(s, CL_RESET_RECEIVED)
            self._on_stream_reset(s, ERR_REFUSED_STREAM, True, True)
        return 0

    # -- errors ------------------------------------------------------------------

    cdef int _control_reply(self) except -1:
        self._control_pending += 1
        if self._control_pending > self.config.max_pending_control_frames:
            raise _ConnectionError(ERR_ENHANCE_YOUR_CALM, "too many control frames queued")
        return 0

    cdef int _stream_error(self, uint32_t sid, uint32_t code) except -1:
        """RST_STREAM the stream (§5.4.2); the connection goes on."""
        cdef H2Stream s
        cdef object obj
        write_rst_stream_frame(self._out, sid, code)
        self._control_reply()
        obj = self.streams.get(sid)
        if obj is not None:
            s = <H2Stream>obj
            self._forget(s, CL_RESET_SENT)
            self._on_stream_reset(s, code, False, False)
        else:
            self._remember_closed(sid, CL_RESET_SENT)
        return 0

    cdef void _terminate(self, uint32_t code, str message, double now):
        """Connection error (§5.4.1): GOAWAY, fail every stream, stop."""
        cdef H2Stream s
        cdef H2Event ev
        if self.closed:
            return
        try:
            self._out.clear()  # whatever was queued will not matter now
        except BufferError:
            pass
        self._sealed = []
        write_goaway_frame(self._out, self.last_peer_stream_id, code, message.encode("utf-8", "replace")[:256])
        self.closed = True
        self.close_reason = message
        for s in list(self.streams.values()):
            self._forget(s, CL_RESET_SENT)
            self._on_stream_reset(s, code, False, False)
        self._on_terminated(code, message, False)

    # ------------------------------------------------------------------
    # local actions

    cpdef H2Stream open_stream(self):
        """Allocate the next stream id for a request (client)."""
        cdef H2Stream s
        cdef uint32_t sid
        if self.closed:
            raise H2ProtocolError("connection is closed")
        if self.peer_goaway_last_id != 0xffffffff or self.goaway_sent_last_id != 0xffffffff:
            raise H2ProtocolError("connection is going away")
        sid = self.next_stream_id
        if sid > MAX_STREAM_ID:
            raise StreamIdsExhausted("stream ids exhausted on this connection")
        self.next_stream_id = sid + 2
        s = self._new_stream(sid, True)
        self.local_open += 1
        return s

    def _skip_stream_ids(self, next_id):
        """Test hook: make next_id the next stream id open_stream() hands
        out, as if every id below it had been used. Forward only, and of
        this side's parity; it exists so stream-id exhaustion can be tested
        without opening 2^30 streams."""
        if not self.next_stream_id <= next_id <= MAX_STREAM_ID + 2 or (next_id - self.next_stream_id) % 2:
            raise ValueError("stream id %d: not ahead of %d with the same parity" % (next_id, self.next_stream_id))
        self.next_stream_id = next_id

    @property
    def can_open_stream(self):
        """True when a new stream fits the peer's MAX_CONCURRENT_STREAMS and
        the connection is usable."""
        return self._can_open()

    cdef inline bint _can_open(self):
        # (the core's own callers use this: a property read from Cython
        # goes through Python's generic getattr, ~1k instructions)
        return (not self.closed and self.peer_goaway_last_id == 0xffffffff
                and self.goaway_sent_last_id == 0xffffffff
                and self.next_stream_id <= MAX_STREAM_ID
                and <uint32_t>self.local_open < self.peer_max_concurrent_streams)

    cdef inline H2Stream _stream_for_send(self, uint32_t sid):
        cdef object obj = self.streams.get(sid)
        if obj is None or self.closed:
            raise H2ProtocolError("stream %d is not open" % sid)
        return <H2Stream>obj

    cpdef send_headers(self, uint32_t stream_id, object headers, bint end_stream=False):
        """Send a header block. Behind queued DATA it waits (trailers)."""
        cdef H2Stream s = self._stream_for_send(stream_id)
        if s.state == ST_HALF_CLOSED_LOCAL or s._out_end or s._out_trailers is not None:
            raise H2ProtocolError("stream %d is closed for sending" % stream_id)
        if s.pending_bytes > 0:
            if not end_stream:
                raise H2ProtocolError("only trailers may follow queued data")
            s._out_trailers = headers
            return
        self._write_headers(s, headers, end_stream)

    cdef int _write_headers(self, H2Stream s, object headers, bint end_stream) except -1:
        cdef bytes block = self._encoder.encode(headers)
        write_headers_frame(self._out, s.stream_id, block, end_stream, self.peer_max_frame_size)
        self._sent_headers_or_data()
        if s.state == ST_IDLE:
            s.state = ST_HALF_CLOSED_LOCAL if end_stream else ST_OPEN
        elif end_stream:
            self._local_end(s)
        return 0

    cdef inline void _local_end(self, H2Stream s):
        if s.state == ST_OPEN:
            s.state = ST_HALF_CLOSED_LOCAL
        elif s.state == ST_HALF_CLOSED_REMOTE:
            s.state = ST_CLOSED
            self._forget(s, CL_ENDED)

    cpdef send_data(self, uint32_t stream_id, object data, bint end_stream=False):
        """Queue DATA; it is written as the windows allow. `data` is a
        bytes-like object, or a tuple of them sent back to back (a message
        prefix and a large body go out without being joined first)."""
        cdef H2Stream s = self._stream_for_send(stream_id)
        if s.state == ST_HALF_CLOSED_LOCAL or s.state == ST_IDLE or s._out_end or s._out_trailers is not None:
            raise H2ProtocolError("stream %d is not open for sending" % stream_id)
        if PyTuple_CheckExact(data):
            for part in <tuple>data:
                _queue_chunk(s, part)
        else:
            _queue_chunk(s, data)
        if end_stream:
            s._out_end = True
        self._enqueue(s)
        self._flush_data()

    cpdef end_stream(self, uint32_t stream_id):
        self.send_data(stream_id, b"", True)

    cpdef int64_t local_flow_window(self, uint32_t stream_id):
        """How many bytes could be written on the stream right now."""
        cdef object obj = self.streams.get(stream_id)
        if obj is None:
            return 0
        return min(self.send_window, (<H2Stream>obj).send_window)

    cdef inline void _enqueue(self, H2Stream s):
        if not s._queued:
            s._queued = True
            self._send_queue.append(s)

    cdef int _flush_data(self) except -1:
        """Write queued DATA round-robin: one frame per stream per turn, while
        the windows last. The turn carries over between calls (_send_head):
        when the connection window opens a little at a time, each opening
        goes to the next stream in line instead of always to the first one
        queued, which would starve the others."""
        cdef list queue = self._send_queue
        cdef H2Stream s
        cdef Py_ssize_t i = self._send_head, n, stalled = 0
        cdef bint moved
        # stalled: streams visited in a row that stay queued and moved
        # nothing; n is re-read every turn: streams queued meanwhile join the round.
        while not self.closed:
            n = len(queue)
            if n == 0 or stalled >= n:
                break          # empty, or a whole round moved nothing
            if i >= n:
                i = 0
            s = <H2Stream>queue[i]
            moved = self._send_one_frame(s)
            if s._queued:
                stalled = 0 if moved else stalled + 1
                i += 1
            else:
                del queue[i]   # done, or waiting for its own window
                if moved:
                    stalled = 0
        self._send_head = i
        return 0

    cdef bint _send_one_frame(self, H2Stream s) except -1:
        """Write at most one DATA frame for s; return True if bytes moved."""
        cdef int64_t n
        cdef bytes chunk
        cdef Py_ssize_t avail, left, take
        cdef bint end
        cdef uint8_t flags
        if s.state == ST_CLOSED or s.stream_id not in self.streams:
            s._queued = False
            return False
        if s.pending_bytes == 0:
            s._queued = False
            if s._out_trailers is not None:
                headers, s._out_trailers = s._out_trailers, None
                self._write_headers(s, headers, True)
            elif s._out_end:
                s._out_end = False
                write_data_frame(self._out, s.stream_id, b"", True)
                self._local_end(s)
            if s._drain_wanted:
                s._drain_wanted = False
                self._on_drained(s)
            return True
        n = min(s.pending_bytes, s.send_window, self.send_window, <int64_t>self.peer_max_frame_size)
        if n <= 0:
            if s.send_window <= 0:
                s._queued = False   # back in the queue on WINDOW_UPDATE
            return False
        end = (n == s.pending_bytes and s._out_end and s._out_trailers is None)
        flags = FLAG_END_STREAM if end else 0
        self._out.write_frame_header(<uint32_t>n, FT_DATA, flags, s.stream_id)
        self._sent_headers_or_data()
        # the payload is gathered from the queued chunks (a frame may span
        # several: a message prefix and its body, or small messages)
        left = n
        while left > 0:
            chunk = <bytes>s._out[0]
            avail = PyBytes_GET_SIZE(chunk) - s._out_pos
            take = left if left < avail else avail
            self._out.write_raw(PyBytes_AS_STRING(chunk) + s._out_pos, take)
            left -= take
            if take == avail:
                del s._out[0]
                s._out_pos = 0
            else:
                s._out_pos += take
        if self._out._len >= OUTPUT_CHUNK:
            self._sealed.append(self._out.take())
        s.pending_bytes -= n
        s.send_window -= n
        self.send_window -= n
        if end:
            s._out_end = False
            s._queued = False
            self._local_end(s)
        return True

    cdef void _discard_queued(self, H2Stream s):
        """Drop the stream's outgoing data still waiting for window (the
        stream stays open): used when a status must go out at once."""
        s._out = []
        s._out_pos = 0
        s.pending_bytes = 0
        s._out_end = False
        s._out_trailers = None

    cpdef want_drain(self, uint32_t stream_id):
        """Ask for EV_STREAM_DRAINED once the stream's queued data is written."""
        cdef object obj = self.streams.get(stream_id)
        if obj is not None:
            (<H2Stream>obj)._drain_wanted = True

    cpdef reset_stream(self, uint32_t stream_id, uint32_t error_code=ERR_CANCEL):
        """RST_STREAM a stream of ours or the peer's."""
        cdef object obj = self.streams.get(stream_id)
        if obj is None or self.closed:
            return
        write_rst_stream_frame(self._out, stream_id, error_code)
        self._forget(<H2Stream>obj, CL_RESET_SENT)

    cpdef ping(self, bytes opaque=b"\x00" * 8):
        if not self.closed:
            write_ping_frame(self._out, opaque, False)

    cpdef close_connection(self, uint32_t error_code=ERR_NO_ERROR, bytes debug=b"", last_stream_id=None):
        """Send GOAWAY. With NO_ERROR the connection drains: streams up to
        last_stream_id (default: the last the peer opened) may finish."""
        cdef uint32_t last = self.last_peer_stream_id if last_stream_id is None else last_stream_id
        if self.closed:
            return
        write_goaway_frame(self._out, last, error_code, debug)
        if last < self.goaway_sent_last_id:
            self.goaway_sent_last_id = last
        if error_code != ERR_NO_ERROR:
            self.closed = True

    cpdef start_graceful_shutdown(self):
        """Server two-phase shutdown: GOAWAY(2^31-1) and a PING now; when the
        PING returns, every stream the client started before it saw the
        GOAWAY has arrived, and the final GOAWAY names the last one."""
        if self.closed or self._shutdown_phase:
            return
        self._shutdown_phase = 1
        write_goaway_frame(self._out, MAX_STREAM_ID, ERR_NO_ERROR, b"")
        self.goaway_sent_last_id = MAX_STREAM_ID
        write_ping_frame(self._out, SHUTDOWN_PING, False)

    cdef void _finish_graceful_shutdown(self):
        self._shutdown_phase = 2
        write_goaway_frame(self._out, self.last_peer_stream_id, ERR_NO_ERROR, b"")
        self.goaway_sent_last_id = self.last_peer_stream_id

    @property
    def going_away(self):
        return self._going_away()

    cdef inline bint _going_away(self):
        return self.goaway_sent_last_id != 0xffffffff or self.peer_goaway_last_id != 0xffffffff

    # ------------------------------------------------------------------
    # bytes out, timers

    cpdef set_transport_paused(self, bint paused):
        """The transport stopped (True) or resumed (False) taking our output
        (asyncio's pause_writing/resume_writing, a full socket buffer).

        While paused, the control-frame replies a peer provokes (PING and
        SETTINGS ACKs, RST_STREAM) pile up unsent and count against
        H2Config.max_pending_control_frames: past it the peer is flooding
        us and the connection ends with ENHANCE_YOUR_CALM. While the
        transport drains, handing output over clears the count. Facades
        also read `transport_paused` to hold back writers."""
        self.transport_paused = paused

    cpdef bytes data_to_send(self):
        """Everything to send, as one bytes object (b"" when nothing)."""
        cdef list pieces
        if not self.transport_paused:
            self._control_pending = 0
        if self._sealed:
            pieces = self.data_to_send_chunks()
            return b"".join(pieces)
        if self._out._len == 0:
            return b""
        return self._out.take()

    cpdef list data_to_send_chunks(self):
        """Everything to send, as a list of bytes pieces to be written in
        order ([] when nothing): a large output comes as pieces of about
        OUTPUT_CHUNK bytes instead of one object of its whole size. Write
        each piece with its own call on a TLS transport, so that it is
        encrypted and sent before the next one is touched."""
        cdef list pieces
        if not self.transport_paused:
            self._control_pending = 0
        if self._sealed:
            pieces = self._sealed
            self._sealed = []
            if self._out._len:
                pieces.append(self._out.take())
            return pieces
        if self._out._len == 0:
            return []
        return [self._out.take()]

    cpdef double next_timer(self):
        """When handle_timeout should next be called (inf: never)."""
        cdef H2Config c = self.config
        cdef double t = _INF
        if self._settings_sent_at >= 0:
            t = self._settings_sent_at + c.settings_timeout
        if self.closed:
            return t
        if self._ka_sent_at >= 0:
            t = min(t, self._ka_sent_at + c.keepalive_timeout)
        elif c.keepalive_time != _INF and self._keepalive_due():
            t = min(t, self._last_recv + c.keepalive_time)
        if self.role == ROLE_SERVER:
            if self._shutdown_phase == 0:
                if c.max_connection_age != _INF:
                    t = min(t, self._started_at + c.max_connection_age)
                if c.max_connection_idle != _INF and self.peer_open == 0:
                    t = min(t, self._idle_since + c.max_connection_idle)
            elif self._close_when_drained:
                if self._shutdown_phase == 2 and self.peer_open == 0:
                    return self._now        # drained: close at once
                t = min(t, self._grace_ends)
        return t

    cdef bint _keepalive_due(self):
        """Whether keepalive PINGs go out now (the rule at the top of this file)."""
        cdef Py_ssize_t limit
        if self.local_open + self.peer_open > 0:
            return True
        if not self.config.keepalive_permit_without_calls:
            return False
        limit = self.config.max_pings_without_data
        return limit <= 0 or self._pings_without_data < limit

    cdef inline void _sent_headers_or_data(self):
        self._pings_without_data = 0
        self._ping_strikes = 0
        self._last_ping_recv = -1.0

    cpdef list handle_timeout(self, double now):
        self._now = now
        if self._settings_sent_at >= 0 and now >= self._settings_sent_at + self.config.settings_timeout:
            if not self.closed:
                self._terminate(ERR_SETTINGS_TIMEOUT, "SETTINGS not acknowledged in time", now)
                self._push(_event(EV_SETTINGS_TIMEOUT, 0))
        if not self.closed:
            self._connection_timers(now)
        return self._take_events()

    cdef void _connection_timers(self, double now):
        """Keepalive, idle and age (see the top of this file)."""
        cdef H2Config c = self.config
        if self._ka_sent_at >= 0:
            if now >= self._ka_sent_at + c.keepalive_timeout:
                self._terminate(ERR_NO_ERROR, "keepalive watchdog timeout", now)
                return
        elif c.keepalive_time != _INF and now >= self._last_recv + c.keepalive_time and self._keepalive_due():
            write_ping_frame(self._out, KEEPALIVE_PING, False)
            self._ka_sent_at = now
            self.keepalive_pings_sent += 1
            if self.local_open + self.peer_open == 0:
                self._pings_without_data += 1
        if self.role != ROLE_SERVER:
            return
        if self._shutdown_phase == 0:
            if now >= self._started_at + c.max_connection_age:
                self._start_idle_or_age_goaway(now, c.max_connection_age_grace)
            elif self.peer_open == 0 and now >= self._idle_since + c.max_connection_idle:
                self._start_idle_or_age_goaway(now, _INF)
        elif self._close_when_drained:
            if self._shutdown_phase == 2 and self.peer_open == 0:
                # the final GOAWAY is written; the facade sends it and closes
                self.closed = True
                self.close_reason = "connection drained after GOAWAY"
                self._on_terminated(ERR_NO_ERROR, self.close_reason, False)
            elif now >= self._grace_ends:
                # calls still running after the grace end with the connection
                self._terminate(ERR_NO_ERROR, "max_connection_age_grace expired", now)

    cdef void _start_idle_or_age_goaway(self, double now, double grace):
        self._close_when_drained = True
        self._grace_ends = now + grace
        self.start_graceful_shutdown()

    # ------------------------------------------------------------------
    # hooks: the base class reports events; grpc/ overrides these.

    cdef inline void _push(self, H2Event ev):
        self._events.append(ev)

    cdef int _on_headers(self, H2Stream s, object headers, bint end_stream) except -1:
        cdef H2Event ev = _event(EV_HEADERS, s.stream_id)
        ev.headers = headers
        ev.end_stream = end_stream
        self._push(ev)
        return 0

    cdef int _on_header_list_too_large(self, H2Stream s, bint end_stream) except -1:
        cdef H2Event ev = _event(EV_HEADER_LIST_TOO_LARGE, s.stream_id)
        ev.end_stream = end_stream
        self._push(ev)
        return 0

    cdef int _on_data(self, H2Stream s, bytes data, int64_t flow_length, bint end_stream) except -1:
        cdef H2Event ev = _event(EV_DATA, s.stream_id)
        ev.data = data
        ev.value = flow_length
        ev.end_stream = end_stream
        self._push(ev)
        return 0

    cdef int _on_data_view(self, H2Stream s, const unsigned char* p, Py_ssize_t n, int64_t flow_length,
                           bint end_stream) except -1:
        """DATA whose payload is a view into the chunk being parsed (valid
        during this call only)."""
        return self._on_data(s, PyBytes_FromStringAndSize(<const char*>p, n), flow_length, end_stream)

    cdef int _on_stream_reset(self, H2Stream s, uint32_t code, bint remote, bint never_processed) except -1:
        cdef H2Event ev = _event(EV_STREAM_RESET, s.stream_id)
        ev.error_code = code
        ev.remote = remote
        ev.value = 1 if never_processed else 0
        self._push(ev)
        return 0

    cdef int _on_stream_closed(self, H2Stream s) except -1:
        return 0

    cdef int _on_drained(self, H2Stream s) except -1:
        self._push(_event(EV_STREAM_DRAINED, s.stream_id))
        return 0

    cdef int _on_settings_changed(self, list settings) except -1:
        cdef H2Event ev = _event(EV_SETTINGS_CHANGED, 0)
        ev.data = settings
        self._push(ev)
        return 0

    cdef int _on_settings_acked(self) except -1:
        self._push(_event(EV_SETTINGS_ACKED, 0))
        return 0

    cdef int _on_ping_received(self, bytes opaque) except -1:
        cdef H2Event ev = _event(EV_PING_RECEIVED, 0)
        ev.data = opaque
        self._push(ev)
        return 0

    cdef int _on_ping_acked(self, bytes opaque) except -1:
        cdef H2Event ev = _event(EV_PING_ACKED, 0)
        ev.data = opaque
        self._push(ev)
        return 0

    cdef int _on_goaway(self, uint32_t code, uint32_t last_stream_id, bytes debug) except -1:
        cdef H2Event ev = _event(EV_GOAWAY, 0)
        ev.error_code = code
        ev.value = last_stream_id
        ev.data = debug
        ev.remote = True
        self._push(ev)
        return 0

    cdef int _on_terminated(self, uint32_t code, str message, bint remote) except -1:
        cdef H2Event ev = _event(EV_CONNECTION_TERMINATED, 0)
        ev.error_code = code
        ev.data = message
        ev.remote = remote
        self._push(ev)
        return 0
