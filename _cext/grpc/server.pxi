# The server role: ServerConnection validates requests (answering the invalid
# ones itself), hands calls to the application and sends its responses and
# status.
#
# The fields and cdef signatures of its classes: server.pxd.pxi.

# Header sets most responses share, as tuples: the HPACK encoder caches the
# encoding of a tuple it has seen, so a repeated set costs one dict lookup.
cdef tuple RESPONSE_HEADERS = ((b":status", b"200"), (b"content-type", b"application/grpc"),
                               (b"grpc-accept-encoding", ACCEPT_ENCODING))
cdef tuple STATUS_TRAILERS = tuple([((b"grpc-status", b"%d" % n),) for n in range(17)])
cdef tuple STATUS_TRAILERS_ONLY = tuple([((b":status", b"200"), (b"content-type", b"application/grpc"),
                                          (b"grpc-status", b"%d" % n)) for n in range(17)])


cdef class ServerCall(_Call):
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


cdef class ServerConnection(GrpcConnection):
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
        if s.call is not None or s.header_blocks > 1:
            # a second header block from the client: trailers (gRPC clients
            # send none) must end the stream. Its call may be over already
            # (the response still queued): it is never a new request.
            if not end_stream:
                self._stream_error(s.stream_id, ERR_PROTOCOL_ERROR)
                return 0
            return self._on_data(s, b"", 0, True)
        for name, value in headers:
            # (names are never empty: the HTTP/2 layer resets such a stream)
            if PyBytes_GET_SIZE(name) and PyBytes_AS_STRING(name)[0] == 58:   # ':'
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
        self._count_call_started()
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
        # compress responses unless the client listed what it accepts and
        # this encoding is not among them: a request without
        # grpc-accept-encoding (older grpc-go clients) forbids nothing,
        # and gRPC servers compress for it
        cdef object accept = call.peer_accept_encoding
        if accept is None or encoding.encode("ascii") in [a.strip() for a in accept.split(b",")]:
            call.send_encoding = encoding
        return 0

    cdef int _reject(self, ServerCall call, bytes http_status, int code, str details) except -1:
        """Answer an invalid request without bothering the application."""
        cdef list headers = [(b":status", http_status), (b"content-type", b"application/grpc"),
                             (b"grpc-status", b"%d" % code), (b"grpc-message", percent_encode(details))]
        if code == SC_UNIMPLEMENTED:
            headers.append((b"grpc-accept-encoding", ACCEPT_ENCODING))
        self._send_trailers_only(call, headers)
        self.calls_failed += 1
        call.state = CS_DONE
        call.code = code
        call.details = details
        return 0

    cdef int _send_trailers_only(self, ServerCall call, list headers) except -1:
        cdef H2Stream s = call._stream
        self._write_headers(s, headers, True)
        self.streams_succeeded += 1
        call.headers_sent = True
        if s.stream_id in self.streams and s.state != ST_CLOSED:
            # §8.1: a complete response while the request is still coming
            self.reset_stream(s.stream_id, ERR_NO_ERROR)
        return 0

    cdef int _on_header_list_too_large(self, H2Stream s, bint end_stream) except -1:
        cdef ServerCall call
        if s.call is not None:
            # trailers too large on a call the application holds: that call
            # ends (status and reset), it is never replaced
            return self._fail_call(<ServerCall>s.call, SC_RESOURCE_EXHAUSTED,
                                   "request trailers exceed the header list limit")
        if s.header_blocks > 1:
            # trailers of a call already over, as in _on_headers
            if not end_stream:
                self._stream_error(s.stream_id, ERR_PROTOCOL_ERROR)
            return 0
        call = ServerCall.__new__(ServerCall)
        self._count_call_started()
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
        if not self.closed and sc._stream is not None and sc._stream.stream_id in self.streams:
            # the status goes out now, not behind response data that may
            # wait for window forever (HEADERS are not flow controlled)
            self._discard_queued(sc._stream)
            self._send_status_headers(sc, SC_DEADLINE_EXCEEDED, "Deadline Exceeded", None)
            # the status is complete; a client still sending is told to stop
            # with NO_ERROR, as gRPC servers do: a CANCEL here can reach the
            # client's transport before it reads the trailers, and the call
            # then ends CANCELLED instead of DEADLINE_EXCEEDED
            if sc._stream is not None and sc._stream.stream_id in self.streams:
                self.reset_stream(sc.stream_id, ERR_NO_ERROR)
        self._end(call, SC_DEADLINE_EXCEEDED, "Deadline Exceeded", None)
        return 0

    cdef int _fail_call(self, _Call call, int code, str details) except -1:
        cdef ServerCall sc = <ServerCall>call
        if not self.closed and sc._stream is not None and sc._stream.stream_id in self.streams:
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
            self._cardinality(call, request_streaming, response_streaming)

    cpdef set_cardinality(self, ServerCall call, object request_streaming, object response_streaming):
        """Which sides of the call carry exactly one message (False), a
        stream (True) or are not known yet (None: no check). A unary
        request is enforced by the core: a second message, or a half-close
        after none, ends the call UNIMPLEMENTED (status sent, CE_CALL_ENDED
        to the application); messages delivered before this call count. A
        unary response makes a second send_message raise ValueError."""
        if call is None:
            raise TypeError("a call object is required, not None")
        self._cardinality(call, request_streaming, response_streaming)

    cdef int _cardinality(self, ServerCall call, object request_streaming, object response_streaming) except -1:
        call._single_in = request_streaming is not None and not request_streaming
        call._single_out = response_streaming is not None and not response_streaming
        if call.state == CS_DONE or not call._single_in:
            return 0
        if call._messages_in > 1:
            self._too_many_messages(call)
        elif call._messages_in == 0 and call.half_closed:
            self._no_request_message(call)
        return 0

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
            self._fail_call(call, SC_RESOURCE_EXHAUSTED, self._size_error("Sent", exc))
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
        self.streams_succeeded += 1
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
        closed. When no call was cut off the shutdown was clean and the
        last GOAWAY says NO_ERROR (clients log an error GOAWAY). Returns
        the events."""
        cdef H2Stream s
        cdef bint cut = False
        if not self.closed:
            for s in list(self.streams.values()):
                if s.call is not None and (<_Call>s.call).state != CS_DONE:
                    self.send_status(<ServerCall>s.call, SC_UNAVAILABLE, reason)
                    cut = True
            if cut:
                self.close_connection(ERR_INTERNAL_ERROR, reason.encode("utf-8", "replace"))
            elif self._shutdown_phase != 2:
                # the final GOAWAY of a graceful shutdown has not gone out
                # (its PING unanswered, or none started): send it now
                self._shutdown_phase = 2
                self.close_connection(ERR_NO_ERROR, b"", self.last_peer_stream_id)
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
