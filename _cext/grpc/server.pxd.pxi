# Declarations of grpc/server.pxi: the server call and connection.

@cython.final
cdef class ServerCall(_Call):
    cdef readonly str method
    cdef readonly bytes authority
    cdef object _metadata                      # decoded on first use
    cdef list _request_headers                 # what it is decoded from
    cdef readonly bint headers_sent
    cdef readonly bint half_closed             # the client has finished sending
    cdef list _pending_initial                 # initial metadata to send with the first message/status


cdef class ServerConnection(GrpcConnection):
    cdef public object compression            # default send encoding or None

    cdef int _on_headers(self, H2Stream s, object headers, bint end_stream) except -1
    cdef int _choose_encoding(self, ServerCall call, str encoding) except -1
    cdef int _reject(self, ServerCall call, bytes http_status, int code, str details) except -1
    cdef int _send_trailers_only(self, ServerCall call, list headers) except -1
    cdef int _on_header_list_too_large(self, H2Stream s, bint end_stream) except -1
    cdef int _on_data(self, H2Stream s, bytes data, int64_t flow_length, bint end_stream) except -1
    cdef int _on_data_view(self, H2Stream s, const unsigned char* p, Py_ssize_t n, int64_t flow_length, bint end_stream) except -1
    cdef int _data_in(self, H2Stream s, bytes data, const unsigned char* p, Py_ssize_t n, int64_t flow_length, bint end_stream) except -1
    cdef int _on_stream_reset(self, H2Stream s, uint32_t code, bint remote, bint never_processed) except -1
    cdef int _deadline_expired(self, _Call call) except -1
    cdef int _fail_call(self, _Call call, int code, str details) except -1
    cdef int _too_many_messages(self, _Call call) except -1
    cdef int _no_request_message(self, ServerCall call) except -1
    cpdef accept_call(self, ServerCall call, object user, object request_streaming=*, object response_streaming=*)
    cpdef set_cardinality(self, ServerCall call, object request_streaming, object response_streaming)
    cdef int _cardinality(self, ServerCall call, object request_streaming, object response_streaming) except -1
    cpdef send_initial_metadata(self, ServerCall call, object metadata=*)
    cpdef set_compression(self, ServerCall call, str encoding)
    cpdef send_message(self, ServerCall call, object payload)
    cpdef bint write_pending(self, ServerCall call)
    cpdef send_status(self, ServerCall call, int code, str details=*, object trailing_metadata=*)
    cdef int _send_status_headers(self, ServerCall call, int code, str details, object trailing) except -1
    cpdef list cancel_all_calls(self, str reason=*)
    cpdef bint cancel_by_application(self, ServerCall call)
    cpdef cancel_call(self, ServerCall call)
