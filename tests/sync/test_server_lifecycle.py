"""Server capacity and life cycle: a saturated worker pool, stop(grace),
wait_for_termination, start twice (maximum_concurrent_rpcs and calls cut off
by stop() are in tests/facades/test_admission.py, under every server
facade). The server is
the implementation under test, the client grpcio."""
import concurrent.futures
import logging
import threading

import grpc
import pytest

import grpcpy

from .conftest import path, standard_handlers


def test_busy_pool_queues_calls(impl, serve, release, channels, caplog):
    """Two workers, two long-lived streams holding them: a third (unary)
    call is not refused; it waits in the pool's queue and completes once a
    stream ends. grpcio does the same (its server submits every call to the
    pool and the pool queues it) but says nothing; grpcpy also logs a
    warning naming the busy and waiting counts."""
    caplog.set_level(logging.WARNING, logger="grpcpy.server")
    running = serve(impl, standard_handlers(impl, release), max_workers=2)
    channel = channels(grpc, running.target)
    streams = [channel.unary_stream(path("Stream"))(b"block", timeout=10) for _ in range(2)]
    for s in streams:
        assert next(s) == b"first"
    release.wait_entered(2)
    waiting = channel.unary_unary(path("Unary")).future(b"queued", timeout=10)
    with pytest.raises(grpc.FutureTimeoutError):
        waiting.result(timeout=0.3)       # queued, not refused
    assert waiting.running()
    streams[0].cancel()                   # frees one worker
    assert waiting.result(timeout=5) == b"queued"
    if impl is grpcpy:
        messages = [r.getMessage() for r in caplog.records if r.name == "grpcpy.server"]
        assert any("all 2 worker threads are busy" in m and "1 call(s) wait" in m for m in messages), messages
    release.set()


def test_stop_with_grace_lets_calls_finish(impl, serve, release, channels):
    running = serve(impl, standard_handlers(impl, release))
    channel = channels(grpc, running.target)
    future = channel.unary_unary(path("Unary")).future(b"block", timeout=10)
    release.wait_entered()
    event = running.server.stop(5)
    assert isinstance(event, threading.Event)
    assert not event.is_set()
    release.set()                          # the call finishes within the grace
    assert future.result(timeout=5) == b"block"
    assert event.wait(5)
    assert running.server.wait_for_termination(timeout=1) is False


def test_wait_for_termination(impl, serve, release):
    """grpcio's wait_for_termination returns True when the timeout passed
    first, False once the server has terminated."""
    running = serve(impl, standard_handlers(impl, release))
    assert running.server.wait_for_termination(timeout=0.05) is True
    result = []
    waiter = threading.Thread(target=lambda: result.append(running.server.wait_for_termination()))
    waiter.start()
    running.server.stop(None).wait(5)
    waiter.join(5)
    assert result == [False]
    assert running.server.wait_for_termination(timeout=0.05) is False


def test_start_twice(impl):
    server = impl.server(concurrent.futures.ThreadPoolExecutor(1))
    server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with pytest.raises(ValueError):
            server.start()
    finally:
        server.stop(None).wait(5)


def test_add_port_after_start():
    """grpcio returns a port number but never serves it (calls to it hang);
    grpcpy refuses with an error instead, so the mistake is visible."""
    server = grpcpy.server(concurrent.futures.ThreadPoolExecutor(1))
    server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with pytest.raises(RuntimeError):
            server.add_insecure_port("127.0.0.1:0")
    finally:
        server.stop(None).wait(5)
