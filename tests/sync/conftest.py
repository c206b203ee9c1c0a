"""Fixtures for the sync API tests.

Every test here runs against grpcio's `grpc` module (the behavioural
reference) and against `grpcpy`. Client-side behaviour is checked with a
grpcio server, server-side behaviour with a grpcio client, so one side at a
time is under test; a few tests pair an implementation with itself where the
behaviour belongs to both ends (channel life cycle, reconnects).

Handlers work on raw bytes (no serializers), so the tests need no protos.
"""
import concurrent.futures
import contextlib
import threading

import grpc
import pytest

import grpcpy

IMPLS = {"grpcio": grpc, "grpcpy": grpcpy}
IMPL_IDS = list(IMPLS)
SERVICE = "t.S"


def path(method):
    return "/%s/%s" % (SERVICE, method)


@pytest.fixture(params=IMPL_IDS)
def impl(request):
    """The implementation under test (client or server side)."""
    return IMPLS[request.param]


class Running:
    """A started server of one implementation, with its own thread pool."""

    def __init__(self, mod, handlers, max_workers=8, **server_kwargs):
        self.mod = mod
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers)
        generic = mod.method_handlers_generic_handler(SERVICE, handlers)
        self.server = mod.server(self.pool, handlers=[generic], **server_kwargs)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.target = "127.0.0.1:%d" % self.port
        self.server.start()

    def stop(self):
        self.server.stop(None).wait(5)
        self.pool.shutdown(wait=False)


class Release:
    """Blocking handlers wait here until the call ends (its callback fires)
    or the test releases them; the fixture releases everything at teardown
    so no test leaves a worker stuck."""

    def __init__(self):
        self._lock = threading.Lock()
        self._waiting = []
        self._released = False
        self.entered = threading.Semaphore(0)

    def wait(self, context, timeout=10.0):
        """Block until released or the call ends; True if the call ended."""
        ended = threading.Event()
        context.add_callback(ended.set)
        with self._lock:
            self._waiting.append(ended)
            released = self._released
        self.entered.release()
        if not released:
            ended.wait(timeout)
        return not context.is_active()

    def set(self):
        with self._lock:
            self._released = True
            waiting, self._waiting = self._waiting, []
        for ev in waiting:
            ev.set()

    def wait_entered(self, count=1, timeout=5.0):
        for _ in range(count):
            assert self.entered.acquire(timeout=timeout), "handler did not start"


@pytest.fixture
def release():
    rel = Release()
    yield rel
    rel.set()


@pytest.fixture
def serve():
    """serve(mod, handlers, **kw) -> Running; all stopped at teardown."""
    started = []

    def start(mod, handlers, **kw):
        running = Running(mod, handlers, **kw)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def channels():
    """channels(mod, target, options=None) -> channel; all closed at teardown."""
    opened = []

    def open_(mod, target, options=None):
        channel = mod.insecure_channel(target, options=options)
        opened.append(channel)
        return channel

    yield open_
    for channel in opened:
        with contextlib.suppress(Exception):
            channel.close()


def standard_handlers(mod, release):
    """The service most client tests talk to.

    Unary:   echoes; initial metadata (im, 1), trailing (tm, 2); b"fail" ->
             INVALID_ARGUMENT "bad request"; b"block" -> waits for release.
    Stream:  request b"N" -> N responses b"0".."N-1"; b"block" -> one
             response, then waits for release.
    Collect: the requests joined with b",".
    Echo:    echoes each request; b"fail" -> aborts with INVALID_ARGUMENT.
    """

    def unary(request, context):
        context.send_initial_metadata((("im", "1"),))
        context.set_trailing_metadata((("tm", "2"),))
        if request == b"fail":
            context.abort(mod.StatusCode.INVALID_ARGUMENT, "bad request")
        if request == b"block":
            release.wait(context)
        return request

    def stream(request, context):
        if request == b"block":
            yield b"first"
            release.wait(context)
            return
        for i in range(int(request)):
            yield str(i).encode()

    def collect(request_iterator, context):
        return b",".join(request_iterator)

    def echo(request_iterator, context):
        for request in request_iterator:
            if request == b"fail":
                context.abort(mod.StatusCode.INVALID_ARGUMENT, "bad request")
            yield request

    return {
        "Unary": mod.unary_unary_rpc_method_handler(unary),
        "Stream": mod.unary_stream_rpc_method_handler(stream),
        "Collect": mod.stream_unary_rpc_method_handler(collect),
        "Echo": mod.stream_stream_rpc_method_handler(echo),
    }


@pytest.fixture
def grpcio_server(serve, release):
    """The standard service on a grpcio server (the reference peer for
    client-side tests)."""
    return serve(grpc, standard_handlers(grpc, release))
