"""Server-side API: handlers of the four kinds, the sync ServicerContext,
handler errors. The server is the implementation under test; the client is
always grpcio, so only the server side varies."""
import collections
import re
import threading

import grpc
import pytest

from .conftest import path, standard_handlers


class Recorder:
    """What handlers observed, and an event per observation."""

    def __init__(self):
        self.seen = {}
        self.cond = threading.Condition()

    def put(self, key, value):
        with self.cond:
            self.seen[key] = value
            self.cond.notify_all()

    def get(self, key, timeout=5.0):
        with self.cond:
            assert self.cond.wait_for(lambda: key in self.seen, timeout), "never observed %r" % (key,)
            return self.seen[key]


@pytest.fixture
def rec():
    return Recorder()


@pytest.fixture
def client(channels):
    def make(running):
        return channels(grpc, running.target)
    return make


def _status(call):
    return call.code().name, call.details()


def _call_unary(channel, method, request=b"x", **kw):
    try:
        response, call = channel.unary_unary(path(method)).with_call(request, timeout=5, **kw)
        return ("OK", response, call)
    except grpc.RpcError as err:
        return (err.code().name, err.details(), err)


def test_four_kinds_as_plain_functions(impl, serve, release, client):
    channel = client(serve(impl, standard_handlers(impl, release)))
    response, call = channel.unary_unary(path("Unary")).with_call(b"u", timeout=5)
    assert response == b"u"
    assert ("im", "1") in [tuple(m) for m in call.initial_metadata()]
    assert ("tm", "2") in [tuple(m) for m in call.trailing_metadata()]
    assert list(channel.unary_stream(path("Stream"))(b"4", timeout=5)) == [b"0", b"1", b"2", b"3"]
    assert channel.stream_unary(path("Collect"))(iter([b"a", b"b"]), timeout=5) == b"a,b"
    assert list(channel.stream_stream(path("Echo"))(iter([b"p", b"q"]), timeout=5)) == [b"p", b"q"]
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(path("Missing"))(b"", timeout=5)
    assert _status(info.value) == ("UNIMPLEMENTED", "Method not found!")


def test_abort(impl, serve, rec, client):
    def aborting(request, context):
        try:
            context.abort(impl.StatusCode.PERMISSION_DENIED, "no entry")
        except Exception as exc:          # what the handler sees
            rec.put("exc", exc)
            raise
        rec.put("after", True)

    def swallowing(request, context):
        try:
            context.abort(impl.StatusCode.NOT_FOUND, "gone")
        except Exception:
            pass
        return b"ignored"                 # the abort's status still stands

    def abort_ok(request, context):
        context.abort(impl.StatusCode.OK, "fine")

    def abort_with_status(request, context):
        status = Status(impl.StatusCode.FAILED_PRECONDITION, "not now", (("why", "because"),))
        context.abort_with_status(status)

    class Status(collections.namedtuple("Status", ("code", "details", "trailing_metadata")), impl.Status):
        pass

    channel = client(serve(impl, {
        "Abort": impl.unary_unary_rpc_method_handler(aborting),
        "Swallow": impl.unary_unary_rpc_method_handler(swallowing),
        "AbortOk": impl.unary_unary_rpc_method_handler(abort_ok),
        "AbortWithStatus": impl.unary_unary_rpc_method_handler(abort_with_status),
    }))
    code, details, err = _call_unary(channel, "Abort")
    assert (code, details) == ("PERMISSION_DENIED", "no entry")
    exc = rec.get("exc")
    assert isinstance(exc, Exception)
    assert "after" not in rec.seen
    assert _call_unary(channel, "Swallow")[:2] == ("NOT_FOUND", "gone")
    # grpcio: abort(OK) is a misuse, the call ends UNKNOWN without details
    assert _call_unary(channel, "AbortOk")[:2] == ("UNKNOWN", "")
    code, details, err = _call_unary(channel, "AbortWithStatus")
    assert (code, details) == ("FAILED_PRECONDITION", "not now")
    assert ("why", "because") in [tuple(m) for m in err.trailing_metadata()]


def test_set_code_and_details_without_abort(impl, serve, client):
    def unary(request, context):
        context.set_code(impl.StatusCode.NOT_FOUND)
        context.set_details("no such thing")
        return b"dropped"

    def stream(request, context):
        yield b"one"
        context.set_code(impl.StatusCode.DATA_LOSS)
        context.set_details("lost the rest")

    def set_then_raise(request, context):
        context.set_code(impl.StatusCode.OUT_OF_RANGE)
        context.set_details("too far")
        raise ValueError("then broke")

    def details_only(request, context):
        context.set_details("all good")
        return b"fine"

    channel = client(serve(impl, {
        "Unary": impl.unary_unary_rpc_method_handler(unary),
        "Stream": impl.unary_stream_rpc_method_handler(stream),
        "SetThenRaise": impl.unary_unary_rpc_method_handler(set_then_raise),
        "DetailsOnly": impl.unary_unary_rpc_method_handler(details_only),
    }))
    assert _call_unary(channel, "Unary")[:2] == ("NOT_FOUND", "no such thing")
    responses = channel.unary_stream(path("Stream"))(b"", timeout=5)
    assert next(responses) == b"one"
    with pytest.raises(grpc.RpcError):
        next(responses)
    assert _status(responses) == ("DATA_LOSS", "lost the rest")
    assert _call_unary(channel, "SetThenRaise")[:2] == ("OUT_OF_RANGE", "too far")
    code, response, call = _call_unary(channel, "DetailsOnly")
    assert (code, response) == ("OK", b"fine")


def test_metadata_peer_time_remaining(impl, serve, rec, client):
    def unary(request, context):
        rec.put("metadata", context.invocation_metadata())
        rec.put("peer", context.peer())
        rec.put("remaining", context.time_remaining())
        rec.put("active", context.is_active())
        rec.put("code", context.code())
        rec.put("details", context.details())
        context.send_initial_metadata((("early", "yes"), ("early-bin", b"\x01\x02")))
        try:
            context.send_initial_metadata((("again", "no"),))
        except Exception as exc:
            rec.put("again", exc)
        context.set_trailing_metadata((("late", "yes"), ("late-bin", b"\x03")))
        return b"ok"

    def no_deadline(request, context):
        rec.put("no-deadline", context.time_remaining())
        return b"ok"

    channel = client(serve(impl, {
        "Unary": impl.unary_unary_rpc_method_handler(unary),
        "NoDeadline": impl.unary_unary_rpc_method_handler(no_deadline),
    }))
    response, call = channel.unary_unary(path("Unary")).with_call(
        b"x", timeout=5, metadata=(("k", "v"), ("k", "w"), ("b-bin", b"\x00\xff")))
    metadata = rec.get("metadata")
    assert isinstance(metadata, tuple)
    for item in metadata:
        assert item == (item.key, item.value)
    pairs = [tuple(m) for m in metadata]
    assert [p for p in pairs if p[0] in ("k", "b-bin")] == [("k", "v"), ("k", "w"), ("b-bin", b"\x00\xff")]
    assert any(k == "user-agent" for k, _ in pairs)
    assert not any(k.startswith(":") or k.startswith("grpc-") or k in ("te", "content-type") for k, _ in pairs)
    # grpcio's peer format: ipv4:<address>:<the client's port>
    assert re.fullmatch(r"ipv4:127\.0\.0\.1:\d+", rec.get("peer"))
    assert 3.0 < rec.get("remaining") <= 5.5
    assert rec.get("active") is True
    assert rec.get("code") is None and rec.get("details") is None
    assert isinstance(rec.get("again"), ValueError)
    initial = [tuple(m) for m in call.initial_metadata()]
    assert ("early", "yes") in initial and ("early-bin", b"\x01\x02") in initial
    assert ("again", "no") not in initial
    trailing = [tuple(m) for m in call.trailing_metadata()]
    assert ("late", "yes") in trailing and ("late-bin", b"\x03") in trailing

    channel.unary_unary(path("NoDeadline"))(b"x")
    assert rec.get("no-deadline") > 1e6   # no deadline: an unbounded time


def test_add_callback_on_completion_and_on_client_cancel(impl, serve, rec, client):
    def completes(request, context):
        rec.put("added", context.add_callback(lambda: rec.put("completed", context.is_active())))
        return b"ok"

    def blocks(request, context):
        fired = threading.Event()
        context.add_callback(fired.set)
        rec.put("started", True)
        rec.put("cancel-fired", fired.wait(5))
        rec.put("active-after-cancel", context.is_active())
        rec.put("late-add", context.add_callback(lambda: None))

    channel = client(serve(impl, {
        "Completes": impl.unary_unary_rpc_method_handler(completes),
        "Blocks": impl.unary_unary_rpc_method_handler(blocks),
    }))
    assert channel.unary_unary(path("Completes"))(b"", timeout=5) == b"ok"
    assert rec.get("added") is True
    assert rec.get("completed") is False        # fired after the call ended
    future = channel.unary_unary(path("Blocks")).future(b"", timeout=5)
    rec.get("started")
    future.cancel()
    assert rec.get("cancel-fired") is True
    assert rec.get("active-after-cancel") is False
    # grpcio: once the call has ended, add_callback does not register
    assert rec.get("late-add") is False


def test_context_cancel(impl, serve, rec, client):
    def cancelling(request, context):
        context.add_callback(lambda: rec.put("callback", True))
        context.cancel()
        return b"never"

    def cancelling_stream(request, context):
        yield b"first"
        context.cancel()
        rec.put("stream-cancelled", True)

    channel = client(serve(impl, {
        "Cancel": impl.unary_unary_rpc_method_handler(cancelling),
        "CancelStream": impl.unary_stream_rpc_method_handler(cancelling_stream),
    }))
    assert _call_unary(channel, "Cancel")[:2] == ("CANCELLED", "CANCELLED")
    assert rec.get("callback") is True
    responses = channel.unary_stream(path("CancelStream"))(b"", timeout=5)
    assert next(responses) == b"first"
    with pytest.raises(grpc.RpcError) as info:
        next(responses)
    assert info.value.code() == grpc.StatusCode.CANCELLED
    rec.get("stream-cancelled")


def test_compression_controls(impl, serve, client):
    def unary(request, context):
        context.set_compression(impl.Compression.Gzip)
        return request * 10

    def stream(request, context):
        context.set_compression(impl.Compression.Deflate)
        for i in range(3):
            if i == 1:
                context.disable_next_message_compression()
            yield request * (i + 1)

    channel = client(serve(impl, {
        "Unary": impl.unary_unary_rpc_method_handler(unary),
        "Stream": impl.unary_stream_rpc_method_handler(stream),
    }))
    assert channel.unary_unary(path("Unary"))(b"abc", timeout=5) == b"abc" * 10
    assert list(channel.unary_stream(path("Stream"))(b"z", timeout=5)) == [b"z", b"zz", b"zzz"]
    # the client asking for compression of its own messages
    assert channel.unary_unary(path("Unary"))(b"q", timeout=5, compression=grpc.Compression.Gzip) == b"q" * 10


def test_handler_exception_is_unknown_and_server_keeps_serving(impl, serve, client, caplog):
    def broken(request, context):
        raise RuntimeError("kaput")

    def broken_stream(request, context):
        yield b"one"
        raise KeyError("midway")

    def no_return(request, context):
        pass

    def bad_request(request, context):
        return b"unreachable"

    def failing_deserializer(raw):
        raise ValueError("cannot parse")

    channel = client(serve(impl, {
        "Broken": impl.unary_unary_rpc_method_handler(broken),
        "BrokenStream": impl.unary_stream_rpc_method_handler(broken_stream),
        "NoReturn": impl.unary_unary_rpc_method_handler(no_return),
        "BadRequest": impl.unary_unary_rpc_method_handler(bad_request, request_deserializer=failing_deserializer),
        "Echo": impl.unary_unary_rpc_method_handler(lambda request, context: request),
    }))
    for _ in range(3):
        assert _call_unary(channel, "Broken")[:2] == ("UNKNOWN", "Exception calling application: kaput")
        assert channel.unary_unary(path("Echo"))(b"still here", timeout=5) == b"still here"
    responses = channel.unary_stream(path("BrokenStream"))(b"", timeout=5)
    assert next(responses) == b"one"
    with pytest.raises(grpc.RpcError):
        next(responses)
    assert _status(responses) == ("UNKNOWN", "Exception iterating responses: 'midway'")
    # a handler that returns nothing: the response cannot be serialized
    assert _call_unary(channel, "NoReturn")[:2] == ("INTERNAL", "Failed to serialize response!")
    assert _call_unary(channel, "BadRequest")[:2] == ("INTERNAL", "Exception deserializing request!")
    assert channel.unary_unary(path("Echo"))(b"after all", timeout=5) == b"after all"
