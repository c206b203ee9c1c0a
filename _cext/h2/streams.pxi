# HTTP/2 streams (RFC 9113 §5.1): the per-stream state the connection keeps
# (state, windows, the outgoing data queued for window). The connection
# (connection.pxi) drives every transition; a stream has no behaviour of its
# own.
#
# The fields and cdef signatures of its classes: streams.pxd.pxi.

cdef class H2Stream:
    def __cinit__(self):
        self._out = []

    def __repr__(self):
        return "<H2Stream %d state=%d send_window=%d recv_window=%d pending=%d>" % (
            self.stream_id, self.state, self.send_window, self.recv_window, self.pending_bytes)


cdef inline int _queue_chunk(H2Stream s, object data) except -1:
    cdef bytes chunk = data if PyBytes_CheckExact(data) else bytes(data)
    if PyBytes_GET_SIZE(chunk):
        s._out.append(chunk)
        s.pending_bytes += PyBytes_GET_SIZE(chunk)
    return 0
