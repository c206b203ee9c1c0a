# Declarations of h2/connection.pxi: events, settings and the HTTP/2
# connection state machine. The _on_* methods are the hooks grpc/ overrides.

# Closed streams remembered to classify late frames (§5.1 "closed"); older
# ones are treated as long closed. Bounded so a peer cannot grow it.
cdef enum:
    CLOSED_MEMORY = 1024


@cython.final
cdef class H2Event:
    cdef readonly int kind
    cdef readonly uint32_t stream_id
    cdef readonly object headers
    cdef readonly object data
    cdef readonly bint end_stream
    cdef readonly uint32_t error_code
    cdef readonly bint remote
    cdef readonly int64_t value


@cython.final
cdef class H2Config:
    # advertised settings
    cdef public uint32_t header_table_size
    cdef public uint32_t max_concurrent_streams     # 0xffffffff: not advertised (unlimited)
    cdef public uint32_t initial_window_size
    cdef public uint32_t max_frame_size
    cdef public uint32_t max_header_list_size
    # local policy
    cdef public uint32_t connection_window_size     # raised from 65535 at start
    cdef public uint32_t max_window_size            # BDP growth cap
    cdef public bint bdp_probing
    cdef public Py_ssize_t max_continuations
    cdef public Py_ssize_t max_header_block_size
    # DoS protection: control-frame replies (PING/SETTINGS ACK, RST_STREAM)
    # queued while the transport does not drain; past this the peer is
    # flooding us (CVE-2019-9512/9515) → ENHANCE_YOUR_CALM.
    cdef public Py_ssize_t max_pending_control_frames
    # Rapid reset (CVE-2023-44487): a token bucket of stream resets by the
    # peer: `reset_burst` at once, refilled at `reset_rate` per second.
    cdef public double reset_burst
    cdef public double reset_rate
    cdef public double settings_timeout             # seconds for the peer's SETTINGS ACK
    # keepalive and connection management (doc/keepalive.md, gRFC A8/A9);
    # durations in seconds, inf: off. See "Keepalive" in connection.pxi.
    cdef public double keepalive_time               # PING after this long without input
    cdef public double keepalive_timeout            # ... and close if nothing arrives within this
    cdef public bint keepalive_permit_without_calls # ping (client) / accept pings (server) with no call open
    cdef public Py_ssize_t max_pings_without_data   # 0: no limit
    cdef public double min_ping_interval_without_data   # server ping policy; 0 with
    cdef public Py_ssize_t max_ping_strikes             # max_ping_strikes 0: no policy
    cdef public double max_connection_idle          # server
    cdef public double max_connection_age           # server (the caller applies the jitter)
    cdef public double max_connection_age_grace     # server


cdef class H2Connection:
    cdef readonly int role
    cdef readonly H2Config config
    cdef FrameParser _parser
    cdef Encoder _encoder
    cdef Decoder _decoder
    cdef WriteBuffer _out
    cdef list _sealed                           # output pieces taken from _out, in order
    cdef list _events
    cdef readonly dict streams                  # open (not closed) streams by id
    cdef dict _closed                           # recently closed id -> CL_*
    cdef uint32_t _closed_order[CLOSED_MEMORY]  # ring of the ids in _closed, oldest at _closed_head
    cdef Py_ssize_t _closed_head
    cdef Py_ssize_t _closed_count
    cdef list _send_queue                       # streams with data waiting for window
    cdef Py_ssize_t _send_head

    # connection state
    cdef bint _preface_received                 # server: magic seen; both: first SETTINGS seen
    cdef bint _settings_received
    cdef bytes _magic_buf
    cdef readonly bint closed                   # no further frames are processed or sent
    cdef readonly uint32_t next_stream_id
    cdef readonly uint32_t last_peer_stream_id  # highest stream id the peer opened
    cdef readonly uint32_t peer_goaway_last_id  # 0xffffffff until the peer sends GOAWAY
    cdef readonly uint32_t goaway_sent_last_id  # 0xffffffff until we send GOAWAY
    cdef int _shutdown_phase                    # 0 none, 1 first GOAWAY+PING sent, 2 final GOAWAY sent
    cdef readonly Py_ssize_t local_open         # open streams we initiated
    cdef readonly Py_ssize_t peer_open          # open streams the peer initiated

    # peer settings
    cdef readonly uint32_t peer_max_concurrent_streams
    cdef readonly uint32_t peer_initial_window_size
    cdef readonly uint32_t peer_max_frame_size
    cdef readonly uint32_t peer_max_header_list_size
    cdef readonly bint peer_enable_push

    # local settings in force (acknowledged by the peer)
    cdef readonly uint32_t local_initial_window_size
    cdef list _pending_settings                 # sent, awaiting ACK: list of lists of (id, value)
    cdef double _settings_sent_at               # time of the oldest unacked SETTINGS, -1 none

    # flow control
    cdef readonly int64_t send_window           # connection send window
    cdef readonly int64_t recv_window           # connection receive window
    cdef int64_t _conn_unacked
    cdef int64_t _conn_window_target

    # BDP estimation
    cdef bint _bdp_in_flight
    cdef double _bdp_sent_at
    cdef int64_t _bdp_sample
    cdef double _bdp_rtt

    # limits
    cdef Py_ssize_t _control_pending
    cdef readonly bint transport_paused         # see set_transport_paused()
    cdef double _reset_tokens
    cdef double _reset_stamp
    cdef double _now                            # the time of the call being handled

    # keepalive and connection management
    cdef double _last_recv                      # when bytes last arrived
    cdef double _ka_sent_at                     # keepalive PING unanswered since, -1 none
    cdef Py_ssize_t _pings_without_data         # keepalive PINGs since we last sent HEADERS/DATA
    cdef double _last_ping_recv                 # server policy: previous PING, -1 none since a reset
    cdef Py_ssize_t _ping_strikes
    cdef double _started_at
    cdef double _idle_since                     # server: when the last call ended
    cdef double _grace_ends                     # server: age grace end, inf none
    cdef bint _close_when_drained               # idle/age GOAWAY: close once no stream is left
    cdef readonly bint too_many_pings           # the peer's GOAWAY said ENHANCE_YOUR_CALM "too_many_pings"
    cdef readonly object close_reason           # why this side closed the connection (str) or None
    cdef readonly Py_ssize_t keepalive_pings_sent

    cpdef initiate(self, double now=*)
    cdef _send_settings(self, list settings, double now)
    cpdef update_settings(self, dict changes, double now=*)
    cpdef list receive_data(self, data, double now=*)
    cdef object _read_magic(self, data)
    cdef list _take_events(self)
    cdef int _dispatch(self, Frame f, double now) except -1
    cdef inline object _active(self, uint32_t sid)
    cdef inline bint _peer_initiated(self, uint32_t sid)
    cdef inline bint _going_away(self)
    cdef inline bint _can_open(self)
    cdef bint _is_idle(self, uint32_t sid)
    cdef int _frame_on_closed(self, Frame f) except -1
    cdef int _recv_data(self, Frame f, double now) except -1
    cdef inline void _return_conn_credit(self)
    cpdef acknowledge_received_data(self, uint32_t stream_id, int64_t n)
    cdef inline void _maybe_credit_stream(self, H2Stream s)
    cdef int _make_room(self, H2Stream s, int64_t needed) except -1
    cdef void _start_bdp_probe(self, double now)
    cdef int _bdp_ack(self, double now) except -1
    cdef int _recv_headers(self, Frame f, double now) except -1
    cdef int _open_remote_stream(self, Frame f, object headers, bint too_large, bint end_stream, double now) except -1
    cdef H2Stream _new_stream(self, uint32_t sid, bint local)
    cdef inline void _remote_end(self, H2Stream s)
    cdef void _forget(self, H2Stream s, int how)
    cdef inline void _remember_closed(self, uint32_t sid, int how)
    cdef int _recv_rst_stream(self, Frame f, double now) except -1
    cdef int _count_reset(self, double now) except -1
    cdef int _recv_window_update(self, Frame f) except -1
    cdef int _recv_settings(self, Frame f, double now) except -1
    cdef int _apply_peer_setting(self, int ident, uint32_t value) except -1
    cdef void _apply_local_settings(self, list settings, bint acked)
    cdef int _recv_ping(self, Frame f, double now) except -1
    cdef int _recv_goaway(self, Frame f) except -1
    cdef int _control_reply(self) except -1
    cdef int _stream_error(self, uint32_t sid, uint32_t code) except -1
    cdef void _terminate(self, uint32_t code, str message, double now)
    cpdef H2Stream open_stream(self)
    cdef inline H2Stream _stream_for_send(self, uint32_t sid)
    cpdef send_headers(self, uint32_t stream_id, object headers, bint end_stream=*)
    cdef int _write_headers(self, H2Stream s, object headers, bint end_stream) except -1
    cdef inline void _local_end(self, H2Stream s)
    cpdef send_data(self, uint32_t stream_id, object data, bint end_stream=*)
    cpdef end_stream(self, uint32_t stream_id)
    cpdef int64_t local_flow_window(self, uint32_t stream_id)
    cdef inline void _enqueue(self, H2Stream s)
    cdef int _flush_data(self) except -1
    cdef bint _send_one_frame(self, H2Stream s) except -1
    cdef void _discard_queued(self, H2Stream s)
    cpdef want_drain(self, uint32_t stream_id)
    cpdef reset_stream(self, uint32_t stream_id, uint32_t error_code=*)
    cpdef ping(self, bytes opaque=*)
    cpdef close_connection(self, uint32_t error_code=*, bytes debug=*, last_stream_id=*)
    cpdef start_graceful_shutdown(self)
    cdef void _finish_graceful_shutdown(self)
    cpdef set_transport_paused(self, bint paused)
    cpdef bytes data_to_send(self)
    cpdef list data_to_send_chunks(self)
    cpdef double next_timer(self)
    cpdef list handle_timeout(self, double now)
    cdef bint _keepalive_due(self)
    cdef void _connection_timers(self, double now)
    cdef void _start_idle_or_age_goaway(self, double now, double grace)
    cdef inline void _sent_headers_or_data(self)
    cdef inline void _push(self, H2Event ev)
    cdef int _on_headers(self, H2Stream s, object headers, bint end_stream) except -1
    cdef int _on_header_list_too_large(self, H2Stream s, bint end_stream) except -1
    cdef int _on_data(self, H2Stream s, bytes data, int64_t flow_length, bint end_stream) except -1
    cdef int _on_data_view(self, H2Stream s, const unsigned char* p, Py_ssize_t n, int64_t flow_length, bint end_stream) except -1
    cdef int _on_stream_reset(self, H2Stream s, uint32_t code, bint remote, bint never_processed) except -1
    cdef int _on_stream_closed(self, H2Stream s) except -1
    cdef int _on_drained(self, H2Stream s) except -1
    cdef int _on_settings_changed(self, list settings) except -1
    cdef int _on_settings_acked(self) except -1
    cdef int _on_ping_received(self, bytes opaque) except -1
    cdef int _on_ping_acked(self, bytes opaque) except -1
    cdef int _on_goaway(self, uint32_t code, uint32_t last_stream_id, bytes debug) except -1
    cdef int _on_terminated(self, uint32_t code, str message, bint remote) except -1
