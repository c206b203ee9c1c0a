# gRPC calls over the HTTP/2 connection (the gRPC project's PROTOCOL-HTTP2.md),
# both roles, sans-IO.
#
# Theory of operation
# -------------------
# ClientConnection and ServerConnection are H2Connections whose stream hooks
# (the _on_* methods) interpret streams as gRPC calls. The facades see only
# CallEvent objects and the call objects (ClientCall, ServerCall); they never
# see a frame, a header block or an HTTP/2 rule.
#
# Client: start_call() queues the request headers (or waits for a stream slot
# when the peer's MAX_CONCURRENT_STREAMS is reached); send_message() and
# close_send() follow; the call ends with exactly one CE_CALL_ENDED carrying
# the status, whatever ended it: trailers, a trailers-only response, an HTTP
# error status, RST_STREAM, the deadline, GOAWAY, a lost connection or a local
# cancel.
#
# Server: a request becomes CE_CALL_STARTED (method, metadata, deadline) after
# its headers were validated; invalid requests are answered here (HTTP 415,
# 405, UNIMPLEMENTED for an unknown grpc-encoding, INTERNAL for a malformed
# grpc-timeout) and never reach the application. send_status() ends the call;
# a client cancel, the deadline or a lost connection end it with
# CE_CALL_ENDED instead.
#
# Messages: a per-call MessageDecoder turns DATA into messages, enforcing the
# receive limit before bodies are buffered; compressed messages are inflated
# with a bound. Receive credit: the DATA bytes of a call are credited to the
# peer at once while the messages delivered to the application but not yet
# consumed (message_consumed) stay below one window; past that the credit is
# held back, so a slow reader gets backpressure while a message larger than
# the window still completes.
#
# Deadlines are data: each call has an absolute deadline in the caller's
# clock; next_timer() names the earliest and handle_timeout(now) ends the
# expired calls (client: RST_STREAM CANCEL and DEADLINE_EXCEEDED; server:
# DEADLINE_EXCEEDED trailers, RST_STREAM, CE_CALL_ENDED).

import base64 as _base64
from grpcpy._version import __version__ as _GRPCPY_VERSION
import zlib as _zlib
from heapq import heappush as _heappush, heappop as _heappop

cpdef enum CallEventKind:
    CE_CALL_STARTED = 1       # server: call.method, call.metadata, call.deadline
    CE_INITIAL_METADATA = 2   # client: metadata
    CE_MESSAGE = 3            # data = message, value = wire bytes (give to message_consumed)
    CE_HALF_CLOSED = 4        # server: the client sent END_STREAM
    CE_CALL_ENDED = 5         # code, details, metadata = trailing metadata
    CE_WRITE_READY = 6        # the call's queued outgoing messages are written
    CE_GOAWAY = 7             # connection: code, value = last stream id, details = debug
    CE_CONNECTION_CLOSED = 8  # connection: code (HTTP/2 error code), details
    CE_PING_RECEIVED = 9      # connection: data = opaque
    CE_PING_ACKED = 10        # connection: data = opaque
    CE_CONNECTION_READY = 11  # connection: the peer's preface (first SETTINGS) arrived

cdef enum:
    # call states
    CS_WAITING = 0            # client: no stream yet (concurrency limit)
    CS_ACTIVE = 1
    CS_DONE = 2

cpdef enum StatusCodeNumber:
    # gRPC status codes
    SC_OK = 0
    SC_CANCELLED = 1
    SC_UNKNOWN = 2
    SC_INVALID_ARGUMENT = 3
    SC_DEADLINE_EXCEEDED = 4
    SC_NOT_FOUND = 5
    SC_ALREADY_EXISTS = 6
    SC_PERMISSION_DENIED = 7
    SC_RESOURCE_EXHAUSTED = 8
    SC_FAILED_PRECONDITION = 9
    SC_ABORTED = 10
    SC_OUT_OF_RANGE = 11
    SC_UNIMPLEMENTED = 12
    SC_INTERNAL = 13
    SC_UNAVAILABLE = 14
    SC_DATA_LOSS = 15
    SC_UNAUTHENTICATED = 16

CALL_EVENT_NAMES = {
    CE_CALL_STARTED: "CALL_STARTED", CE_INITIAL_METADATA: "INITIAL_METADATA",
    CE_MESSAGE: "MESSAGE", CE_HALF_CLOSED: "HALF_CLOSED", CE_CALL_ENDED: "CALL_ENDED",
    CE_WRITE_READY: "WRITE_READY", CE_GOAWAY: "GOAWAY", CE_CONNECTION_CLOSED: "CONNECTION_CLOSED",
    CE_PING_RECEIVED: "PING_RECEIVED", CE_PING_ACKED: "PING_ACKED",
    CE_CONNECTION_READY: "CONNECTION_READY",
}

USER_AGENT = "grpc-python-grpcpy/" + _GRPCPY_VERSION
# A message at least this large is queued as (prefix, body) instead of being
# copied behind its prefix; a smaller one is joined (one chunk per message).
cdef Py_ssize_t SPLIT_MESSAGE_SIZE = 16 * 1024
cdef tuple SUPPORTED_ENCODINGS = ("identity", "deflate", "gzip")
cdef bytes ACCEPT_ENCODING = b"identity,deflate,gzip"
# Header sets most responses share, as tuples: the HPACK encoder caches the
# encoding of a tuple it has seen, so a repeated set costs one dict lookup.
cdef tuple RESPONSE_HEADERS = ((b":status", b"200"), (b"content-type", b"application/grpc"),
                               (b"grpc-accept-encoding", ACCEPT_ENCODING))
cdef tuple STATUS_TRAILERS = tuple([((b"grpc-status", b"%d" % n),) for n in range(17)])
cdef tuple STATUS_TRAILERS_ONLY = tuple([((b":status", b"200"), (b"content-type", b"application/grpc"),
                                          (b"grpc-status", b"%d" % n)) for n in range(17)])

# Headers a gRPC peer uses for the protocol itself; never shown as metadata.
cdef frozenset RESERVED_HEADERS = frozenset([
    b"content-type", b"te", b"grpc-encoding", b"grpc-accept-encoding", b"grpc-timeout",
    b"grpc-status", b"grpc-message", b"content-length", b"connection", b"host",
    b"transfer-encoding", b"upgrade", b"keep-alive", b"proxy-connection",
])
# Metadata the application may not set: they would corrupt the protocol.
cdef frozenset FORBIDDEN_METADATA = frozenset([
    "content-type", "te", "grpc-encoding", "grpc-accept-encoding", "grpc-timeout",
    "grpc-status", "grpc-message", "content-length", "connection", "host",
    "transfer-encoding", "upgrade", "keep-alive", "proxy-connection",
])


class MetadataError(ValueError):
    """Metadata that cannot be sent (bad key, reserved key, bad value)."""


@cython.final
@cython.freelist(256)
cdef class CallEvent:
    cdef readonly int kind
    cdef readonly object call
    cdef readonly object data
    cdef readonly object metadata
    cdef readonly int code
    cdef readonly object details
    cdef readonly int64_t value

    def __repr__(self):
        return "CallEvent(%s, call=%r, code=%d, details=%r, metadata=%r, data=%r, value=%d)" % (
            CALL_EVENT_NAMES.get(self.kind, self.kind), self.call, self.code, self.details,
            self.metadata, self.data if not isinstance(self.data, bytes) or len(self.data) < 64
            else self.data[:64] + b"...", self.value)


cdef inline CallEvent _cevent(int kind, object call):
    cdef CallEvent ev = CallEvent.__new__(CallEvent)
    ev.kind = kind
    ev.call = call
    return ev


# ---------------------------------------------------------------------------
# header value coding

cdef bytes _HEX = b"0123456789ABCDEF"


cpdef bytes percent_encode(str message):
    """grpc-message encoding: UTF-8, then every byte outside 0x20-0x7E and
    '%' itself as %XX."""
    cdef bytes raw = message.encode("utf-8", "surrogatepass")
    cdef const unsigned char* p = raw
    cdef Py_ssize_t n = len(raw), i, j = 0
    cdef unsigned char ch
    cdef bytearray out
    for i in range(n):
        ch = p[i]
        if ch < 0x20 or ch > 0x7e or ch == 0x25:
            break
    else:
        return raw
    out = bytearray(n * 3)
    for i in range(n):
        ch = p[i]
        if ch < 0x20 or ch > 0x7e or ch == 0x25:
            out[j] = 0x25
            out[j + 1] = _HEX[ch >> 4]
            out[j + 2] = _HEX[ch & 15]
            j += 3
        else:
            out[j] = ch
            j += 1
    return bytes(out[:j])


cdef inline int _hexval(unsigned char c) noexcept:
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    if 97 <= c <= 102:
        return c - 87
    return -1


cpdef str percent_decode(bytes value):
    """Inverse of percent_encode. Never fails: a '%' not followed by two hex
    digits is kept as it is, and invalid UTF-8 becomes U+FFFD."""
    cdef const unsigned char* p = value
    cdef Py_ssize_t n = len(value), i = 0, j = 0
    cdef int hi, lo
    cdef bytearray out
    if b"%" not in value:
        return value.decode("utf-8", "replace")
    out = bytearray(n)
    while i < n:
        if p[i] == 0x25 and i + 2 < n + 0 and i + 2 <= n - 1:
            hi = _hexval(p[i + 1])
            lo = _hexval(p[i + 2])
            if hi >= 0 and lo >= 0:
                out[j] = (hi << 4) | lo
                j += 1
                i += 3
                continue
        out[j] = p[i]
        j += 1
        i += 1
    return bytes(out[:j]).decode("utf-8", "replace")


cdef tuple _TIMEOUT_UNITS = ((b"n", 1e-9), (b"u", 1e-6), (b"m", 1e-3), (b"S", 1.0), (b"M", 60.0), (b"H", 3600.0))


cpdef bytes encode_timeout(double seconds):
    """grpc-timeout: at most 8 digits and a unit; the finest unit that fits,
    rounded up so the server never sees a shorter deadline than ours."""
    cdef double scale, units
    cdef int64_t value
    if seconds <= 0:
        return b"1n"
    for unit, scale in _TIMEOUT_UNITS:
        units = seconds / scale
        if units >= 99999999.0:
            continue
        value = <int64_t>units
        if value < units:
            value += 1
        return b"%d%s" % (value, unit)
    return b"99999999H"


cpdef double parse_timeout(bytes value) except -2.0:
    """Seconds from a grpc-timeout value; -1.0 if malformed."""
    cdef Py_ssize_t n = len(value)
    cdef const unsigned char* p = value
    cdef int64_t digits = 0
    cdef Py_ssize_t i
    cdef unsigned char unit
    if n < 2 or n > 9:
        return -1.0
    for i in range(n - 1):
        if p[i] < 48 or p[i] > 57:
            return -1.0
        digits = digits * 10 + (p[i] - 48)
    unit = p[n - 1]
    if unit == b"H":
        return digits * 3600.0
    if unit == b"M":
        return digits * 60.0
    if unit == b"S":
        return <double>digits
    if unit == b"m":
        return digits * 1e-3
    if unit == b"u":
        return digits * 1e-6
    if unit == b"n":
        return digits * 1e-9
    return -1.0


cdef inline bint _valid_key(str key):
    cdef Py_UCS4 ch
    if not key:
        return False
    for ch in key:
        if not (("a" <= ch <= "z") or ("0" <= ch <= "9") or ch == "-" or ch == "_" or ch == "."):
            return False
    return True


cpdef list encode_metadata(object metadata):
    """Application metadata -> header pairs. Keys: lowercase [0-9a-z-_.],
    not reserved, not pseudo; `-bin` values are bytes, sent as unpadded
    base64; other values are printable ASCII."""
    cdef list out = []
    cdef str key
    cdef object value
    cdef bytes raw
    if metadata is None:
        return out
    for item in metadata:
        key = item[0]
        value = item[1]
        if not _valid_key(key):
            raise MetadataError("metadata key %r is not a valid gRPC key (lowercase 0-9 a-z - _ .)" % (key,))
        if key in FORBIDDEN_METADATA or key.startswith("grpc-") and key != "grpc-status-details-bin" \
                and key != "grpc-trace-bin" and key != "grpc-tags-bin" and key != "grpc-previous-rpc-attempts":
            raise MetadataError("metadata key %r is reserved" % (key,))
        if key.endswith("-bin"):
            if isinstance(value, str):
                value = value.encode("latin-1")
            out.append((key.encode("ascii"), _base64.b64encode(value).rstrip(b"=")))
        else:
            if isinstance(value, bytes):
                raw = value
            else:
                raw = (<str>value).encode("ascii", "strict") if isinstance(value, str) else str(value).encode("ascii")
            for ch in raw:
                if ch < 0x20 or ch > 0x7e:
                    raise MetadataError("metadata value for %r must be printable ASCII" % (key,))
            out.append((key.encode("ascii"), raw))
    return out


cdef bytes _b64_pad(bytes v):
    cdef Py_ssize_t m = len(v) % 4
    if m:
        return v + b"=" * (4 - m)
    return v


cpdef tuple decode_metadata(list headers):
    """Header pairs -> application metadata (tuple of (str, str|bytes)),
    without pseudo-headers and protocol headers; `-bin` values base64-decoded
    (padded or not, comma-joined values split)."""
    cdef list out = []
    cdef bytes name, value
    cdef str key
    for name, value in headers:
        if not name or name[0] == 58 or name in RESERVED_HEADERS:   # ':'
            continue
        key = name.decode("latin-1")
        if key.endswith("-bin"):
            for part in value.split(b","):
                part = part.strip()
                try:
                    out.append((key, _base64.b64decode(_b64_pad(part), validate=False)))
                except Exception:
                    out.append((key, part))
        else:
            out.append((key, value.decode("latin-1")))
    return tuple(out)


# HTTP status -> gRPC status, for responses that are not gRPC (PROTOCOL-HTTP2.md).
cdef dict HTTP_TO_GRPC = {
    400: SC_INTERNAL, 401: SC_UNAUTHENTICATED, 403: SC_PERMISSION_DENIED, 404: SC_UNIMPLEMENTED,
    429: SC_UNAVAILABLE, 502: SC_UNAVAILABLE, 503: SC_UNAVAILABLE, 504: SC_UNAVAILABLE,
}

# RST_STREAM error code -> gRPC status seen by the client.
cpdef int status_for_reset(uint32_t code):
    if code == ERR_REFUSED_STREAM:
        return SC_UNAVAILABLE
    if code == ERR_CANCEL:
        return SC_CANCELLED
    if code == ERR_ENHANCE_YOUR_CALM:
        return SC_RESOURCE_EXHAUSTED
    if code == ERR_INADEQUATE_SECURITY:
        return SC_PERMISSION_DENIED
    return SC_INTERNAL


cdef object _compressor(str encoding):
    if encoding == "gzip":
        return lambda data: _gzip_compress(data)
    if encoding == "deflate":
        return _zlib.compress
    return None


cdef bytes _gzip_compress(bytes data):
    cdef object c = _zlib.compressobj(6, _zlib.DEFLATED, 16 + _zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


cdef bytes _decompress(str encoding, bytes data, Py_ssize_t limit):
    """Inflate with a bound: a small compressed message cannot make us
    allocate more than the receive limit (+1 byte to detect the excess)."""
    cdef int wbits = 16 + _zlib.MAX_WBITS if encoding == "gzip" else _zlib.MAX_WBITS
    cdef object d = _zlib.decompressobj(wbits)
    cdef bytes out
    if limit < 0:
        out = d.decompress(data)
    else:
        out = d.decompress(data, limit + 1)
    if not d.eof:
        if limit >= 0 and len(out) > limit:
            raise MessageTooLarge(len(out), limit)
        raise ValueError("truncated compressed message")
    if d.unused_data:
        raise ValueError("trailing bytes after compressed message")
    return out


# ---------------------------------------------------------------------------
# calls

cdef class _Call:
    cdef readonly uint32_t stream_id
    cdef H2Stream _stream
    cdef readonly int state
    cdef readonly double deadline              # absolute, caller's clock; inf = none
    cdef MessageDecoder _decoder
    cdef readonly str recv_encoding            # grpc-encoding of received messages
    cdef public str send_encoding              # compression for messages we send
    cdef public bint compress_next             # False: next message uncompressed
    cdef int64_t _queued_unconsumed            # wire bytes delivered, not consumed
    cdef int64_t _credit_owed                  # DATA bytes not yet credited
    cdef readonly object peer_accept_encoding
    cdef public object user                    # the facade's object for this call
    cdef readonly int code                     # final status (when state == CS_DONE)
    cdef readonly object details
    # cardinality: a unary side sends or receives exactly one message
    cdef bint _single_in                       # client: unary response; server: unary request
    cdef bint _single_out                      # server: unary response (send_message checks)
    cdef int64_t _messages_in                  # messages delivered to the application
    cdef int64_t _messages_out                 # messages sent (counted when _single_out)

    cdef inline bint done(self):
        return self.state == CS_DONE

    cdef inline object _who(self):
        # what events carry: the facade's object, or the call itself
        return self if self.user is None else self.user

    @property
    def is_done(self):
        return self.state == CS_DONE


@cython.final
cdef class ClientCall(_Call):
    cdef readonly bytes method
    cdef list _headers                         # the request header block (pairs)
    cdef tuple _static_headers
    cdef list _waiting_out                     # (payload, flag) sent before a stream existed
    cdef bint _half_close_waiting
    cdef readonly bint headers_received
    cdef readonly object initial_metadata
    cdef readonly object trailing_metadata

    def __repr__(self):
        return "<ClientCall %s stream=%d state=%d>" % (self.method, self.stream_id, self.state)


@cython.final
cdef class ServerCall(_Call):
    cdef readonly str method
    cdef readonly bytes authority
    cdef object _metadata                      # decoded on first use
    cdef list _request_headers                 # what it is decoded from
    cdef readonly bint headers_sent
    cdef readonly bint half_closed             # the client has finished sending
    cdef list _pending_initial                 # initial metadata to send with the first message/status

    def __repr__(self):
        return "<ServerCall %s stream=%d state=%d>" % (self.method, self.stream_id, self.state)

    @property
    def metadata(self):
        """The request's application metadata (decoded when first asked
        for: most handlers never look)."""
        if self._metadata is None:
            self._metadata = decode_metadata(self._request_headers) if self._request_headers is not None else ()
            self._request_headers = None
        return self._metadata


cdef class GrpcConnection(H2Connection):
    """What both roles share: message framing, compression, credit, status."""
    cdef list _cevents
    cdef list _timers                          # heap of (deadline, seq, call)
    cdef uint64_t _timer_seq
    cdef public Py_ssize_t max_receive_message_length
    cdef public Py_ssize_t max_send_message_length
    cdef public object user                    # the facade's connection object
    cdef readonly bint peer_ready

    def __init__(self, bint client, H2Config config=None, Py_ssize_t max_receive_message_length=4 * 1024 * 1024,
                 Py_ssize_t max_send_message_length=-1):
        H2Connection.__init__(self, client, config)
        self._cevents = []
        self._timers = []
        self._timer_seq = 0
        self.max_receive_message_length = max_receive_message_length
        self.max_send_message_length = max_send_message_length

    cpdef list take_events(self):
        """Events produced by local actions (cancel, deadline...) since the
        last receive_data/handle_timeout/take_events."""
        cdef list ev = self._cevents
        self._cevents = []
        return ev

    cpdef list receive_data(self, data, double now=0.0):
        H2Connection.receive_data(self, data, now)
        return self.take_events()

    cpdef list handle_timeout(self, double now):
        cdef _Call call
        H2Connection.handle_timeout(self, now)
        while self._timers and self._timers[0][0] <= now:
            call = <_Call>_heappop(self._timers)[2]
            if call.state != CS_DONE and call.deadline <= now:
                self._deadline_expired(call)
        return self.take_events()

    cpdef double next_timer(self):
        cdef double t = H2Connection.next_timer(self)
        while self._timers and (<_Call>self._timers[0][2]).state == CS_DONE:
            _heappop(self._timers)
        if self._timers and self._timers[0][0] < t:
            return self._timers[0][0]
        return t

    cdef void _arm_deadline(self, _Call call):
        if call.deadline != float("inf"):
            self._timer_seq += 1
            _heappush(self._timers, (call.deadline, self._timer_seq, call))

    cdef int _deadline_expired(self, _Call call) except -1:
        raise NotImplementedError

    cdef inline void _cpush(self, CallEvent ev):
        self._cevents.append(ev)

    # -- sending messages ------------------------------------------------

    cdef object _frame_message(self, _Call call, object payload):
        """The message as it goes on the wire (prefix, maybe compressed): one
        bytes object, or for a large message a (prefix, body) tuple, so that
        the body is not copied just to put five bytes in front of it."""
        cdef bytes data = payload if PyBytes_CheckExact(payload) else bytes(payload)
        cdef bint compressed = False
        cdef object compress
        if call.send_encoding is not None and call.compress_next:
            compress = _compressor(call.send_encoding)
            if compress is not None:
                data = compress(data)
                compressed = True
        call.compress_next = True
        if self.max_send_message_length >= 0 and PyBytes_GET_SIZE(data) > self.max_send_message_length:
            raise MessageTooLarge(PyBytes_GET_SIZE(data), self.max_send_message_length)
        if PyBytes_GET_SIZE(data) >= SPLIT_MESSAGE_SIZE:
            return (message_prefix(PyBytes_GET_SIZE(data), compressed), data)
        return encode_message(data, compressed)

    # -- receiving messages ------------------------------------------------

    cdef int _deliver_data(self, _Call call, bytes data, const unsigned char* p, Py_ssize_t n,
                           int64_t flow_length) except -1:
        """Decode messages from a DATA payload (data, or when data is None
        the n bytes at p) and hand them up; errors end the call with the
        status the spec gives them."""
        cdef list messages
        cdef CallEvent ev
        cdef bytes payload
        cdef int flag
        cdef int64_t missing
        call._credit_owed += flow_length
        try:
            if data is None:
                messages = call._decoder.feed_view(p, n)
            else:
                messages = call._decoder.feed(data)
            for flag, payload in messages:
                if call._single_in and call._messages_in:
                    self._too_many_messages(call)
                    return 0
                call._messages_in += 1
                if flag:
                    if call.recv_encoding is None or call.recv_encoding == "identity":
                        self._fail_call(call, SC_INTERNAL,
                                        "compressed message received without a grpc-encoding")
                        return 0
                    try:
                        payload = _decompress(call.recv_encoding, payload, self.max_receive_message_length)
                    except MessageTooLarge as exc:
                        self._fail_call(call, SC_RESOURCE_EXHAUSTED, str(exc))
                        return 0
                    except Exception as exc:
                        self._fail_call(call, SC_INTERNAL, "could not decompress message: %s" % (exc,))
                        return 0
                ev = _cevent(CE_MESSAGE, call._who())
                ev.data = payload
                ev.value = PyBytes_GET_SIZE(payload) + MESSAGE_PREFIX_SIZE
                call._queued_unconsumed += ev.value
                self._cpush(ev)
        except MessageError as exc:
            self._fail_call(call, exc.grpc_status, str(exc))
            return 0
        self._settle_credit(call)
        if call._queued_unconsumed == 0 and call._stream is not None and call.state != CS_DONE:
            # a large message in progress: room for all of it (a reader
            # with messages still unconsumed gets backpressure instead)
            missing = call._decoder._missing()
            if missing > <int64_t>self.local_initial_window_size:
                self._make_room(call._stream, missing)
        return 0

    cdef inline void _settle_credit(self, _Call call):
        cdef H2Stream s = call._stream
        if call._credit_owed > 0 and s is not None and call._queued_unconsumed < <int64_t>self.local_initial_window_size:
            self.acknowledge_received_data(s.stream_id, call._credit_owed)
            call._credit_owed = 0

    cpdef message_consumed(self, _Call call, int64_t wire_bytes):
        """The application took a message (CE_MESSAGE.value bytes): release
        the credit held back for it."""
        if call is None:
            raise TypeError("a call object is required, not None")
        call._queued_unconsumed -= wire_bytes
        if call._queued_unconsumed < 0:
            call._queued_unconsumed = 0
        if call.state != CS_DONE:
            self._settle_credit(call)

    cdef int _fail_call(self, _Call call, int code, str details) except -1:
        raise NotImplementedError

    cdef int _too_many_messages(self, _Call call) except -1:
        raise NotImplementedError

    cdef int _end(self, _Call call, int code, object details, object trailing) except -1:
        """The call is over: one CE_CALL_ENDED."""
        cdef CallEvent ev
        if call.state == CS_DONE:
            return 0
        call.state = CS_DONE
        call.code = code
        call.details = details
        if call._stream is not None:
            call._stream.call = None
        call._stream = None
        ev = _cevent(CE_CALL_ENDED, call._who())
        ev.code = code
        ev.details = details
        ev.metadata = trailing if trailing is not None else ()
        self._cpush(ev)
        return 0

    # -- connection-level hooks ----------------------------------------------

    cdef int _on_drained(self, H2Stream s) except -1:
        if s.call is not None:
            self._cpush(_cevent(CE_WRITE_READY, (<_Call>s.call)._who()))
        return 0

    cdef int _on_goaway(self, uint32_t code, uint32_t last_stream_id, bytes debug) except -1:
        cdef CallEvent ev = _cevent(CE_GOAWAY, None)
        ev.code = code
        ev.value = last_stream_id
        ev.details = debug
        self._cpush(ev)
        return 0

    cdef int _on_terminated(self, uint32_t code, str message, bint remote) except -1:
        cdef CallEvent ev = _cevent(CE_CONNECTION_CLOSED, None)
        ev.code = code
        ev.details = message
        self._cpush(ev)
        return 0

    cdef int _on_ping_received(self, bytes opaque) except -1:
        cdef CallEvent ev = _cevent(CE_PING_RECEIVED, None)
        ev.data = opaque
        self._cpush(ev)
        return 0

    cdef int _on_ping_acked(self, bytes opaque) except -1:
        cdef CallEvent ev = _cevent(CE_PING_ACKED, None)
        ev.data = opaque
        self._cpush(ev)
        return 0

    cdef int _on_settings_changed(self, list settings) except -1:
        if not self.peer_ready:
            # the HTTP/2 handshake is complete: a channel may call this
            # connection established (a peer that is not an HTTP/2 server,
            # e.g. a TLS port spoken to in plaintext, never gets here)
            self.peer_ready = True
            self._cpush(_cevent(CE_CONNECTION_READY, None))
        return 0

    cdef int _on_settings_acked(self) except -1:
        return 0

    cpdef connection_lost(self, str reason="connection lost"):
        """The transport is gone: every call still running ends UNAVAILABLE."""
        cdef H2Stream s
        for s in list(self.streams.values()):
            self._forget(s, CL_RESET_RECEIVED)
            if s.call is not None:
                self._end(<_Call>s.call, SC_UNAVAILABLE, reason, None)
        self.closed = True
        return self.take_events()


# ---------------------------------------------------------------------------
# client

cdef class ClientConnection(GrpcConnection):
    cdef public bytes scheme
    cdef public bytes authority
    cdef public bytes user_agent
    cdef dict _static_cache                   # (method, encoding) -> header tuple
    cdef list _waiting                        # calls waiting for a stream slot

    def __init__(self, bytes authority=b"localhost", bytes scheme=b"http", H2Config config=None,
                 Py_ssize_t max_receive_message_length=4 * 1024 * 1024,
                 Py_ssize_t max_send_message_length=-1, user_agent=None):
        GrpcConnection.__init__(self, True, config, max_receive_message_length, max_send_message_length)
        self.scheme = scheme
        self.authority = authority
        ua = USER_AGENT if user_agent is None else user_agent + " " + USER_AGENT
        self.user_agent = ua.encode("ascii")
        self._static_cache = {}
        self._waiting = []

    cdef tuple _static_headers(self, bytes method, str encoding):
        cdef object key = (method, encoding)
        cdef tuple headers = self._static_cache.get(key)
        if headers is None:
            headers = (
                (b":method", b"POST"), (b":scheme", self.scheme), (b":path", method),
                (b":authority", self.authority), (b"te", b"trailers"),
                (b"content-type", b"application/grpc"), (b"user-agent", self.user_agent),
                (b"grpc-accept-encoding", ACCEPT_ENCODING),
            )
            if encoding is not None and encoding != "identity":
                headers = headers + ((b"grpc-encoding", encoding.encode("ascii")),)
            if len(self._static_cache) > 1024:
                self._static_cache.clear()
            self._static_cache[key] = headers
        return headers

    cpdef ClientCall start_call(self, object method, double now=0.0, double timeout=-1.0,
                                object metadata=None, str compression=None, object user=None,
                                bint response_streaming=True):
        """Begin a call to `method` ('/pkg.Service/Method'). timeout < 0: no
        deadline. The request headers go out now, or when a stream slot frees
        up if the peer's MAX_CONCURRENT_STREAMS is reached.

        Metadata that cannot be sent or an unknown compression do not raise:
        the call is returned already ended INTERNAL with the reason, its
        CE_CALL_ENDED is queued (take_events) and nothing is sent.
        response_streaming=False (a unary-response method): a second
        response message, or an OK status after none, ends the call
        UNIMPLEMENTED (a cardinality violation, gRPC's statuscodes.md)."""
        cdef ClientCall call = ClientCall.__new__(ClientCall)
        cdef list extra
        call.method = method if isinstance(method, bytes) else (<str?>method).encode("ascii")
        call.user = user
        call.state = CS_WAITING
        call._single_in = not response_streaming
        if compression is not None and compression != "identity" and compression not in SUPPORTED_ENCODINGS:
            return self._refuse(call, "unsupported compression %r" % (compression,))
        try:
            extra = encode_metadata(metadata)
        except ValueError as exc:          # MetadataError, or a value that is not ASCII
            return self._refuse(call, str(exc))
        call.deadline = now + timeout if timeout >= 0 else float("inf")
        call.send_encoding = compression if compression != "identity" else None
        call.compress_next = True
        call._decoder = MessageDecoder(self.max_receive_message_length)
        call._waiting_out = []
        if timeout >= 0:
            extra.insert(0, (b"grpc-timeout", encode_timeout(timeout)))
        call._static_headers = self._static_headers(call.method, call.send_encoding)
        call._headers = extra
        self._arm_deadline(call)
        if self.closed:
            self._end(call, SC_UNAVAILABLE, "connection is closed", None)
        elif self.going_away:
            self._end(call, SC_UNAVAILABLE, "connection is going away", None)
        elif self._waiting or not self.can_open_stream:
            self._waiting.append(call)
        else:
            self._activate(call)
        return call

    cdef ClientCall _refuse(self, ClientCall call, str details):
        """A call that cannot start: ended INTERNAL before touching a stream."""
        call.deadline = float("inf")
        self._end(call, SC_INTERNAL, details, None)
        return call

    cdef int _activate(self, ClientCall call) except -1:
        cdef H2Stream s
        try:
            s = self.open_stream()
        except H2ProtocolError as exc:
            self._end(call, SC_UNAVAILABLE, str(exc), None)
            return 0
        s.call = call
        call._stream = s
        call.stream_id = s.stream_id
        call.state = CS_ACTIVE
        if call._headers:
            self._write_request_headers(s, call)
        else:
            self._write_headers(s, call._static_headers, False)
        for payload in call._waiting_out:
            self.send_data(s.stream_id, payload, False)
        call._waiting_out = None
        if call._half_close_waiting:
            self.end_stream(s.stream_id)
        return 0

    cdef int _write_request_headers(self, H2Stream s, ClientCall call) except -1:
        # static part from the encoder's cache, per-call part after it
        cdef bytes block = self._encoder.encode(call._static_headers) + self._encoder.encode(call._headers)
        write_headers_frame(self._out, s.stream_id, block, False, self.peer_max_frame_size)
        s.state = ST_OPEN
        return 0

    cdef int _start_waiting(self) except -1:
        cdef ClientCall call
        while self._waiting and self.can_open_stream:
            call = <ClientCall>self._waiting.pop(0)
            if call.state == CS_WAITING:
                self._activate(call)
        return 0

    cpdef send_message(self, ClientCall call, object payload):
        """Send one request message (serialized bytes)."""
        if call is None:
            raise TypeError("a call object is required, not None")
        cdef object wire
        if call.state == CS_DONE:
            return False
        try:
            wire = self._frame_message(call, payload)
        except MessageTooLarge as exc:
            self._fail_call(call, SC_RESOURCE_EXHAUSTED, "Sent message larger than max (%d vs. %d)" % (exc.length, exc.limit))
            return False
        if call.state == CS_WAITING:
            call._waiting_out.append(wire)
        else:
            self.send_data(call.stream_id, wire, False)
        return True

    cpdef send_unary(self, ClientCall call, object payload):
        """Send the only request message and END_STREAM in one go."""
        if call is None:
            raise TypeError("a call object is required, not None")
        cdef object wire
        if call.state == CS_DONE:
            return False
        try:
            wire = self._frame_message(call, payload)
        except MessageTooLarge as exc:
            self._fail_call(call, SC_RESOURCE_EXHAUSTED, "Sent message larger than max (%d vs. %d)" % (exc.length, exc.limit))
            return False
        if call.state == CS_WAITING:
            call._waiting_out.append(wire)
            call._half_close_waiting = True
        else:
            self.send_data(call.stream_id, wire, True)
        return True

    cpdef close_send(self, ClientCall call):
        """The client has no more messages (half-close)."""
        if call is None:
            raise TypeError("a call object is required, not None")
        if call.state == CS_DONE:
            return
        if call.state == CS_WAITING:
            call._half_close_waiting = True
        elif call._stream is not None and call._stream.state in (ST_OPEN, ST_HALF_CLOSED_REMOTE):
            self.end_stream(call.stream_id)

    cpdef bint write_pending(self, ClientCall call):
        """True while sent messages are still queued for flow control; then
        a CE_WRITE_READY follows when they are written."""
        if call is None:
            raise TypeError("a call object is required, not None")
        if call._stream is None:
            return call.state == CS_WAITING and bool(call._waiting_out)
        if call._stream.pending_bytes > 0:
            self.want_drain(call.stream_id)
            return True
        return False

    cpdef cancel_call(self, ClientCall call, str details="Locally cancelled by application!"):
        """Cancel: RST_STREAM(CANCEL) and CANCELLED."""
        if call is None:
            raise TypeError("a call object is required, not None")
        if call.state == CS_DONE:
            return
        if call._stream is not None:
            self.reset_stream(call.stream_id, ERR_CANCEL)
        self._end(call, SC_CANCELLED, details, None)
        self._start_waiting()

    cpdef list cancel_all_calls(self, str details="Channel closed!"):
        """Cancel every call not yet done, as a closing channel does (grpcio
        says "Channel closed!"): calls on a stream get RST_STREAM(CANCEL),
        calls still waiting for a stream slot never start; all end
        CANCELLED with `details`. The connection stays open (closing it is
        the owner's business). Returns the events."""
        cdef list waiting = self._waiting
        cdef H2Stream s
        cdef _Call call
        self._waiting = []               # nothing may take a freed slot now
        for s in list(self.streams.values()):
            if s.call is not None and (<_Call>s.call).state != CS_DONE:
                call = <_Call>s.call
                self.reset_stream(s.stream_id, ERR_CANCEL)
                self._end(call, SC_CANCELLED, details, None)
        for call in waiting:
            self._end(call, SC_CANCELLED, details, None)
        return self.take_events()

    cdef int _deadline_expired(self, _Call call) except -1:
        if call._stream is not None:
            self.reset_stream(call.stream_id, ERR_CANCEL)
        self._end(call, SC_DEADLINE_EXCEEDED, "Deadline Exceeded", None)
        self._start_waiting()
        return 0

    cdef int _fail_call(self, _Call call, int code, str details) except -1:
        if call._stream is not None:
            self.reset_stream(call.stream_id, ERR_CANCEL)
        self._end(call, code, details, None)
        self._start_waiting()
        return 0

    cdef int _too_many_messages(self, _Call call) except -1:
        return self._fail_call(call, SC_UNIMPLEMENTED,
                               "More than one response message received for a unary-response call")

    # -- response handling ------------------------------------------------

    cdef int _on_headers(self, H2Stream s, object headers, bint end_stream) except -1:
        cdef ClientCall call = <ClientCall>s.call
        cdef bytes status = None, ctype = None, encoding = None, name, value
        cdef CallEvent ev
        if call is None:
            return 0
        if call.headers_received:
            # trailers
            if not end_stream:
                return self._fail_call(call, SC_INTERNAL, "trailers without END_STREAM")
            return self._finish_with_trailers(call, headers, False)
        for name, value in headers:
            if name == b":status":
                status = value
            elif name == b"content-type":
                ctype = value
            elif name == b"grpc-encoding":
                encoding = value
            elif name == b"grpc-accept-encoding":
                call.peer_accept_encoding = value
        if status is None:
            return self._fail_call(call, SC_INTERNAL, "response without :status")
        if status[:1] == b"1" and len(status) == 3 and not end_stream:
            return 0   # informational 1xx: the real response follows
        if status != b"200":
            return self._http_error(call, status, headers, end_stream)
        if end_stream:
            # trailers-only response
            call.headers_received = True
            return self._finish_with_trailers(call, headers, True)
        if ctype is None or not ctype.startswith(b"application/grpc"):
            return self._fail_call(call, SC_UNKNOWN, "invalid content-type %r" % (ctype,))
        if encoding is not None and encoding != b"identity":
            call.recv_encoding = encoding.decode("latin-1")
            if call.recv_encoding not in SUPPORTED_ENCODINGS:
                return self._fail_call(call, SC_INTERNAL, "unsupported grpc-encoding %r" % (call.recv_encoding,))
        call.headers_received = True
        call.initial_metadata = decode_metadata(headers)
        ev = _cevent(CE_INITIAL_METADATA, call._who())
        ev.metadata = call.initial_metadata
        self._cpush(ev)
        return 0

    cdef int _http_error(self, ClientCall call, bytes status, object headers, bint end_stream) except -1:
        cdef int code
        try:
            code = HTTP_TO_GRPC.get(int(status), SC_UNKNOWN)
        except ValueError:
            code = SC_UNKNOWN
        # a gRPC status in the same headers wins (trailers-only with an error :status)
        for name, value in headers:
            if name == b"grpc-status":
                call.headers_received = True
                return self._finish_with_trailers(call, headers, True)
        return self._fail_call(call, code, "Received http2 header with status: %s" % status.decode("latin-1"))

    cdef int _finish_with_trailers(self, ClientCall call, object headers, bint trailers_only) except -1:
        cdef bytes gstatus = None, gmessage = b""
        cdef int code
        cdef object details
        cdef H2Stream s
        for name, value in headers:
            if name == b"grpc-status":
                gstatus = value
            elif name == b"grpc-message":
                gmessage = value
        trailing = decode_metadata(headers)
        call.trailing_metadata = trailing
        if trailers_only and call.initial_metadata is None:
            call.initial_metadata = ()
        if gstatus is None:
            code = SC_UNKNOWN if not trailers_only else SC_INTERNAL
            details = "missing grpc-status in trailers"
        else:
            try:
                code = int(gstatus)
            except ValueError:
                code = SC_UNKNOWN
            if code < 0 or code > 16:
                code = SC_UNKNOWN
            details = percent_decode(gmessage)
        if code == SC_OK and call._decoder.in_message:
            code = SC_INTERNAL
            details = "stream ended in the middle of a message"
        elif code == SC_OK and call._single_in and call._messages_in == 0:
            code = SC_UNIMPLEMENTED
            details = "No response message received for a unary-response call"
        if trailers_only:
            ev = _cevent(CE_INITIAL_METADATA, call._who())
            ev.metadata = ()
            self._cpush(ev)
        s = call._stream
        self._end(call, code, details, trailing)
        if s is not None and s.state == ST_HALF_CLOSED_REMOTE and s.stream_id in self.streams:
            # The response is complete but our request was not (the server
            # answered early, §8.1): nothing will ever close the stream from
            # our side, so stop sending and free the slot.
            self.reset_stream(s.stream_id, ERR_NO_ERROR)
        self._start_waiting()
        return 0

    cdef int _on_header_list_too_large(self, H2Stream s, bint end_stream) except -1:
        cdef ClientCall call = <ClientCall>s.call
        if call is not None:
            self._fail_call(call, SC_RESOURCE_EXHAUSTED, "response header list exceeds the limit")
        return 0

    cdef int _on_data(self, H2Stream s, bytes data, int64_t flow_length, bint end_stream) except -1:
        return self._data_in(s, data, NULL, PyBytes_GET_SIZE(data), flow_length, end_stream)

    cdef int _on_data_view(self, H2Stream s, const unsigned char* p, Py_ssize_t n, int64_t flow_length,
                           bint end_stream) except -1:
        return self._data_in(s, None, p, n, flow_length, end_stream)

    cdef int _data_in(self, H2Stream s, bytes data, const unsigned char* p, Py_ssize_t n, int64_t flow_length,
                      bint end_stream) except -1:
        cdef ClientCall call = <ClientCall>s.call
        if call is None:
            return 0
        if not call.headers_received:
            return self._fail_call(call, SC_INTERNAL, "DATA before response headers")
        if n:
            self._deliver_data(call, data, p, n, flow_length)
        elif flow_length:
            call._credit_owed += flow_length
            self._settle_credit(call)
        if end_stream and call.state != CS_DONE:
            # the server ended the stream without trailers
            self._fail_call(call, SC_INTERNAL, "server closed the stream without sending trailers")
        return 0

    cdef int _on_stream_reset(self, H2Stream s, uint32_t code, bint remote, bint never_processed) except -1:
        cdef ClientCall call = <ClientCall>s.call
        if call is None:
            return 0
        if never_processed:
            self._end(call, SC_UNAVAILABLE, "stream refused before processing (GOAWAY); safe to retry", None)
        elif self.closed:
            self._end(call, SC_UNAVAILABLE, "connection failed (HTTP/2 error code %d)" % code, None)
        elif remote:
            self._end(call, status_for_reset(code),
                      "Received RST_STREAM with error code %d" % code, None)
        else:
            self._end(call, SC_INTERNAL, "stream reset by this side (HTTP/2 error code %d)" % code, None)
        return 0

    cdef int _on_stream_closed(self, H2Stream s) except -1:
        if self._waiting:
            self._start_waiting()
        return 0

    cdef int _on_settings_changed(self, list settings) except -1:
        GrpcConnection._on_settings_changed(self, settings)
        if self._waiting:
            self._start_waiting()
        return 0

    cdef int _on_terminated(self, uint32_t code, str message, bint remote) except -1:
        cdef ClientCall call
        GrpcConnection._on_terminated(self, code, message, remote)
        for call in self._waiting:
            self._end(call, SC_UNAVAILABLE, message, None)
        self._waiting = []
        return 0

    cdef int _on_goaway(self, uint32_t code, uint32_t last_stream_id, bytes debug) except -1:
        cdef ClientCall call
        GrpcConnection._on_goaway(self, code, last_stream_id, debug)
        # calls not yet on the wire never reached the server: they fail
        # UNAVAILABLE here and a channel may retry them elsewhere
        for call in self._waiting:
            self._end(call, SC_UNAVAILABLE, "connection is going away", None)
        self._waiting = []
        return 0


# ---------------------------------------------------------------------------
# server

cdef class ServerConnection(GrpcConnection):
    cdef public object compression            # default send encoding or None

    def __init__(self, H2Config config=None, Py_ssize_t max_receive_message_length=4 * 1024 * 1024,
                 Py_ssize_t max_send_message_length=-1, compression=None):
        GrpcConnection.__init__(self, False, config, max_receive_message_length, max_send_message_length)
        self.compression = compression

    cdef int _on_headers(self, H2Stream s, object headers, bint end_stream) except -1:
        cdef ServerCall call
        cdef bytes method = None, path = None, ctype = None, timeout = None, encoding = None
        cdef bytes authority = b"", accept = None
        cdef bytes name, value
        cdef double seconds
        cdef CallEvent ev
        if s.call is not None:
            call = <ServerCall>s.call
            # a second header block from the client: trailers (gRPC clients
            # send none) must end the stream
            if not end_stream:
                self._stream_error(s.stream_id, ERR_PROTOCOL_ERROR)
                return 0
            return self._on_data(s, b"", 0, True)
        for name, value in headers:
            if name[0] == 58:   # ':'
                if name == b":method":
                    method = value
                elif name == b":path":
                    path = value
                elif name == b":authority":
                    authority = value
                elif name != b":scheme":
                    self._stream_error(s.stream_id, ERR_PROTOCOL_ERROR)
                    return 0
            elif name == b"content-type":
                ctype = value
            elif name == b"grpc-timeout":
                timeout = value
            elif name == b"grpc-encoding":
                encoding = value
            elif name == b"grpc-accept-encoding":
                accept = value
        call = ServerCall.__new__(ServerCall)
        call._stream = s
        call.stream_id = s.stream_id
        call.state = CS_ACTIVE
        call.deadline = float("inf")
        call.compress_next = True
        call.authority = authority
        s.call = call
        if path is None or method is None:
            self._stream_error(s.stream_id, ERR_PROTOCOL_ERROR)
            return 0
        if method != b"POST":
            return self._reject(call, b"405", SC_INTERNAL, "method %s not allowed" % method.decode("latin-1"))
        if ctype is None or not ctype.startswith(b"application/grpc"):
            return self._reject(call, b"415", SC_INTERNAL, "invalid gRPC request content-type %r" % (ctype,))
        call.method = path.decode("latin-1")
        if accept is not None:
            call.peer_accept_encoding = accept
        if timeout is not None:
            seconds = parse_timeout(timeout)
            if seconds < 0:
                return self._reject(call, b"200", SC_INTERNAL, "malformed grpc-timeout %r" % (timeout,))
            call.deadline = self._now + seconds
        if encoding is not None and encoding != b"identity":
            call.recv_encoding = encoding.decode("latin-1")
            if call.recv_encoding not in SUPPORTED_ENCODINGS:
                return self._reject(call, b"200", SC_UNIMPLEMENTED,
                                    "grpc-encoding %s is not supported" % call.recv_encoding)
        if self.compression is not None and self.compression != "identity":
            self._choose_encoding(call, self.compression)
        call._decoder = MessageDecoder(self.max_receive_message_length)
        call._request_headers = headers
        self._arm_deadline(call)
        if end_stream:
            call.half_closed = True
        self._cpush(_cevent(CE_CALL_STARTED, call))
        if end_stream:
            self._cpush(_cevent(CE_HALF_CLOSED, call._who()))
        return 0

    cdef int _choose_encoding(self, ServerCall call, str encoding) except -1:
        # compress responses only with an encoding the client accepts
        cdef object accept = call.peer_accept_encoding
        if accept is not None and encoding.encode("ascii") in [a.strip() for a in accept.split(b",")]:
            call.send_encoding = encoding
        return 0

    cdef int _reject(self, ServerCall call, bytes http_status, int code, str details) except -1:
        """Answer an invalid request without bothering the application."""
        cdef list headers = [(b":status", http_status), (b"content-type", b"application/grpc"),
                             (b"grpc-status", b"%d" % code), (b"grpc-message", percent_encode(details))]
        if code == SC_UNIMPLEMENTED:
            headers.append((b"grpc-accept-encoding", ACCEPT_ENCODING))
        self._send_trailers_only(call, headers)
        call.state = CS_DONE
        call.code = code
        call.details = details
        return 0

    cdef int _send_trailers_only(self, ServerCall call, list headers) except -1:
        cdef H2Stream s = call._stream
        self._write_headers(s, headers, True)
        call.headers_sent = True
        if s.stream_id in self.streams and s.state != ST_CLOSED:
            # §8.1: a complete response while the request is still coming
            self.reset_stream(s.stream_id, ERR_NO_ERROR)
        return 0

    cdef int _on_header_list_too_large(self, H2Stream s, bint end_stream) except -1:
        cdef ServerCall call = ServerCall.__new__(ServerCall)
        call._stream = s
        call.stream_id = s.stream_id
        call.state = CS_ACTIVE
        s.call = call
        return self._reject(call, b"200", SC_RESOURCE_EXHAUSTED, "request header list exceeds the limit")

    cdef int _on_data(self, H2Stream s, bytes data, int64_t flow_length, bint end_stream) except -1:
        return self._data_in(s, data, NULL, PyBytes_GET_SIZE(data), flow_length, end_stream)

    cdef int _on_data_view(self, H2Stream s, const unsigned char* p, Py_ssize_t n, int64_t flow_length,
                           bint end_stream) except -1:
        return self._data_in(s, None, p, n, flow_length, end_stream)

    cdef int _data_in(self, H2Stream s, bytes data, const unsigned char* p, Py_ssize_t n, int64_t flow_length,
                      bint end_stream) except -1:
        cdef ServerCall call = <ServerCall>s.call
        if call is None or call.state == CS_DONE:
            self.acknowledge_received_data(s.stream_id, flow_length)
            return 0
        if n:
            self._deliver_data(call, data, p, n, flow_length)
        elif flow_length:
            call._credit_owed += flow_length
            self._settle_credit(call)
        if end_stream and call.state != CS_DONE:
            if call._decoder.in_message:
                return self._fail_call(call, SC_INTERNAL, "request stream ended in the middle of a message")
            call.half_closed = True
            if call._single_in and call._messages_in == 0:
                return self._no_request_message(call)
            self._cpush(_cevent(CE_HALF_CLOSED, call._who()))
        return 0

    cdef int _on_stream_reset(self, H2Stream s, uint32_t code, bint remote, bint never_processed) except -1:
        cdef ServerCall call = <ServerCall>s.call
        if call is None:
            return 0
        if remote and call.deadline <= self._now:
            # the client gave up because the deadline passed: say so
            self._end(call, SC_DEADLINE_EXCEEDED, "Deadline Exceeded", None)
            return 0
        self._end(call, SC_CANCELLED if remote else SC_INTERNAL,
                  "cancelled by the client" if remote else "stream reset (HTTP/2 error code %d)" % code, None)
        return 0

    cdef int _deadline_expired(self, _Call call) except -1:
        cdef ServerCall sc = <ServerCall>call
        if sc._stream is not None and sc._stream.stream_id in self.streams:
            # the status goes out now, not behind response data that may
            # wait for window forever (HEADERS are not flow controlled)
            self._discard_queued(sc._stream)
            self._send_status_headers(sc, SC_DEADLINE_EXCEEDED, "Deadline Exceeded", None)
            if sc._stream is not None and sc._stream.stream_id in self.streams:
                self.reset_stream(sc.stream_id, ERR_CANCEL)
        self._end(call, SC_DEADLINE_EXCEEDED, "Deadline Exceeded", None)
        return 0

    cdef int _fail_call(self, _Call call, int code, str details) except -1:
        cdef ServerCall sc = <ServerCall>call
        if sc._stream is not None and sc._stream.stream_id in self.streams:
            self._discard_queued(sc._stream)   # as in _deadline_expired
            self._send_status_headers(sc, code, details, None)
            if sc._stream is not None and sc._stream.stream_id in self.streams:
                self.reset_stream(sc.stream_id, ERR_NO_ERROR)
        self._end(call, code, details, None)
        return 0

    cdef int _too_many_messages(self, _Call call) except -1:
        return self._fail_call(call, SC_UNIMPLEMENTED, '"%s" received more than one request message '
                               'for a unary-request method.' % ((<ServerCall>call).method,))

    cdef int _no_request_message(self, ServerCall call) except -1:
        # grpcio's words for it
        return self._fail_call(call, SC_UNIMPLEMENTED, '"%s" requires exactly one request message.' % (call.method,))

    # -- application actions ------------------------------------------------

    cpdef accept_call(self, ServerCall call, object user, object request_streaming=None,
                      object response_streaming=None):
        """Attach the facade's object (later events carry it) and, when the
        method is known, its cardinality (see set_cardinality)."""
        if call is None:
            raise TypeError("a call object is required, not None")
        call.user = user
        if request_streaming is not None or response_streaming is not None:
            self.set_cardinality(call, request_streaming, response_streaming)

    cpdef set_cardinality(self, ServerCall call, object request_streaming, object response_streaming):
        """Which sides of the call carry exactly one message (False), a
        stream (True) or are not known yet (None: no check). A unary
        request is enforced by the core: a second message, or a half-close
        after none, ends the call UNIMPLEMENTED (status sent, CE_CALL_ENDED
        to the application); messages delivered before this call count. A
        unary response makes a second send_message raise ValueError."""
        if call is None:
            raise TypeError("a call object is required, not None")
        call._single_in = request_streaming is not None and not request_streaming
        call._single_out = response_streaming is not None and not response_streaming
        if call.state == CS_DONE or not call._single_in:
            return
        if call._messages_in > 1:
            self._too_many_messages(call)
        elif call._messages_in == 0 and call.half_closed:
            self._no_request_message(call)

    cpdef send_initial_metadata(self, ServerCall call, object metadata=None):
        if call is None:
            raise TypeError("a call object is required, not None")
        cdef list headers
        if call.headers_sent or call.state == CS_DONE:
            return False
        if call.send_encoding is None and not metadata:
            self._write_headers(call._stream, RESPONSE_HEADERS, False)
            call.headers_sent = True
            return True
        headers = list(RESPONSE_HEADERS)
        if call.send_encoding is not None:
            headers.append((b"grpc-encoding", call.send_encoding.encode("ascii")))
        headers.extend(encode_metadata(metadata))
        self._write_headers(call._stream, headers, False)
        call.headers_sent = True
        return True

    cpdef set_compression(self, ServerCall call, str encoding):
        """Compress responses with `encoding` (before the headers are sent)."""
        if call is None:
            raise TypeError("a call object is required, not None")
        if call.headers_sent:
            return
        if encoding is None or encoding == "identity":
            call.send_encoding = None
        else:
            if encoding not in SUPPORTED_ENCODINGS:
                raise ValueError("unsupported compression %r" % (encoding,))
            self._choose_encoding(call, encoding)

    cpdef send_message(self, ServerCall call, object payload):
        if call is None:
            raise TypeError("a call object is required, not None")
        cdef object wire
        if call.state == CS_DONE:
            return False
        if call._single_out:
            if call._messages_out:
                raise ValueError("a unary-response call sends exactly one response message")
            call._messages_out += 1
        if not call.headers_sent:
            self.send_initial_metadata(call, None)
        try:
            wire = self._frame_message(call, payload)
        except MessageTooLarge as exc:
            self._fail_call(call, SC_RESOURCE_EXHAUSTED, "Sent message larger than max (%d vs. %d)" % (exc.length, exc.limit))
            return False
        self.send_data(call.stream_id, wire, False)
        return True

    cpdef bint write_pending(self, ServerCall call):
        if call is None:
            raise TypeError("a call object is required, not None")
        if call._stream is not None and call._stream.pending_bytes > 0:
            self.want_drain(call.stream_id)
            return True
        return False

    cpdef send_status(self, ServerCall call, int code, str details="", object trailing_metadata=None):
        """End the call with a status (trailers, or trailers-only when no
        headers were sent)."""
        if call is None:
            raise TypeError("a call object is required, not None")
        if call.state == CS_DONE:
            return False
        self._send_status_headers(call, code, details, trailing_metadata)
        # the response is complete; if the client is still sending, tell it
        # to stop (§8.1) - unless it already finished
        if call._stream is not None and call._stream.stream_id in self.streams \
                and call._stream.state == ST_HALF_CLOSED_LOCAL and call._stream.pending_bytes == 0:
            self.reset_stream(call.stream_id, ERR_NO_ERROR)
        self._end(call, code, details, trailing_metadata)
        return True

    cdef int _send_status_headers(self, ServerCall call, int code, str details, object trailing) except -1:
        cdef list headers
        if not details and not trailing and 0 <= code <= 16:
            if call.headers_sent:
                self.send_headers(call.stream_id, STATUS_TRAILERS[code], True)
            else:
                call.headers_sent = True
                self.send_headers(call.stream_id, STATUS_TRAILERS_ONLY[code], True)
            return 0
        if call.headers_sent:
            headers = []
        else:
            headers = [(b":status", b"200"), (b"content-type", b"application/grpc")]
            call.headers_sent = True
        headers.append((b"grpc-status", b"%d" % code))
        if details:
            headers.append((b"grpc-message", percent_encode(details)))
        headers.extend(encode_metadata(trailing))
        self.send_headers(call.stream_id, headers, True)
        return 0

    cpdef list cancel_all_calls(self, str reason="Cancelling all calls"):
        """A server stopping without (or past its) grace, as gRPC servers do
        it: every call in flight ends UNAVAILABLE with the reason (as
        trailers, so clients report exactly that), then GOAWAY with
        INTERNAL_ERROR and the reason as debug data; the connection is
        closed. Returns the events."""
        cdef H2Stream s
        if not self.closed:
            for s in list(self.streams.values()):
                if s.call is not None and (<_Call>s.call).state != CS_DONE:
                    self.send_status(<ServerCall>s.call, SC_UNAVAILABLE, reason)
            self.close_connection(ERR_INTERNAL_ERROR, reason.encode("utf-8", "replace"))
        return self.connection_lost(reason)

    cpdef bint cancel_by_application(self, ServerCall call):
        """The application cancels a call it serves (ServicerContext.cancel):
        the client gets status CANCELLED as trailers, as gRPC servers send
        it, and a reset if it is still sending."""
        if call is None:
            raise TypeError("a call object is required, not None")
        return self.send_status(call, SC_CANCELLED, "CANCELLED")

    cpdef cancel_call(self, ServerCall call):
        """The application aborts the call without a status: RST_STREAM."""
        if call is None:
            raise TypeError("a call object is required, not None")
        if call.state == CS_DONE:
            return
        if call._stream is not None:
            self.reset_stream(call.stream_id, ERR_CANCEL)
        self._end(call, SC_CANCELLED, "cancelled by the server", None)


# The enum members as module constants, for Python callers (facades, tests).
globals().update(H2EventKind.__members__)
globals().update(CallEventKind.__members__)
globals().update(StatusCodeNumber.__members__)
