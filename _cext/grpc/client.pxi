# The client role: ClientConnection starts calls (waiting for a stream slot
# when the peer's MAX_CONCURRENT_STREAMS is reached), sends requests and turns
# responses, trailers, resets and HTTP errors into one status per call.
#
# The fields and cdef signatures of its classes: client.pxd.pxi.

from grpcpy._version import __version__ as _GRPCPY_VERSION

USER_AGENT = "grpc-python-grpcpy/" + _GRPCPY_VERSION


# HTTP status -> gRPC status, for responses that are not gRPC (PROTOCOL-HTTP2.md).
cdef dict HTTP_TO_GRPC = {
    400: SC_INTERNAL, 401: SC_UNAUTHENTICATED, 403: SC_PERMISSION_DENIED, 404: SC_UNIMPLEMENTED,
    429: SC_UNAVAILABLE, 502: SC_UNAVAILABLE, 503: SC_UNAVAILABLE, 504: SC_UNAVAILABLE,
}

# A stream the server refused (RST_STREAM REFUSED_STREAM, RFC 9113 section 8.7:
# the request was not processed) is opened again, at the head of the queue for
# a stream slot, with the headers and messages it had sent - as long as no
# response headers came, what it sent fits in REPLAY_LIMIT bytes and it was not
# refused MAX_REFUSALS times already (gRFC A6's transparent retry). A server
# refuses such streams when it counts a finished stream a little longer than
# the client does (grpcio's server counts a stream until its trailers are
# written out) or when the client opened streams before it had read the
# server's MAX_CONCURRENT_STREAMS.
cdef Py_ssize_t REPLAY_LIMIT = 64 * 1024
cdef int MAX_REFUSALS = 8


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


cdef int _status_code(bytes value):
    """A grpc-status value as a status code: ASCII decimal digits only (no
    sign, space or '_', which int() would take); anything else, or a code
    outside 0-16, is UNKNOWN (as the spec says for codes it does not know)."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(value)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value), i
    cdef int code = 0
    if n == 0:
        return SC_UNKNOWN
    for i in range(n):
        if p[i] < 48 or p[i] > 57:
            return SC_UNKNOWN
        code = code * 10 + (p[i] - 48)
        if code > 16:
            return SC_UNKNOWN
    return code


cdef class ClientCall(_Call):
    def __repr__(self):
        return "<ClientCall %s stream=%d state=%d>" % (self.method, self.stream_id, self.state)


cdef class ClientConnection(GrpcConnection):
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
        self.replay_refused = True

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
        UNIMPLEMENTED (a cardinality violation, gRPC's statuscodes.md).
        A call that ends before the server could have processed it (never
        sent: the connection closed or went away first; a stream above a
        GOAWAY's last-stream-id; REFUSED_STREAM) has `unprocessed` set: the
        call layer may retry it transparently (gRFC A6)."""
        cdef ClientCall call = ClientCall.__new__(ClientCall)
        cdef list extra
        call.method = method if isinstance(method, bytes) else (<str?>method).encode("ascii")
        call.user = user
        call.state = CS_WAITING
        call._single_in = not response_streaming
        self._count_call_started()
        if compression is not None and compression != "identity" and compression not in SUPPORTED_ENCODINGS:
            return self._refuse(call, "unsupported compression %r" % (compression,))
        try:
            extra = encode_metadata(metadata)
        except ValueError as exc:          # MetadataError, or a value that is not ASCII
            return self._refuse(call, "Invalid metadata: %s" % (exc,))   # grpcio's words, then the reason
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
            self._end_unprocessed(call, "connection is closed")
        elif self._going_away():
            self._end_unprocessed(call, "connection is going away")
        elif self._waiting or not self._can_open():
            self._waiting.append(call)
        else:
            self._activate(call)
        return call

    cpdef set_receive_limit(self, ClientCall call, Py_ssize_t limit):
        """This call's receive limit instead of the connection's (a service
        config's maxResponseMessageBytes); set right after start_call."""
        if call._decoder is not None:
            call._decoder = MessageDecoder(limit)

    cdef ClientCall _refuse(self, ClientCall call, str details):
        """A call that cannot start: ended INTERNAL before touching a stream."""
        call.deadline = float("inf")
        self._end(call, SC_INTERNAL, details, None)
        return call

    cdef int _end_unprocessed(self, ClientCall call, str details) except -1:
        call.unprocessed = True
        return self._end(call, SC_UNAVAILABLE, details, None)

    cdef int _activate(self, ClientCall call) except -1:
        cdef H2Stream s
        try:
            s = self.open_stream()
        except H2ProtocolError as exc:
            self._end_unprocessed(call, str(exc))
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
        if call._replay_bytes <= REPLAY_LIMIT:
            call._replay = call._waiting_out    # kept in case the stream is refused
        call._waiting_out = None
        if call._half_close_waiting:
            self.end_stream(s.stream_id)
        return 0

    cdef inline void _keep_for_replay(self, ClientCall call, object wire):
        """Count a message the call sends; keep it while the call may still
        be replayed on a new stream."""
        call._replay_bytes += len(wire[1]) + 5 if type(wire) is tuple else len(wire)
        if call._replay is not None:
            if call._replay_bytes > REPLAY_LIMIT:
                call._replay = None
            else:
                call._replay.append(wire)

    cdef bint _requeue_refused(self, ClientCall call, H2Stream s) except -1:
        """The server refused the call's stream: put the call back at the
        head of the queue for a stream slot, to be sent again (see
        REPLAY_LIMIT). False when it cannot be."""
        if (not self.replay_refused or call._replay is None or call.headers_received or call.state != CS_ACTIVE
                or call._refusals >= MAX_REFUSALS or self.closed or self._going_away()):
            return False
        call._refusals += 1
        s.call = None
        call._stream = None
        call.stream_id = 0
        call.state = CS_WAITING
        call._waiting_out = call._replay
        call._replay = None
        # (told to the call: grpcpy.stats counts the replay as a transparent retry)
        self._cpush(_cevent(CE_STREAM_REFUSED, call._who()))
        self._waiting.insert(0, call)
        self._start_waiting()
        return True

    cdef int _write_request_headers(self, H2Stream s, ClientCall call) except -1:
        # static part from the encoder's cache, per-call part after it
        cdef bytes block = self._encoder.encode(call._static_headers) + self._encoder.encode(call._headers)
        write_headers_frame(self._out, s.stream_id, block, False, self.peer_max_frame_size)
        s.state = ST_OPEN
        return 0

    cdef int _start_waiting(self) except -1:
        cdef ClientCall call
        while self._waiting and self._can_open():
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
            self._fail_call(call, SC_RESOURCE_EXHAUSTED, self._size_error("Sent", exc))
            return False
        self._keep_for_replay(call, wire)
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
            self._fail_call(call, SC_RESOURCE_EXHAUSTED, self._size_error("Sent", exc))
            return False
        self._keep_for_replay(call, wire)
        call._half_close_waiting = True
        if call.state == CS_WAITING:
            call._waiting_out.append(wire)
        else:
            self.send_data(call.stream_id, wire, True)
        return True

    cpdef close_send(self, ClientCall call):
        """The client has no more messages (half-close)."""
        if call is None:
            raise TypeError("a call object is required, not None")
        if call.state == CS_DONE:
            return
        call._half_close_waiting = True      # (also for a replay, see REPLAY_LIMIT)
        if call.state != CS_WAITING and call._stream is not None \
                and call._stream.state in (ST_OPEN, ST_HALF_CLOSED_REMOTE):
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

    cpdef connection_lost(self, str reason="connection lost"):
        """The transport is gone: every call still running ends UNAVAILABLE,
        those still waiting for a stream slot included (taken off the queue
        first, so that no stream closing here starts one)."""
        cdef list waiting = self._waiting
        cdef ClientCall call
        self._waiting = []
        for call in waiting:
            self._end_unprocessed(call, reason)
        return GrpcConnection.connection_lost(self, reason)

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
        call._replay = None
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
        self.streams_succeeded += 1
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
            code = _status_code(gstatus)
            details = percent_decode(gmessage)
        if code == SC_OK and call._decoder.in_message:
            code = SC_INTERNAL
            details = "stream ended in the middle of a message"
        elif code == SC_OK and call._single_in and call._messages_in == 0:
            code = SC_UNIMPLEMENTED
            details = "No response message received for a unary-response call"
        # (a trailers-only response reports no CE_INITIAL_METADATA: the call
        # received no response headers, which is what decides whether it
        # may still be retried, gRFC A6; its initial metadata is empty)
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
            self._end_unprocessed(call, "stream refused before processing (GOAWAY); safe to retry")
        elif remote and code == ERR_REFUSED_STREAM and self._requeue_refused(call, s):
            pass
        elif remote and code == ERR_REFUSED_STREAM and not call.headers_received:
            self._end_unprocessed(call, "Received RST_STREAM with error code %d" % code)
        elif self.closed:
            self._end(call, SC_UNAVAILABLE, self.close_reason or "connection failed (HTTP/2 error code %d)" % code,
                      None)
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
            self._end_unprocessed(call, message)
        self._waiting = []
        return 0

    cdef int _on_goaway(self, uint32_t code, uint32_t last_stream_id, bytes debug) except -1:
        cdef ClientCall call
        GrpcConnection._on_goaway(self, code, last_stream_id, debug)
        # calls not yet on the wire never reached the server: they fail
        # UNAVAILABLE here and a channel may retry them elsewhere
        for call in self._waiting:
            self._end_unprocessed(call, "connection is going away")
        self._waiting = []
        return 0
