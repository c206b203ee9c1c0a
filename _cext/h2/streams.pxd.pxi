# Declarations of h2/streams.pxi: the per-stream record.

cdef enum:
    ST_IDLE = 0
    ST_OPEN = 1
    ST_HALF_CLOSED_LOCAL = 2
    ST_HALF_CLOSED_REMOTE = 3
    ST_CLOSED = 4

    # how a forgotten-soon stream was closed (for frames that arrive after)
    CL_RESET_SENT = 1
    CL_RESET_RECEIVED = 2
    CL_ENDED = 3


cdef class H2Stream:
    cdef readonly uint32_t stream_id
    cdef readonly int state
    cdef readonly int64_t send_window
    cdef readonly int64_t recv_window        # what the peer may still send
    cdef int64_t recv_unacked                # consumed, not yet credited
    # outgoing data waiting for window
    cdef list _out                           # bytes chunks
    cdef Py_ssize_t _out_pos                 # offset in _out[0]
    cdef readonly int64_t pending_bytes
    cdef bint _out_end                       # END_STREAM after the queued data
    cdef object _out_trailers                # headers to send (END_STREAM) after the data
    cdef bint _queued                        # in the connection's send queue
    cdef bint _drain_wanted                  # emit EV_STREAM_DRAINED when the queue empties
    cdef readonly bint headers_received
    cdef int header_blocks                   # header blocks received (the first opens a peer's stream)
    cdef readonly bint local                 # opened by this side
    # What the layer above attaches to the stream (grpc/: its gRPC call).
    # C-level only: callers reach calls through their connection, never
    # through the HTTP/2 streams.
    cdef object call
