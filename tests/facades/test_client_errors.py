"""Client-side error paths, per client facade, against grpcio's sync server:
serializers, metadata rules, message-size limits, response cardinality and
failing request iterators. grpcio's sync client is the reference."""
import pathlib
import subprocess
import sys

import pytest

from .conftest import running_server
from .drivers import Behaviour, expected, known_gap, register

OK_PATH = register(Behaviour("unary_unary", [("send_initial_metadata", (("i", "1"),)),
                                             ("set_trailing_metadata", (("t", "2"),)), ("return", b"r")]))


def _raises(_message):
    raise ValueError("serializer")


def test_request_serializer_raises(request, client, client_facade):
    # grpc.aio logs the failure and sends an empty message (the call
    # succeeds); grpcpy fails the call as grpcio sync does.
    b = Behaviour("unary_unary", [("return", b"r")])
    out = client.unary(register(b), b"q", serializer=_raises)
    assert (out.exc_type, out.status) == expected(client_facade, ("RpcError", ("INTERNAL", "Exception serializing request!")),
                                                  grpcio_aio=(None, ("OK", "")))


def test_request_serializer_raises_on_a_stream(request, client, client_facade):
    b = Behaviour("stream_unary", [("read_all",), ("return", b"r")])
    out = client.stream_unary(register(b), [b"q"], serializer=_raises, timeout=1)
    if client_facade == "grpcio-aio":
        # the empty message it sends instead is received
        assert (out.status, b.requests) == (("OK", ""), [b""])
        return
    assert (out.exc_type, out.status) == ("RpcError", ("INTERNAL", "Exception serializing request!"))


def test_response_deserializer_raises(request, client, client_facade):
    # grpc.aio logs the failure and returns None as the response.
    out = client.unary(OK_PATH, b"q", deserializer=_raises)
    assert (out.exc_type, out.status, out.response) == expected(
        client_facade, ("RpcError", ("INTERNAL", "Exception deserializing response!"), None),
        grpcio_aio=(None, ("OK", ""), None))


def test_response_deserializer_raises_on_a_stream(request, client, client_facade):
    path = register(Behaviour("unary_stream", [("yield", b"a"), ("yield", b"b")]))
    out = client.unary_stream(path, b"q", deserializer=_raises)
    assert (out.exc_type, out.status, out.responses) == expected(
        client_facade, ("RpcError", ("INTERNAL", "Exception deserializing response!"), []),
        grpcio_aio=(None, ("OK", ""), [None, None]))


def test_str_value_for_a_binary_key_raises_typeerror(request, client, client_facade):
    """A str value for a -bin key: TypeError from the call, nothing sent
    (grpcio, both facades)."""
    b = Behaviour("unary_unary", [("return", b"r")])
    out = client.unary(register(b), b"q", metadata=(("k-bin", "text"),))
    assert (out.exc_type, b.requests) == ("TypeError", [])


@pytest.mark.parametrize("metadata", [(("Upper", "v"),), (("sp ace", "v"),), (("n\u00f3n", "v"),), ((":path", "v"),),
                                      (("k", "v\n"),)])
def test_invalid_metadata(request, client, client_facade, metadata):
    """Keys and values the wire cannot carry. grpcio sync: RpcError INTERNAL
    "Invalid metadata"; grpc.aio raises its internal ExecuteBatchError.
    grpcpy: grpcio sync's RpcError under both, its details going on to say
    what is wrong."""
    b = Behaviour("unary_unary", [("return", b"r")])
    out = client.unary(register(b), b"q", metadata=metadata)
    assert b.requests == []
    if client_facade == "grpcio-aio":
        assert out.exc_type == "ExecuteBatchError"
        return
    assert (out.exc_type, out.code) == ("RpcError", "INTERNAL")
    if client_facade == "grpcio-sync":
        assert out.details == "Invalid metadata"
    else:
        assert out.details.startswith("Invalid metadata: ")


def test_bytes_value_for_a_text_key_is_sent(client):
    b = Behaviour("unary_unary", [("observe", "md", lambda c: c.invocation_metadata()), ("return", b"r")])
    out = client.unary(register(b), b"q", metadata=(("k", b"v"),))
    assert out.code == "OK"
    assert ("k", "v") in [tuple(m) for m in b.observed["md"]]


def test_details_of_an_ok_call_whose_handler_set_details(request, client, client_facade):
    # grpcio's server sends grpc-message with status 0; grpcio's clients
    # report '' for an OK call.
    path = register(Behaviour("unary_unary", [("set_details", "dd"), ("return", b"r")]))
    out = client.unary(path, b"q")
    assert (out.response, out.status) == (b"r", ("OK", ""))


# ---- message size limits: grpcio's texts, with the side that hit the limit

BIG = register(Behaviour("unary_unary", [("return", b"x" * 100)]))
BIG_STREAM = register(Behaviour("unary_stream", [("yield", b"x" * 100)]))
ECHO_STREAM = register(Behaviour("stream_stream", [("read_all",), ("yield", b"ok")]))
RECEIVED = "Stream removed (CLIENT: Received message larger than max (100 vs. 10))"
SENT = "CLIENT: Sent message larger than max (100 vs. 10)"


def _client(fresh_client, facade, option):
    return fresh_client(facade, running_server("grpcio-sync").target, options=[(option, 10)])


def test_client_receive_limit(request, fresh_client, client_facade):
    c = _client(fresh_client, client_facade, "grpc.max_receive_message_length")
    outs = [c.unary(BIG, b"q").status, c.unary_stream(BIG_STREAM, b"q").status]
    # grpcpy gives grpcio's text without the "Stream removed (...)" wrapper
    # its client adds when it resets the stream
    assert outs == expected(client_facade, [("RESOURCE_EXHAUSTED", RECEIVED)] * 2,
                            grpcpy=[("RESOURCE_EXHAUSTED", RECEIVED[len("Stream removed ("):-1])] * 2)


def test_client_send_limit(request, fresh_client, client_facade):
    c = _client(fresh_client, client_facade, "grpc.max_send_message_length")
    outs = [c.unary(BIG, b"q" * 100).status, c.stream_stream(ECHO_STREAM, [b"q" * 100]).status]
    # grpc.aio's stream-stream call fails INTERNAL "Internal error from Core"
    assert outs == expected(client_facade, [("RESOURCE_EXHAUSTED", SENT)] * 2, grpcio_aio=[
        ("RESOURCE_EXHAUSTED", SENT), ("INTERNAL", "Internal error from Core")])


# ---- response cardinality (gRPC spec: UNIMPLEMENTED on the client)

def test_two_responses_to_a_unary_call(request, client, client_facade):
    # grpcio: the call never completes (it ends at its deadline). The spec
    # (doc/statuscodes.md) says a response cardinality violation is
    # UNIMPLEMENTED; grpcpy follows the spec.
    path = register(Behaviour("stream_stream", [("yield", b"1"), ("yield", b"2")]))
    out = client.unary(path, b"q", timeout=0.5)
    if client_facade in ("grpcio-sync", "grpcio-aio"):
        assert out.code == "DEADLINE_EXCEEDED"
        return
    assert out.code == "UNIMPLEMENTED"


def test_no_response_to_a_unary_call(request, client, client_facade):
    # grpcio: OK with None as the response. Spec: UNIMPLEMENTED.
    path = register(Behaviour("stream_stream", []))
    outs = [client.unary(path, b"q"), client.stream_unary(path, [b"q"])]
    if client_facade in ("grpcio-sync", "grpcio-aio"):
        assert [(o.status, o.response) for o in outs] == [(("OK", ""), None)] * 2
        return
    assert [o.code for o in outs] == ["UNIMPLEMENTED"] * 2


# ---- request iterators that raise

def _failing_requests():
    yield b"a"
    raise ValueError("iterator")


@pytest.mark.parametrize("kind", ["stream_unary", "stream_stream"])
def test_request_iterator_raises(request, client, client_facade, kind):
    # grpc.aio cancels the call: asyncio.CancelledError from the await.
    # grpcpy: grpcio sync's UNKNOWN "Exception iterating requests!" on both.
    path = register(Behaviour(kind, [("read_all",)] + ([("return", b"r")] if kind == "stream_unary" else [])))
    out = getattr(client, kind)(path, _failing_requests())
    assert (out.exc_type, out.status) == expected(
        client_facade, ("RpcError", ("UNKNOWN", "Exception iterating requests!")),
        grpcio_aio=("CancelledError", (None, None)))


# ---- more metadata rules

def _seen(b):
    return tuple(tuple(m) for m in b.observed.get("md", ())[1:])  # without the user-agent


def _md_behaviour():
    return Behaviour("unary_unary", [("observe", "md", lambda c: c.invocation_metadata()), ("return", b"r")])


@pytest.mark.parametrize("key,sent", [("content-type", False), ("te", False), ("grpc-foo", True)])
def test_reserved_metadata_keys(request, client, key, sent):
    """grpcio drops the HTTP/2 and gRPC headers it sets itself and sends a
    custom "grpc-" key through; the call succeeds either way."""
    b = _md_behaviour()
    out = client.unary(register(b), b"q", metadata=((key, "x"), ("k", "v")))
    assert out.status == ("OK", "")
    assert _seen(b) == (((key, "x"),) if sent else ()) + (("k", "v"),)


def test_none_metadata_value_is_sent_empty(request, client):
    b = _md_behaviour()
    out = client.unary(register(b), b"q", metadata=(("k", None),))
    assert (out.code, _seen(b)) == ("OK", (("k", ""),))


def test_int_metadata_value_raises_typeerror(request, client):
    b = _md_behaviour()
    out = client.unary(register(b), b"q", metadata=(("k", 5),))
    assert (out.exc_type, b.requests) == ("TypeError", [])


_ISOLATED = """
import sys
from tests.facades import drivers
drivers.HANG = 3
client = drivers.make_client(sys.argv[1], sys.argv[2])
out = client.unary(sys.argv[3], b"q", metadata=(("k",),))
client.close()
print(out.exc_type)
"""


def test_malformed_metadata_entry_raises_valueerror(request, client, client_facade):
    """A metadata entry that is not a pair. Run in a child process: grpcpy
    once read past the end of the 1-tuple, which could crash the process."""
    b = _md_behaviour()
    path = register(b)
    child = subprocess.run([sys.executable, "-c", _ISOLATED, client_facade, running_server("grpcio-sync").target,
                            path], capture_output=True, text=True, timeout=60, cwd=_repo_root())
    assert (child.returncode, child.stdout.strip(), b.requests) == (0, "ValueError", []), child.stderr[-2000:]


def _repo_root():
    return str(pathlib.Path(__file__).resolve().parents[2])


def test_str_request_without_a_serializer_raises_typeerror(client):
    b = Behaviour("unary_unary", [("return", b"r")])
    out = client.unary(register(b), "text")
    assert (out.exc_type, b.requests) == ("TypeError", [])


def test_none_request_without_a_serializer(request, client, client_facade):
    # grpc.aio sends an empty message; grpcpy: grpcio sync's INTERNAL
    b = Behaviour("unary_unary", [("return", b"r")])
    out = client.unary(register(b), None, timeout=1)
    assert (out.exc_type, out.status) == expected(client_facade, ("RpcError", ("INTERNAL", "Exception serializing request!")),
                                                  grpcio_aio=(None, ("OK", "")))
