"""What status a handler's actions end the call with, per server facade,
seen by a grpcio sync client. grpcio's sync server is the reference; where
grpc.aio's server disagrees its own value is asserted beside it and grpcpy
keeps one behaviour for both of its facades (said in each test)."""
from .conftest import cached_client
from .drivers import HANG, Behaviour, expected, known_gap, raw_call, register, wait_for

SHORT = 0.5  # deadline for calls that grpcpy today leaves hanging


def test_invalid_trailing_metadata_key_ends_internal(request, server, observer, server_facade):
    for key in ("Bad-Key", "bad key"):
        path = register(Behaviour("unary_unary", [("set_trailing_metadata", ((key, "v"),)), ("return", b"r")]))
        out = observer.unary(path, b"q", timeout=SHORT)
        assert out.status == ("INTERNAL", "Invalid metadata"), (key, out)


def test_invalid_initial_metadata_key_ends_internal(request, server, observer, server_facade):
    path = register(Behaviour("unary_unary", [("send_initial_metadata", (("Bad-Key", "v"),)), ("return", b"r")]))
    out = observer.unary(path, b"q", timeout=SHORT)
    assert out.status == ("INTERNAL", "Invalid metadata"), out


def test_code_and_details_then_raise_keeps_both(request, server, observer, server_facade):
    # grpc.aio replaces the details with "Unexpected <class ...>: ..."; grpcpy
    # keeps what the handler set under both facades, as grpcio's sync server.
    path = register(Behaviour("unary_unary", [("set_code", "NOT_FOUND"), ("set_details", "nf"),
                                              ("raise", ValueError("x"))]))
    out = observer.unary(path, b"q")
    assert out.status == expected(server_facade, ("NOT_FOUND", "nf"),
                                  grpcio_aio=("NOT_FOUND", "Unexpected <class 'ValueError'>: x"))


def test_handler_raises(request, server, observer, server_facade):
    # One behaviour: grpcio sync's text (grpc.aio: "Unexpected <class ...>: ...").
    path = register(Behaviour("unary_unary", [("raise", ValueError("x"))]))
    out = observer.unary(path, b"q")
    assert out.status == expected(server_facade, ("UNKNOWN", "Exception calling application: x"),
                                  grpcio_aio=("UNKNOWN", "Unexpected <class 'ValueError'>: x"))


def test_streaming_handler_raises_after_a_message(request, server, observer, server_facade):
    path = register(Behaviour("unary_stream", [("yield", b"a"), ("raise", ValueError("x"))]))
    out = observer.unary_stream(path, b"q")
    assert out.responses == [b"a"]
    assert out.status == expected(server_facade, ("UNKNOWN", "Exception iterating responses: x"),
                                  grpcio_aio=("UNKNOWN", "Unexpected <class 'ValueError'>: x"))


def test_returning_none_for_a_unary_response(request, server, observer, server_facade):
    # grpc.aio sends an empty message; grpcpy fails the call as grpcio sync does.
    path = register(Behaviour("unary_unary", []))
    out = observer.unary(path, b"q")
    assert out.status == expected(server_facade, ("INTERNAL", "Failed to serialize response!"), grpcio_aio=("OK", ""))


def _raises(_message):
    raise ValueError("serializer")


def test_response_serializer_raises(request, server, observer, server_facade):
    path = register(Behaviour("unary_unary", [("return", b"r")], response_serializer=_raises))
    out = observer.unary(path, b"q")
    assert out.status == expected(server_facade, ("INTERNAL", "Failed to serialize response!"),
                                  grpcio_aio=("UNKNOWN", "Unexpected <class 'ValueError'>: serializer"))


def test_streamed_response_serializer_raises(request, server, observer, server_facade):
    path = register(Behaviour("unary_stream", [("yield", b"r")], response_serializer=_raises))
    out = observer.unary_stream(path, b"q")
    assert (out.responses, out.status) == expected(
        server_facade, ([], ("INTERNAL", "Failed to serialize response!")),
        grpcio_aio=([], ("UNKNOWN", "Unexpected <class 'ValueError'>: serializer")))


def test_request_deserializer_raises(request, server, observer, server_facade):
    path = register(Behaviour("unary_unary", [("return", b"r")], request_deserializer=_raises))
    out = observer.unary(path, b"q")
    assert out.status == expected(server_facade, ("INTERNAL", "Exception deserializing request!"),
                                  grpcio_aio=("UNKNOWN", "Unexpected <class 'ValueError'>: serializer"))


def test_abort_with_ok_becomes_unknown(request, server, observer, server_facade):
    # grpc.aio leaves the call open until the deadline; grpcpy ends it UNKNOWN
    # with empty details under both facades, as grpcio sync does.
    path = register(Behaviour("unary_unary", [("abort", "OK", "fine")]))
    out = observer.unary(path, b"q", timeout=SHORT)
    if server_facade == "grpcio-aio":
        assert out.code == "DEADLINE_EXCEEDED"
        return
    assert out.status == ("UNKNOWN", "")


def test_abort_sets_code_details(server, observer):
    path = register(Behaviour("unary_unary", [("send_initial_metadata", (("i", "1"),)),
                                              ("set_trailing_metadata", (("t", "1"),)),
                                              ("abort", "PERMISSION_DENIED", "no")]))
    out = observer.unary(path, b"q")
    # trailing metadata set before abort() is sent with the abort's status
    assert (out.status, out.initial_metadata, out.trailing_metadata) == (
        ("PERMISSION_DENIED", "no"), (("i", "1"),), (("t", "1"),))


def test_abort_with_status_sends_its_trailing_metadata(server, observer):
    path = register(Behaviour("unary_unary", [("abort_with_status", "NOT_FOUND", "gone", (("t", "1"),))]))
    out = observer.unary(path, b"q")
    assert (out.status, out.trailing_metadata) == (("NOT_FOUND", "gone"), (("t", "1"),))


def test_abort_on_a_stream_after_messages(server, observer):
    path = register(Behaviour("unary_stream", [("yield", b"a"), ("abort", "ABORTED", "stop")]))
    out = observer.unary_stream(path, b"q")
    assert (out.responses, out.status) == ([b"a"], ("ABORTED", "stop"))


def test_details_without_code_on_an_ok_call(server, observer):
    path = register(Behaviour("unary_unary", [("set_details", "dd"), ("return", b"r")]))
    out = observer.unary(path, b"q")
    assert (out.response, out.status) == (b"r", ("OK", ""))
    # grpcio's client drops the message of an OK status; on the wire it is there
    _, frames, trailers = raw_call(server.port, path, [b"q"])
    assert frames == [(0, b"r")]
    assert (trailers["grpc-status"], trailers["grpc-message"]) == ("0", "dd")


def test_set_code_not_found_then_return_a_message(server, observer):
    path = register(Behaviour("unary_unary", [("set_code", "NOT_FOUND"), ("return", b"r")]))
    out = observer.unary(path, b"q")
    assert (out.response, out.status) == (None, ("NOT_FOUND", ""))


def test_set_code_not_found_then_yield_on_unary_stream(server, observer):
    # the message is still delivered; the status is the code that was set
    path = register(Behaviour("unary_stream", [("set_code", "NOT_FOUND"), ("set_details", "nf"), ("yield", b"a")]))
    out = observer.unary_stream(path, b"q")
    assert (out.responses, out.status) == ([b"a"], ("NOT_FOUND", "nf"))


def test_servicer_context_cancel(request, server, observer, server_facade):
    # grpcio sync ends the call with CANCELLED trailers; grpc.aio has no
    # context.cancel(). grpcpy: grpcio sync's behaviour under both facades.
    b = Behaviour("unary_unary", [("on_done", "cb", lambda c: True), ("cancel",), ("return", b"r")])
    out = observer.unary(register(b), b"q")
    assert b.ended.wait(HANG)
    if server_facade != "grpcio-aio":  # the done callback runs once
        assert wait_for(lambda: b.observed["cb"]) and b.observed["cb"] == [True]
    assert out.status == expected(
        server_facade, ("CANCELLED", "CANCELLED"),
        grpcio_aio=("UNKNOWN", "Unexpected <class 'AttributeError'>: "
                    "'grpc._cython.cygrpc._ServicerContext' object has no attribute 'cancel'"))


def test_set_trailing_metadata_twice_keeps_the_last(server, observer):
    path = register(Behaviour("unary_unary", [("set_trailing_metadata", (("a", "1"),)),
                                              ("set_trailing_metadata", (("b", "2"),)), ("return", b"r")]))
    out = observer.unary(path, b"q")
    assert out.trailing_metadata == (("b", "2"),)


def test_binary_trailing_metadata_round_trip(server, observer):
    path = register(Behaviour("unary_unary", [("set_trailing_metadata", (("t-bin", b"\x00\xff"),)),
                                              ("send_initial_metadata", (("i-bin", b"\x01"),)), ("return", b"r")]))
    out = observer.unary(path, b"q")
    assert (out.initial_metadata, out.trailing_metadata) == ((("i-bin", b"\x01"),), (("t-bin", b"\x00\xff"),))


def test_set_compression_still_delivers(server, observer):
    path = register(Behaviour("unary_unary", [("set_compression", "gzip"), ("return", b"z" * 1000)]))
    out = observer.unary(path, b"q")
    assert (out.response, out.code) == (b"z" * 1000, "OK")


# ---- request cardinality (gRPC spec: UNIMPLEMENTED on the server)

def _one_request_details(path):
    # grpcio sync quotes the method's bytes repr; either spelling of the path
    return ('"%s" requires exactly one request message.' % path,
            "\"b'%s'\" requires exactly one request message." % path)


def test_no_request_to_a_unary_request_method(request, server, observer, server_facade):
    """A stream-unary multicallable on a unary-unary (and unary-stream)
    method, sending nothing. grpc.aio's server waits for the deadline."""
    for kind, call in (("unary_unary", observer.stream_unary), ("unary_stream", observer.stream_stream)):
        b = Behaviour(kind, [("return", b"r")] if kind == "unary_unary" else [("yield", b"r")])
        path = register(b)
        out = call(path, [], timeout=0.5)
        assert b.requests == []
        if server_facade == "grpcio-aio":
            assert out.code == "DEADLINE_EXCEEDED"
            continue
        assert out.code == "UNIMPLEMENTED" and out.details in _one_request_details(path), (kind, out)


def test_two_requests_to_a_unary_request_method(request, server, observer, server_facade):
    # grpcio (both servers) hands the first to the handler and ignores the
    # second. The spec says UNIMPLEMENTED; grpcpy follows the spec: a
    # unary-request handler starts only after the half-close, so the core
    # has counted every message and the handler never runs.
    for kind, call in (("unary_unary", observer.stream_unary), ("unary_stream", observer.stream_stream)):
        b = Behaviour(kind, [("return", b"r")] if kind == "unary_unary" else [("yield", b"r")])
        out = call(register(b), [b"a", b"b"])
        if server_facade in ("grpcio-sync", "grpcio-aio"):
            assert (out.code, b.requests) == ("OK", [b"a"])
            continue
        assert out.code == "UNIMPLEMENTED", (kind, out)
        assert b.requests == [], kind


def test_unknown_method(server, observer):
    for call in (observer.unary, observer.unary_stream):
        assert call("/t.S/NoSuchMethod", b"q").status == ("UNIMPLEMENTED", "Method not found!")


# ---- message size limits on the server: grpcio's texts, "SERVER: " prefix

def test_server_receive_limit(request, fresh_server, server_facade):
    srv = fresh_server(server_facade, options=[("grpc.max_receive_message_length", 10)])
    path = register(Behaviour("unary_unary", [("return", b"r")]))
    out = cached_client("grpcio-sync", srv.target).unary(path, b"q" * 100)
    assert out.status == ("RESOURCE_EXHAUSTED", "SERVER: Received message larger than max (100 vs. 10)")


def test_server_send_limit(request, fresh_server, server_facade):
    srv = fresh_server(server_facade, options=[("grpc.max_send_message_length", 10)])
    unary = register(Behaviour("unary_unary", [("return", b"x" * 100)]))
    stream = register(Behaviour("unary_stream", [("yield", b"x" * 100)]))
    observer = cached_client("grpcio-sync", srv.target)
    outs = [observer.unary(unary, b"q").status, observer.unary_stream(stream, b"q").status]
    assert outs == [("RESOURCE_EXHAUSTED", "SERVER: Sent message larger than max (100 vs. 10)")] * 2
