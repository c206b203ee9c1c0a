"""The client Call API, per client facade, against grpcio's sync server:
code / details / metadata accessors, debug_error_string, time_remaining,
cancel() and what follows it, done callbacks. grpcio's sync client is the
reference; the facades' own conventions (aio raises asyncio.CancelledError
where sync raises FutureCancelledError or an RpcError) are asserted per
facade, as both grpcio facades behave."""
import asyncio
import threading

import grpc
import pytest

from .drivers import HANG, Behaviour, is_aio, known_gap, register, wait_for

OK_PATH = register(Behaviour("unary_unary", [("send_initial_metadata", (("i", "1"),)),
                                             ("set_trailing_metadata", (("t", "2"), ("t", "3"))), ("return", b"r")]))
OK_STREAM = register(Behaviour("unary_stream", [("yield", b"a"), ("yield", b"b")]))
NOT_FOUND = register(Behaviour("unary_unary", [("abort", "NOT_FOUND", "nope")]))
# handlers that wait (bounded) for the client to end the call
WAITS = register(Behaviour("unary_unary", [("wait_done",)]))
WAITS_STREAM = register(Behaviour("unary_stream", [("yield", b"first"), ("wait_done",)]))


def test_code_and_details_of_an_ok_call(client):
    h = client.start("unary_unary", OK_PATH, b"q")
    assert h.result() == b"r"
    assert (h.code(), h.details()) == ("OK", "")
    assert h.raw_code() is client.top.StatusCode.OK


def test_code_and_details_of_a_failed_call(client):
    h = client.start("unary_unary", NOT_FOUND, b"q")
    err = h.result()
    assert (h.code(), h.details()) == ("NOT_FOUND", "nope")
    assert (err.code().name, err.details()) == ("NOT_FOUND", "nope")


def test_metadata_shapes(client, client_facade):
    h = client.start("unary_unary", OK_PATH, b"q")
    h.result()
    initial, trailing = h.initial_metadata(), h.trailing_metadata()
    if is_aio(client_facade):
        # grpc.aio.Metadata: a multimap with mapping access
        assert type(initial) is client.api.Metadata and type(trailing) is client.api.Metadata
        assert (initial["i"], trailing["t"], trailing.get_all("t")) == ("1", "2", ["2", "3"])
    else:
        # a tuple of (key, value) named tuples
        assert isinstance(initial, tuple) and isinstance(trailing, tuple)
        assert [(m.key, m.value) for m in trailing] == [("t", "2"), ("t", "3")]
    assert [tuple(m) for m in initial] == [("i", "1")]
    assert [tuple(m) for m in trailing] == [("t", "2"), ("t", "3")]


def test_debug_error_string_of_a_failed_call(client):
    h = client.start("unary_unary", NOT_FOUND, b"q")
    err = h.result()
    text = err.debug_error_string()
    assert isinstance(text, str) and "nope" in text


def test_debug_error_string_of_an_ok_call(request, client, client_facade):
    h = client.start("unary_unary", OK_PATH, b"q")
    h.result()
    assert h.debug_error_string() == ""


def test_time_remaining_after_the_call_ended(client):
    for kind, path in (("unary_unary", OK_PATH), ("unary_stream", OK_STREAM)):
        h = client.start(kind, path, b"q", timeout=5)
        assert h.outcome().code == "OK"
        remaining = h.time_remaining()
        assert isinstance(remaining, float) and 0 < remaining < 6, (kind, remaining)


def test_time_remaining_after_the_deadline(client):
    h = client.start("unary_unary", WAITS, b"q", timeout=0.1)
    assert h.outcome().code == "DEADLINE_EXCEEDED"
    assert h.time_remaining() == 0  # grpcio: the int 0; never negative


def test_time_remaining_without_a_deadline(client):
    h = client.start("unary_unary", OK_PATH, b"q", timeout=None)
    h.result()
    assert h.time_remaining() is None


# ---- cancel()

def _cancelled_error(client_facade, result):
    """A cancelled future's result: sync FutureCancelledError, aio
    asyncio.CancelledError."""
    if is_aio(client_facade):
        return isinstance(result, asyncio.CancelledError)
    return type(result).__name__ == "FutureCancelledError"


def test_cancel_a_unary_call(client, client_facade):
    h = client.start("unary_unary", WAITS, b"q")
    assert h.cancel() is True
    assert h.cancelled() is True and h.done() is True
    assert _cancelled_error(client_facade, h.result()), h.result()
    assert (h.code(), h.details()) == ("CANCELLED", "Locally cancelled by application!")
    assert h.cancel() is False  # a second cancel() has nothing to do


def test_cancel_after_the_call_ended(client):
    h = client.start("unary_unary", OK_PATH, b"q")
    assert h.result() == b"r"
    assert h.cancel() is False
    assert h.cancelled() is False
    assert h.code() == "OK"


def test_cancel_a_stream(request, client, client_facade):
    h = client.start("unary_stream", WAITS_STREAM, b"q")
    assert h.read() == b"first"
    assert h.cancel() is True
    after = h.read()
    if is_aio(client_facade):
        assert isinstance(after, asyncio.CancelledError), after
    else:  # the call itself, an RpcError with code CANCELLED
        assert isinstance(after, (grpc.RpcError, client.top.RpcError)) and after.code().name == "CANCELLED", after
    assert (h.code(), h.details()) == ("CANCELLED", "Locally cancelled by application!")


def test_cancel_a_request_stream(client, client_facade):
    path = register(Behaviour("stream_stream", [("read_all",), ("yield", b"never")]))
    h = client.start("stream_stream", path)
    h.write(b"1")
    assert h.cancel() is True
    assert h.code() == "CANCELLED"


# ---- done callbacks

def test_done_callback_runs_when_the_call_ends(client):
    ran = threading.Event()
    h = client.start("unary_unary", WAITS, b"q", timeout=5)
    h.add_done_callback(ran.set)
    assert not ran.is_set()
    h.cancel()
    assert ran.wait(HANG)


def test_done_callback_added_after_the_end(client):
    h = client.start("unary_unary", OK_PATH, b"q")
    h.result()
    ran = threading.Event()
    h.add_done_callback(ran.set)
    assert ran.wait(HANG)


def test_stream_add_callback_after_the_end(client, client_facade):
    # sync streams: add_callback returns False once the call has ended and
    # never runs the callback (grpc.Call's documented contract).
    if is_aio(client_facade):
        pytest.skip("aio calls have add_done_callback only (see the test above)")
    h = client.start("unary_stream", OK_STREAM, b"q")
    assert h.outcome().responses == [b"a", b"b"]
    ran = []
    assert h.call.add_callback(lambda: ran.append(1)) is False
    assert ran == []


def test_stream_read_after_the_end(client):
    h = client.start("unary_stream", OK_STREAM, b"q")
    assert [h.read(), h.read(), h.read(), h.read()] == [b"a", b"b", None, None]


def test_call_state_while_running(client):
    h = client.start("unary_unary", WAITS, b"q", timeout=5)
    remaining = h.time_remaining()
    assert 4 < remaining <= 5
    assert (h.done(), h.cancelled()) == (False, False)
    assert h.cancel() is True
    assert (h.done(), h.cancelled()) == (True, True)


def test_done_callback_gets_the_call(client, client_facade):
    """The callback's argument: the future (sync) or the call (aio) itself,
    at the end and when added after it."""
    h = client.start("unary_unary", OK_PATH, b"q")
    seen = []
    register_cb = (lambda fn: h.client.lt.call(h.call.add_done_callback, fn)) if is_aio(client_facade) \
        else h.call.add_done_callback
    register_cb(seen.append)
    assert h.result() == b"r"
    assert wait_for(lambda: seen) and seen == [h.call]
    late = []
    register_cb(late.append)
    assert wait_for(lambda: late) and late == [h.call]


def test_error_is_the_facades_rpc_error(request, client, client_facade):
    h = client.start("unary_unary", NOT_FOUND, b"q")
    err = h.result()
    assert isinstance(err, client.top.RpcError) and isinstance(err, Exception)
    assert "StatusCode.NOT_FOUND" in str(err) and "nope" in str(err)
    if is_aio(client_facade):
        assert isinstance(err, client.api.AioRpcError)
        return
    assert isinstance(err, client.top.Call)
    assert err is h.call  # grpcio: the future raises itself


def test_unknown_method(client):
    assert client.unary("/t.S/NoSuchMethod", b"q").status == ("UNIMPLEMENTED", "Method not found!")
    assert client.unary_stream("/t.S/NoSuchMethod", b"q").status == ("UNIMPLEMENTED", "Method not found!")


def test_metadata_order(client, client_facade):
    """The values of one key keep their order, both ways (the gRPC spec);
    the sync facades also keep the order across keys. grpc.aio groups the
    values by key (its Metadata is a multimap), sending and receiving."""
    b = Behaviour("unary_unary", [("observe", "md", lambda c: tuple(tuple(m) for m in c.invocation_metadata())[1:]),
                                  ("send_initial_metadata", (("k", "1"), ("b", "x"), ("k", "2"))),
                                  ("set_trailing_metadata", (("k", "1"), ("b-bin", b"\x00"), ("k", "2"))),
                                  ("return", b"r")])
    sent = (("k", "1"), ("a-bin", b"\x00\x01"), ("k", "2"), ("z", "3"), ("k", "3"))
    out = client.unary(register(b), b"q", metadata=sent)
    seen = {"sent": b.observed["md"], "initial": out.initial_metadata, "trailing": out.trailing_metadata}
    assert [v for k, v in seen["sent"] if k == "k"] == ["1", "2", "3"]
    assert [v for k, v in seen["initial"] if k == "k"] == ["1", "2"]
    assert [v for k, v in seen["trailing"] if k == "k"] == ["1", "2"]
    if client_facade == "grpcio-aio":
        assert seen["sent"] == (("k", "1"), ("k", "2"), ("k", "3"), ("a-bin", b"\x00\x01"), ("z", "3"))
    elif not is_aio(client_facade):
        assert seen == {"sent": sent, "initial": (("k", "1"), ("b", "x"), ("k", "2")),
                        "trailing": (("k", "1"), ("b-bin", b"\x00"), ("k", "2"))}
