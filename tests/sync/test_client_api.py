"""Client-side API: multicallables, futures, response iterators, request
iterators, RpcError as a Call. The client is the implementation under test;
the server is always grpcio, so only the client side varies."""
import queue
import threading
import types

import pytest

import grpcpy

from .conftest import path


@pytest.fixture
def stub(impl, grpcio_server, channels):
    channel = channels(impl, grpcio_server.target)
    return types.SimpleNamespace(
        mod=impl,
        channel=channel,
        unary=channel.unary_unary(path("Unary")),
        stream=channel.unary_stream(path("Stream")),
        collect=channel.stream_unary(path("Collect")),
        echo=channel.stream_stream(path("Echo")),
    )


def _pairs(metadata):
    return [(m.key, m.value) for m in metadata]


def test_call_returns_response(stub):
    assert stub.unary(b"hello", timeout=5) == b"hello"
    assert list(stub.stream(b"3", timeout=5)) == [b"0", b"1", b"2"]
    assert stub.collect(iter([b"a", b"b", b"c"]), timeout=5) == b"a,b,c"
    assert list(stub.echo(iter([b"x", b"y"]), timeout=5)) == [b"x", b"y"]


def test_with_call_gives_call_with_metadata_and_status(stub):
    response, call = stub.unary.with_call(b"hi", timeout=5, metadata=(("k", "v"),))
    assert response == b"hi"
    assert isinstance(call, stub.mod.Call)
    initial = call.initial_metadata()
    trailing = call.trailing_metadata()
    assert isinstance(initial, tuple) and isinstance(trailing, tuple)
    # grpcio's metadata items are namedtuples with .key and .value
    assert ("im", "1") in _pairs(initial)
    assert ("tm", "2") in _pairs(trailing)
    for item in initial + trailing:
        assert isinstance(item, tuple) and len(item) == 2
        assert item == (item.key, item.value)
    assert call.code() == stub.mod.StatusCode.OK
    assert call.details() in ("", None)
    assert not call.is_active()

    response, call = stub.collect.with_call(iter([b"a"]), timeout=5)
    assert response == b"a"
    assert call.code() == stub.mod.StatusCode.OK


def test_rpc_error_is_a_call(stub):
    mod = stub.mod
    with pytest.raises(mod.RpcError) as info:
        stub.unary(b"fail", timeout=5)
    err = info.value
    assert isinstance(err, mod.RpcError)
    assert isinstance(err, mod.Call)
    assert isinstance(err, Exception)
    assert err.code() == mod.StatusCode.INVALID_ARGUMENT
    assert err.details() == "bad request"
    assert ("im", "1") in _pairs(err.initial_metadata())
    assert ("tm", "2") in _pairs(err.trailing_metadata())
    assert isinstance(err.debug_error_string(), str) and err.debug_error_string()
    text = str(err)
    assert "StatusCode.INVALID_ARGUMENT" in text and "bad request" in text
    # with_call raises the same kind of error
    with pytest.raises(mod.RpcError) as info:
        stub.unary.with_call(b"fail", timeout=5)
    assert info.value.code() == mod.StatusCode.INVALID_ARGUMENT


def test_grpcpy_rpc_error_classes():
    # the names grpcio users catch, from grpcpy itself
    assert issubclass(grpcpy.RpcError, Exception)
    assert issubclass(grpcpy.FutureTimeoutError, Exception)
    assert issubclass(grpcpy.FutureCancelledError, Exception)


def test_future_success(stub):
    future = stub.unary.future(b"ok", timeout=5)
    assert isinstance(future, stub.mod.Future)
    assert isinstance(future, stub.mod.Call)
    assert future.result(timeout=5) == b"ok"
    assert future.done() and not future.running() and not future.cancelled()
    assert future.exception() is None
    assert future.traceback() is None
    assert future.code() == stub.mod.StatusCode.OK
    assert ("tm", "2") in _pairs(future.trailing_metadata())
    seen = []
    future.add_done_callback(seen.append)   # after completion: called at once
    assert seen == [future]


def test_future_failure(stub):
    mod = stub.mod
    future = stub.unary.future(b"fail", timeout=5)
    with pytest.raises(mod.RpcError) as info:
        future.result(timeout=5)
    assert info.value.code() == mod.StatusCode.INVALID_ARGUMENT
    exc = future.exception(timeout=5)
    assert isinstance(exc, mod.RpcError)
    assert exc.code() == mod.StatusCode.INVALID_ARGUMENT
    assert exc.details() == "bad request"
    tb = future.traceback(timeout=5)
    assert tb is not None and hasattr(tb, "tb_frame")
    assert future.done() and not future.cancelled()


def test_future_timeout_then_callback_before_completion(stub, release):
    mod = stub.mod
    future = stub.unary.future(b"block", timeout=10)
    release.wait_entered()
    assert future.running() and not future.done()
    with pytest.raises(mod.FutureTimeoutError):
        future.result(timeout=0.05)
    with pytest.raises(mod.FutureTimeoutError):
        future.exception(timeout=0.01)
    with pytest.raises(mod.FutureTimeoutError):
        future.traceback(timeout=0.01)
    called = threading.Event()
    seen = []

    def on_done(f):
        seen.append(f)
        called.set()

    future.add_done_callback(on_done)
    assert not called.is_set()
    release.set()
    assert future.result(timeout=5) == b"block"
    assert called.wait(5)
    assert seen == [future]


def test_future_cancel(stub, release):
    mod = stub.mod
    future = stub.unary.future(b"block", timeout=10)
    release.wait_entered()
    called = threading.Event()
    future.add_done_callback(lambda f: called.set())
    assert future.cancel() is True
    assert called.wait(5)
    assert future.cancelled()
    assert future.done() and not future.running()
    with pytest.raises(mod.FutureCancelledError):
        future.result()
    with pytest.raises(mod.FutureCancelledError):
        future.exception()
    with pytest.raises(mod.FutureCancelledError):
        future.traceback()
    assert future.code() == mod.StatusCode.CANCELLED
    assert future.cancel() is False       # already done


def test_future_stream_unary(stub):
    future = stub.collect.future(iter([b"1", b"2"]), timeout=5)
    assert future.result(timeout=5) == b"1,2"
    assert future.code() == stub.mod.StatusCode.OK


def test_response_iterator_is_call_and_future(stub):
    mod = stub.mod
    responses = stub.stream(b"2", timeout=5)
    assert isinstance(responses, mod.Call)
    assert isinstance(responses, mod.Future)
    assert list(responses) == [b"0", b"1"]
    assert responses.code() == mod.StatusCode.OK
    assert responses.done() and not responses.running()
    assert responses.result() is None
    assert responses.exception() is None
    assert isinstance(responses.trailing_metadata(), tuple)
    seen = []
    responses.add_done_callback(seen.append)
    assert seen == [responses]


def test_response_iterator_cancel_mid_stream(stub, release):
    mod = stub.mod
    responses = stub.stream(b"block", timeout=10)
    assert next(responses) == b"first"
    assert responses.is_active()
    assert responses.cancel() is True
    with pytest.raises(mod.RpcError) as info:
        next(responses)
    assert info.value.code() == mod.StatusCode.CANCELLED
    assert info.value is responses      # the iterator is the error it raises
    assert responses.code() == mod.StatusCode.CANCELLED
    assert responses.details() == "Locally cancelled by application!"
    assert responses.cancelled() and responses.done()
    with pytest.raises(mod.FutureCancelledError):
        responses.result()


def test_response_iterator_error_status(stub):
    mod = stub.mod
    responses = stub.echo(iter([b"a", b"fail"]), timeout=5)
    assert next(responses) == b"a"
    with pytest.raises(mod.RpcError) as info:
        next(responses)
    assert info.value.code() == mod.StatusCode.INVALID_ARGUMENT
    assert responses.code() == mod.StatusCode.INVALID_ARGUMENT
    assert responses.details() == "bad request"
    assert isinstance(responses.exception(), mod.RpcError)
    with pytest.raises(mod.RpcError):
        responses.result()


def test_request_iterators_of_any_kind(stub):
    def gen():
        for x in (b"g1", b"g2"):
            yield x

    assert stub.collect(gen(), timeout=5) == b"g1,g2"
    assert stub.collect(iter([b"l1", b"l2", b"l3"]), timeout=5) == b"l1,l2,l3"
    assert stub.collect(iter([]), timeout=5) == b""


def test_request_iterator_consumed_on_another_thread(stub):
    """A queue-fed generator: requests are produced while the call runs, and
    the responses come back interleaved, so the iterator must be consumed on
    a thread other than the caller's."""
    q = queue.Queue()
    consumer_threads = set()
    done = object()

    def requests():
        while True:
            item = q.get(timeout=5)
            consumer_threads.add(threading.get_ident())
            if item is done:
                return
            yield item

    responses = stub.echo(requests(), timeout=10)
    for i in range(5):
        q.put(b"m%d" % i)
        assert next(responses) == b"m%d" % i
    q.put(done)
    with pytest.raises(StopIteration):
        next(responses)
    assert responses.code() == stub.mod.StatusCode.OK
    assert consumer_threads and threading.get_ident() not in consumer_threads


class Boom(Exception):
    pass


def test_request_iterator_that_raises(stub):
    mod = stub.mod

    def requests():
        yield b"a"
        raise Boom("broken iterator")

    with pytest.raises(mod.RpcError) as info:
        stub.collect(requests(), timeout=5)
    assert info.value.code() == mod.StatusCode.UNKNOWN
    assert info.value.details() == "Exception iterating requests!"

    # not a cancellation by the application: the future fails with RpcError
    future = stub.collect.future(requests(), timeout=5)
    exc = future.exception(timeout=5)
    assert isinstance(exc, mod.RpcError) and exc.code() == mod.StatusCode.UNKNOWN
    assert not future.cancelled()
    with pytest.raises(mod.RpcError):
        future.result()

    responses = stub.echo(requests(), timeout=5)
    with pytest.raises(mod.RpcError) as info:
        list(responses)
    assert info.value.code() == mod.StatusCode.UNKNOWN
    assert responses.details() == "Exception iterating requests!"
    assert not responses.cancelled()


def test_deadline_exceeded(stub, release):
    mod = stub.mod
    with pytest.raises(mod.RpcError) as info:
        stub.unary(b"block", timeout=0.2)
    assert info.value.code() == mod.StatusCode.DEADLINE_EXCEEDED
    assert "Deadline Exceeded" in info.value.details()


def test_unimplemented_method(stub):
    mod = stub.mod
    with pytest.raises(mod.RpcError) as info:
        stub.channel.unary_unary("/t.S/Nope")(b"", timeout=5)
    assert info.value.code() == mod.StatusCode.UNIMPLEMENTED
    assert info.value.details() == "Method not found!"


def test_time_remaining_on_client(stub, release):
    future = stub.unary.future(b"block", timeout=10)
    release.wait_entered()
    remaining = future.time_remaining()
    assert 5 < remaining <= 10
    release.set()
    future.result(timeout=5)
    no_deadline = stub.unary.future(b"x")
    no_deadline.result(timeout=5)
    assert no_deadline.time_remaining() is None
