"""Channel: thread safety, connectivity, ready futures, failures to
connect, close, reconnects. The channel is the implementation under test;
servers are grpcio unless the test is about a server restart, where the
server is of the same implementation as the channel."""
import concurrent.futures
import socket
import threading
import time

import grpc
import pytest

from .conftest import path, standard_handlers

FAST_BACKOFF = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
                ("grpc.max_reconnect_backoff_ms", 100)]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shared_by_sixteen_threads(impl, grpcio_server, channels):
    channel = channels(impl, grpcio_server.target)
    unary = channel.unary_unary(path("Unary"))
    stream = channel.unary_stream(path("Stream"))
    collect = channel.stream_unary(path("Collect"))
    echo = channel.stream_stream(path("Echo"))
    errors = []

    def worker(n):
        try:
            for i in range(200):
                tag = b"%d-%d" % (n, i)
                kind = i % 4
                if kind == 0:
                    assert unary(tag, timeout=10) == tag
                elif kind == 1:
                    assert list(stream(b"2", timeout=10)) == [b"0", b"1"]
                elif kind == 2:
                    assert collect(iter([tag, tag]), timeout=10) == tag + b"," + tag
                else:
                    assert list(echo(iter([tag]), timeout=10)) == [tag]
        except BaseException as exc:  # noqa: B902 - reported below
            errors.append((n, exc))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert not any(t.is_alive() for t in threads)


def test_subscribe_sees_idle_connecting_ready(impl, grpcio_server, channels):
    channel = channels(impl, grpcio_server.target)
    states = []
    cond = threading.Condition()

    def on_change(state):
        with cond:
            states.append(state)
            cond.notify_all()

    channel.subscribe(on_change, try_to_connect=True)
    with cond:
        assert cond.wait_for(lambda: impl.ChannelConnectivity.READY in states, 5), states
    ready_at = states.index(impl.ChannelConnectivity.READY)
    seen = states[:ready_at + 1]
    # IDLE first (the state when subscribing), then the changes in order.
    # grpcio polls the state, so it may miss the short CONNECTING phase;
    # grpcpy reports every change it makes.
    order = [impl.ChannelConnectivity.IDLE, impl.ChannelConnectivity.CONNECTING, impl.ChannelConnectivity.READY]
    assert seen[0] == impl.ChannelConnectivity.IDLE
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen), seen
    if impl is not grpc:
        assert seen == order
    channel.unsubscribe(on_change)
    count = len(states)
    channel.close()
    time.sleep(0.1)     # a callback that should not come has time to (not) arrive
    assert len(states) == count


def test_channel_ready_future(impl, grpcio_server, channels):
    channel = channels(impl, grpcio_server.target)
    future = impl.channel_ready_future(channel)
    assert future.result(timeout=5) is None
    assert future.done() and not future.cancelled()
    seen = []
    future.add_done_callback(seen.append)
    assert seen == [future]


def test_channel_ready_future_timeout_and_cancel(impl, channels):
    channel = channels(impl, "127.0.0.1:%d" % _free_port(), options=FAST_BACKOFF)
    future = impl.channel_ready_future(channel)
    with pytest.raises(impl.FutureTimeoutError):
        future.result(timeout=0.2)
    assert future.cancel() is True
    assert future.cancelled()
    with pytest.raises(impl.FutureCancelledError):
        future.result(timeout=1)


def test_nobody_listening(impl, channels):
    channel = channels(impl, "127.0.0.1:%d" % _free_port())
    unary = channel.unary_unary(path("Unary"))
    started = time.monotonic()
    with pytest.raises(impl.RpcError) as info:
        unary(b"x", timeout=5)
    assert info.value.code() == impl.StatusCode.UNAVAILABLE
    assert time.monotonic() - started < 2.0
    started = time.monotonic()
    with pytest.raises(impl.RpcError) as info:
        unary(b"x", timeout=0.3, wait_for_ready=True)
    assert info.value.code() == impl.StatusCode.DEADLINE_EXCEEDED
    assert 0.25 < time.monotonic() - started < 2.0


def test_call_after_close(impl, grpcio_server):
    channel = impl.insecure_channel(grpcio_server.target)
    unary = channel.unary_unary(path("Unary"))
    assert unary(b"x", timeout=5) == b"x"
    channel.close()
    with pytest.raises(ValueError) as info:
        unary(b"x", timeout=5)
    assert "closed channel" in str(info.value)
    channel.close()      # a second close is harmless


def test_close_with_calls_in_flight(impl, grpcio_server, release):
    channel = impl.insecure_channel(grpcio_server.target)
    future = channel.unary_unary(path("Unary")).future(b"block", timeout=10)
    stream = channel.unary_stream(path("Stream"))(b"block", timeout=10)
    assert next(stream) == b"first"
    release.wait_entered(2)
    channel.close()
    with pytest.raises(impl.RpcError) as info:
        future.result(timeout=5)
    # grpcio: CANCELLED, "Stream removed (Channel closed!)" (C-core's
    # wording for a stream it removed); grpcpy: CANCELLED, "Channel closed!"
    assert info.value.code() == impl.StatusCode.CANCELLED
    assert "Channel closed!" in info.value.details()
    with pytest.raises(impl.RpcError) as info:
        next(stream)
    assert stream.code() == impl.StatusCode.CANCELLED
    assert "Channel closed!" in stream.details()


def test_context_manager(impl, grpcio_server):
    with impl.insecure_channel(grpcio_server.target) as channel:
        unary = channel.unary_unary(path("Unary"))
        assert unary(b"in", timeout=5) == b"in"
    with pytest.raises(ValueError):
        unary(b"out", timeout=5)


def test_reconnect_after_server_restart(impl, release, channels):
    port = _free_port()
    handlers = standard_handlers(impl, release)

    def start():
        pool = concurrent.futures.ThreadPoolExecutor(4)
        server = impl.server(pool, handlers=[impl.method_handlers_generic_handler("t.S", handlers)])
        assert server.add_insecure_port("127.0.0.1:%d" % port) == port
        server.start()
        return server

    server = start()
    try:
        channel = channels(impl, "127.0.0.1:%d" % port, options=FAST_BACKOFF)
        unary = channel.unary_unary(path("Unary"))
        assert unary(b"one", timeout=5) == b"one"
        server.stop(None).wait(5)
        with pytest.raises(impl.RpcError) as info:
            unary(b"gone", timeout=5)
        assert info.value.code() == impl.StatusCode.UNAVAILABLE
        server = start()
        # the channel reconnects on its own (small backoff); wait_for_ready
        # lets the call wait for it rather than fail while it backs off
        assert unary(b"two", timeout=5, wait_for_ready=True) == b"two"
        assert unary(b"three", timeout=5) == b"three"
    finally:
        server.stop(None).wait(5)
