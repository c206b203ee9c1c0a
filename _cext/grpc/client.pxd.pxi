# Declarations of grpc/client.pxi: the client call and connection.

@cython.final
cdef class ClientCall(_Call):
    cdef readonly bytes method
    cdef list _headers                         # the request header block (pairs)
    cdef tuple _static_headers
    cdef list _waiting_out                     # (payload, flag) sent before a stream existed
    cdef bint _half_close_waiting              # the client half-closed (sent on activation, again on a replay)
    cdef list _replay                          # what went out on the stream, until the response headers (REFUSED_STREAM)
    cdef Py_ssize_t _replay_bytes
    cdef int _refusals                         # times the server refused the call's stream (REFUSED_STREAM)
    cdef readonly bint unprocessed             # ended before the server could have processed it (gRFC A6 transparent retry)
    cdef readonly bint headers_received
    cdef readonly object initial_metadata
    cdef readonly object trailing_metadata


cdef class ClientConnection(GrpcConnection):
    cdef public bytes scheme
    cdef public bytes authority
    cdef public bytes user_agent
    cdef dict _static_cache                   # (method, encoding) -> header tuple
    cdef list _waiting                        # calls waiting for a stream slot
    cdef public bint replay_refused           # send a refused stream again (off with grpc.enable_retries=0)

    cdef tuple _static_headers(self, bytes method, str encoding)
    cpdef ClientCall start_call(self, object method, double now=*, double timeout=*, object metadata=*, str compression=*, object user=*, bint response_streaming=*)
    cpdef set_receive_limit(self, ClientCall call, Py_ssize_t limit)
    cdef ClientCall _refuse(self, ClientCall call, str details)
    cdef int _activate(self, ClientCall call) except -1
    cdef int _end_unprocessed(self, ClientCall call, str details) except -1
    cdef int _write_request_headers(self, H2Stream s, ClientCall call) except -1
    cdef int _start_waiting(self) except -1
    cdef bint _requeue_refused(self, ClientCall call, H2Stream s) except -1
    cdef inline void _keep_for_replay(self, ClientCall call, object wire)
    cpdef send_message(self, ClientCall call, object payload)
    cpdef send_unary(self, ClientCall call, object payload)
    cpdef close_send(self, ClientCall call)
    cpdef bint write_pending(self, ClientCall call)
    cpdef cancel_call(self, ClientCall call, str details=*)
    cpdef list cancel_all_calls(self, str details=*)
    cpdef connection_lost(self, str reason=*)
    cdef int _deadline_expired(self, _Call call) except -1
    cdef int _fail_call(self, _Call call, int code, str details) except -1
    cdef int _too_many_messages(self, _Call call) except -1
    cdef int _on_headers(self, H2Stream s, object headers, bint end_stream) except -1
    cdef int _http_error(self, ClientCall call, bytes status, object headers, bint end_stream) except -1
    cdef int _finish_with_trailers(self, ClientCall call, object headers, bint trailers_only) except -1
    cdef int _on_header_list_too_large(self, H2Stream s, bint end_stream) except -1
    cdef int _on_data(self, H2Stream s, bytes data, int64_t flow_length, bint end_stream) except -1
    cdef int _on_data_view(self, H2Stream s, const unsigned char* p, Py_ssize_t n, int64_t flow_length, bint end_stream) except -1
    cdef int _data_in(self, H2Stream s, bytes data, const unsigned char* p, Py_ssize_t n, int64_t flow_length, bint end_stream) except -1
    cdef int _on_stream_reset(self, H2Stream s, uint32_t code, bint remote, bint never_processed) except -1
    cdef int _on_stream_closed(self, H2Stream s) except -1
    cdef int _on_settings_changed(self, list settings) except -1
    cdef int _on_terminated(self, uint32_t code, str message, bint remote) except -1
    cdef int _on_goaway(self, uint32_t code, uint32_t last_stream_id, bytes debug) except -1
