# gRPC calls over the HTTP/2 connection (the gRPC project's PROTOCOL-HTTP2.md),
# both roles, sans-IO. This part: the call events, the call record and what
# both roles share (GrpcConnection); client.pxi and server.pxi hold the roles,
# headers.pxi and compression.pxi the header-value and message codecs.
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
#
# The fields and cdef signatures of its classes: call.pxd.pxi.

from heapq import heappush as _heappush, heappop as _heappop, heapify as _heapify

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
    CE_STREAM_REFUSED = 12    # client: the server refused the call's stream; the core sends it again

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
    CE_CONNECTION_READY: "CONNECTION_READY", CE_STREAM_REFUSED: "STREAM_REFUSED",
}

# A message at least this large is queued as (prefix, body) instead of being
# copied behind its prefix; a smaller one is joined (one chunk per message).
cdef Py_ssize_t SPLIT_MESSAGE_SIZE = 16 * 1024


@cython.freelist(256)
cdef class CallEvent:
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
# calls

cdef class _Call:
    cdef inline bint done(self):
        return self.state == CS_DONE

    cdef inline object _who(self):
        # what events carry: the facade's object, or the call itself
        return self if self.user is None else self.user

    @property
    def is_done(self):
        return self.state == CS_DONE

    @property
    def received_messages(self):
        """Messages received and handed up (grpcpy.stats)."""
        return self._messages_in


# The clock of the channelz figures' times (last call started, last message
# sent and received): the coarse wall clock, a few nanoseconds to read (no
# system call) at the resolution of the kernel's tick. The figures are for
# people and tools looking at a live process; nothing in the protocol
# depends on them, so they do not take the caller's clock.
cdef extern from *:
    """
    #include <time.h>
    static inline int64_t grpcpy_wall_ns(void) {
        struct timespec ts;
    #if defined(CLOCK_REALTIME_COARSE)
        clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    #else
        timespec_get(&ts, TIME_UTC);
    #endif
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    }
    """
    int64_t grpcpy_wall_ns() nogil


def wall_ns():
    """The clock of the channelz times (nanoseconds since the epoch)."""
    return grpcpy_wall_ns()


cdef class GrpcConnection(H2Connection):
    """What both roles share: message framing, compression, credit, status."""

    def __init__(self, bint client, H2Config config=None, Py_ssize_t max_receive_message_length=4 * 1024 * 1024,
                 Py_ssize_t max_send_message_length=-1):
        H2Connection.__init__(self, client, config)
        self._cevents = []
        self._timers = []
        self._timer_seq = 0
        self.max_receive_message_length = max_receive_message_length
        self.max_send_message_length = max_send_message_length

    cdef str _size_error(self, str what, object exc):
        """grpcio's text for a message over a size limit, naming the side
        whose limit it is: "CLIENT: Received message larger than max (N vs. M)"."""
        return "%s: %s message larger than max (%d vs. %d)" % (
            "CLIENT" if self.role == ROLE_CLIENT else "SERVER", what, exc.length, exc.limit)

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
            call._armed = False
            if call.state == CS_DONE:
                self._timers_done -= 1
            elif call.deadline <= now:
                self._deadline_expired(call)
        return self.take_events()

    cpdef double next_timer(self):
        cdef double t = H2Connection.next_timer(self)
        cdef _Call call
        while self._timers:
            call = <_Call>self._timers[0][2]
            if call.state != CS_DONE:
                break
            _heappop(self._timers)
            call._armed = False
            self._timers_done -= 1
        if self._timers and self._timers[0][0] < t:
            return self._timers[0][0]
        return t

    cdef void _arm_deadline(self, _Call call):
        if call.deadline != float("inf"):
            self._timer_seq += 1
            _heappush(self._timers, (call.deadline, self._timer_seq, call))
            call._armed = True

    cdef int _disarm(self, _Call call) except -1:
        """A call with a deadline ended: its heap entry is now dead weight.
        Entries are dropped lazily at the top of the heap; when dead ones
        behind a long-lived deadline make up half of it, the heap is rebuilt
        from the live ones (amortised O(1) per call, and a connection never
        holds more finished calls than live ones plus a few)."""
        cdef list live
        self._timers_done += 1
        if self._timers_done > 32 and self._timers_done * 2 > len(self._timers):
            live = [e for e in self._timers if (<_Call>(<tuple>e)[2]).state != CS_DONE]
            for e in self._timers:
                if (<_Call>(<tuple>e)[2]).state == CS_DONE:
                    (<_Call>(<tuple>e)[2])._armed = False
            _heapify(live)
            self._timers = live
            self._timers_done = 0
        return 0

    def _pending_deadlines(self):
        """Test hook: entries in the deadline heap, live or not yet dropped."""
        return len(self._timers)

    cdef int _deadline_expired(self, _Call call) except -1:
        raise NotImplementedError

    cdef inline void _count_call_started(self):
        self.calls_started += 1
        self.last_call_started_ns = grpcpy_wall_ns()

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
        self.messages_sent += 1
        self.last_message_sent_ns = grpcpy_wall_ns()
        call.sent_messages += 1
        call.sent_bytes += PyBytes_GET_SIZE(data)
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
                self.messages_received += 1
                self.last_message_received_ns = grpcpy_wall_ns()
                call.received_bytes += PyBytes_GET_SIZE(payload)
                ev = _cevent(CE_MESSAGE, call._who())
                if flag:
                    # CE_MESSAGE's code: the size the message had on the
                    # wire when it came compressed (0: it did not)
                    ev.code = <int>min(PyBytes_GET_SIZE(payload), 0x7fffffff)
                    if call.recv_encoding is None or call.recv_encoding == "identity":
                        self._fail_call(call, SC_INTERNAL,
                                        "compressed message received without a grpc-encoding")
                        return 0
                    try:
                        payload = _decompress(call.recv_encoding, payload, self.max_receive_message_length)
                    except MessageTooLarge as exc:
                        self._fail_call(call, SC_RESOURCE_EXHAUSTED, self._size_error("Received", exc))
                        return 0
                    except Exception as exc:
                        self._fail_call(call, SC_INTERNAL, "could not decompress message: %s" % (exc,))
                        return 0
                ev.data = payload
                ev.value = PyBytes_GET_SIZE(payload) + MESSAGE_PREFIX_SIZE
                call._queued_unconsumed += ev.value
                self._cpush(ev)
        except MessageTooLarge as exc:
            self._fail_call(call, SC_RESOURCE_EXHAUSTED, self._size_error("Received", exc))
            return 0
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
        if code == SC_OK:
            self.calls_succeeded += 1
        else:
            self.calls_failed += 1
        if call._stream is not None:
            call._stream.call = None
        call._stream = None
        if call._decoder is not None:
            # a partial message (up to the receive limit, allocated whole)
            # is freed now, not when the application drops the call
            call._decoder.release()
        if call._armed:
            self._disarm(call)
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
