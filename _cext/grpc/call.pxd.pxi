# Declarations of grpc/call.pxi: call events, the call record and the
# connection part both roles share.

cdef enum:
    # call states
    CS_WAITING = 0            # client: no stream yet (concurrency limit)
    CS_ACTIVE = 1
    CS_DONE = 2


@cython.final
cdef class CallEvent:
    cdef readonly int kind
    cdef readonly object call
    cdef readonly object data
    cdef readonly object metadata
    cdef readonly int code
    cdef readonly object details
    cdef readonly int64_t value


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
    # the call's own figures (grpcpy.stats reads them when the call ends):
    # message payload bytes as on the wire (compressed when they were; no
    # 5-byte prefix), as gRFC A66 counts them
    cdef readonly int64_t sent_messages
    cdef readonly int64_t sent_bytes
    cdef readonly int64_t received_bytes
    cdef bint _armed                           # has an entry in its connection's deadline heap

    cdef inline bint done(self)
    cdef inline object _who(self)


cdef class GrpcConnection(H2Connection):
    cdef list _cevents
    cdef list _timers                          # heap of (deadline, seq, call)
    cdef uint64_t _timer_seq
    cdef Py_ssize_t _timers_done               # heap entries whose call has ended
    cdef public Py_ssize_t max_receive_message_length
    cdef public Py_ssize_t max_send_message_length
    cdef public object user                    # the facade's connection object
    cdef readonly bint peer_ready
    # channelz figures (grpcpy.channelz reads them; never reset): plain
    # increments on paths that run anyway, times from wall_ns()
    cdef readonly int64_t calls_started        # streams this connection opened or accepted
    cdef readonly int64_t calls_succeeded      # ... that ended OK
    cdef readonly int64_t calls_failed         # ... that ended with another status
    cdef readonly int64_t streams_succeeded    # ... whose stream ended cleanly (END_STREAM received
                                               # by a client, sent by a server), whatever the status
    cdef readonly int64_t messages_sent
    cdef readonly int64_t messages_received
    cdef readonly int64_t last_call_started_ns     # wall clock, nanoseconds; 0: never
    cdef readonly int64_t last_message_sent_ns
    cdef readonly int64_t last_message_received_ns

    cpdef list take_events(self)
    cpdef list receive_data(self, data, double now=*)
    cpdef list handle_timeout(self, double now)
    cpdef double next_timer(self)
    cdef str _size_error(self, str what, object exc)
    cdef void _arm_deadline(self, _Call call)
    cdef int _disarm(self, _Call call) except -1
    cdef int _deadline_expired(self, _Call call) except -1
    cdef inline void _cpush(self, CallEvent ev)
    cdef inline void _count_call_started(self)
    cdef object _frame_message(self, _Call call, object payload)
    cdef int _deliver_data(self, _Call call, bytes data, const unsigned char* p, Py_ssize_t n, int64_t flow_length) except -1
    cdef inline void _settle_credit(self, _Call call)
    cpdef message_consumed(self, _Call call, int64_t wire_bytes)
    cdef int _fail_call(self, _Call call, int code, str details) except -1
    cdef int _too_many_messages(self, _Call call) except -1
    cdef int _end(self, _Call call, int code, object details, object trailing) except -1
    cdef int _on_drained(self, H2Stream s) except -1
    cdef int _on_goaway(self, uint32_t code, uint32_t last_stream_id, bytes debug) except -1
    cdef int _on_terminated(self, uint32_t code, str message, bint remote) except -1
    cdef int _on_ping_received(self, bytes opaque) except -1
    cdef int _on_ping_acked(self, bytes opaque) except -1
    cdef int _on_settings_changed(self, list settings) except -1
    cdef int _on_settings_acked(self) except -1
    cpdef connection_lost(self, str reason=*)
