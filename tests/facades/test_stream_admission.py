"""Streams a server admits: calls that open and never send their request
hold no worker (sync) or task (aio) and cannot starve other clients;
SETTINGS_MAX_CONCURRENT_STREAMS is advertised and enforced with
REFUSED_STREAM; clients queue at a server's limit instead of failing.

The misbehaving peer is the `h2` package over a real socket (rawh2); the
healthy clients are grpcio's and grpcpy's."""
import asyncio
import concurrent.futures
import threading
import time

import h2.settings
import pytest

import grpcpy
import grpcpy.aio

from .conftest import cached_client
from .drivers import GRPCPY, HANG, Behaviour, register, wait_for
from .rawh2 import RawH2Client

REFUSED_STREAM = 7
MAX_STREAMS = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS


class _Counting(grpcpy.ServerInterceptor):
    def __init__(self):
        self.seen = 0

    def intercept_service(self, continuation, handler_call_details):
        self.seen += 1
        return continuation(handler_call_details)


class _AioCounting(grpcpy.aio.ServerInterceptor):
    def __init__(self):
        self.seen = 0

    async def intercept_service(self, continuation, handler_call_details):
        self.seen += 1
        return await continuation(handler_call_details)


def _tasks(srv):
    """The number of asyncio tasks on an aio server's loop (None for sync)."""
    if not hasattr(srv, "lt"):
        return None
    return srv.lt.call(lambda: len(asyncio.all_tasks()))


@pytest.mark.parametrize("server_facade", GRPCPY)
@pytest.mark.parametrize("intercepted", [False, True], ids=["plain", "intercepted"])
def test_silent_streams_do_not_starve_other_clients(fresh_server, fresh_client, server_facade, intercepted):
    """1,000 streams (4 connections) that send HEADERS and nothing else, then
    50 healthy calls: all succeed (the server's pool has 16 workers; were a
    silent stream to hold one, the healthy calls would wait for ever). The
    silent calls then complete or cancel: the completed ones run and answer,
    the cancelled ones never run, and no call is left behind. Behind an
    interceptor the method is known only after the chain ran; the call goes
    back to waiting without its worker the same way. (grpcio's sync server
    gives every call a worker at once, which then waits for the request.)"""
    interceptor = (_AioCounting() if server_facade == "grpcpy-aio" else _Counting()) if intercepted else None
    srv = fresh_server(server_facade, interceptors=[interceptor] if interceptor else None)
    b = Behaviour("unary_unary", [("return", b"ok")])
    path = register(b)
    raws = [RawH2Client(srv.port) for _ in range(4)]
    try:
        tasks_before = _tasks(srv)
        silent = [[raw.open(path) for _ in range(250)] for raw in raws]
        for raw in raws:
            raw.pump()          # the server's SETTINGS, acknowledged
        assert wait_for(lambda: len(srv.server._active) == 1000)
        if tasks_before is not None:
            # the aio server: no task per waiting call either
            assert _tasks(srv) - tasks_before < 100
        client = fresh_client("grpcio-sync", srv.target)
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            outcomes = list(pool.map(lambda i: client.unary(path, b"q%d" % i, timeout=HANG), range(50)))
        assert [o.response for o in outcomes] == [b"ok"] * 50, [o for o in outcomes if o.response != b"ok"][:3]
        assert len(b.requests) == 50
        for raw, streams in zip(raws, silent):
            for i, stream in enumerate(streams):
                if i % 2:
                    raw.send_request(stream, b"late")
                else:
                    raw.reset(stream)
            answered = streams[1::2]
            assert raw.pump(lambda: all(s.ended for s in answered), timeout=HANG)
            assert [s.status for s in answered] == [0] * len(answered)
        assert sorted(b.requests).count(b"late") == 500
        assert len(b.requests) == 550
        assert wait_for(lambda: not srv.server._active), len(srv.server._active)
        if interceptor is not None:
            assert interceptor.seen == 1050
    finally:
        for raw in raws:
            raw.close()


@pytest.mark.parametrize("kind", ["unary_unary", "unary_stream"])
def test_call_waiting_for_its_request_ends_at_its_deadline(server, kind):
    """A stream with a deadline and no request: DEADLINE_EXCEEDED at the
    deadline, and the handler never runs (grpcio: the same)."""
    b = Behaviour(kind, [("observe", "entered", lambda c: True)] +
                  ([("return", b"r")] if kind == "unary_unary" else [("yield", b"r")]))
    path = register(b)
    raw = RawH2Client(server.port)
    try:
        stream = raw.open(path, timeout="100m")
        assert raw.pump(lambda: stream.ended, timeout=HANG)
    finally:
        raw.close()
    assert stream.status == 4, (stream.headers, stream.trailers, stream.reset)
    assert "entered" not in b.observed and b.requests == []


def _open_past_limit(port, path, count):
    """A connection past the SETTINGS exchange opening `count` streams at
    once, whatever limit the server advertised."""
    raw = RawH2Client(port)
    assert raw.handshake()
    raw.ignore_stream_limit()
    return raw, [raw.open(path) for _ in range(count)]


@pytest.mark.parametrize("server_facade", GRPCPY)
def test_default_stream_limit_is_advertised_and_enforced(fresh_server, server_facade):
    """The default: 256 streams per connection in SETTINGS; the 257th stream
    opened gets RST_STREAM(REFUSED_STREAM), the others are served."""
    srv = fresh_server(server_facade)
    path = register(Behaviour("unary_unary", [("return", b"ok")]))
    raw, streams = _open_past_limit(srv.port, path, 257)
    try:
        assert raw.remote_settings.get(MAX_STREAMS) == 256
        assert raw.pump(lambda: streams[-1].ended, timeout=HANG)
        assert streams[-1].reset == REFUSED_STREAM
        for stream in streams[:-1]:
            raw.send_request(stream, b"q")
        assert raw.pump(lambda: all(s.ended for s in streams[:-1]), timeout=HANG)
        assert [s.status for s in streams[:-1]] == [0] * 256
    finally:
        raw.close()


def test_stream_limit_option(fresh_server, server_facade):
    """grpc.max_concurrent_streams=3: advertised, and a 4th stream open at
    once is refused; once one ends, a new stream is served (grpcio: the
    same)."""
    srv = fresh_server(server_facade, options=[("grpc.max_concurrent_streams", 3)])
    path = register(Behaviour("unary_unary", [("return", b"ok")]))
    raw, streams = _open_past_limit(srv.port, path, 4)
    try:
        assert raw.remote_settings.get(MAX_STREAMS) == 3
        assert raw.pump(lambda: streams[-1].ended, timeout=HANG)
        assert streams[-1].reset == REFUSED_STREAM
        assert not any(s.ended for s in streams[:3])
        raw.send_request(streams[0], b"q")
        assert raw.pump(lambda: streams[0].ended, timeout=HANG)
        later = raw.open(path)
        raw.send_request(later, b"q")
        assert raw.pump(lambda: later.ended, timeout=HANG)
        assert (streams[0].status, later.status) == (0, 0)
    finally:
        raw.close()


def test_refused_streams_beyond_the_limit_leave_the_connection_usable(server_facade, fresh_server):
    """A peer far past the limit (100 streams against 3) gets REFUSED_STREAM
    for the excess only; the connection and the server keep serving."""
    srv = fresh_server(server_facade, options=[("grpc.max_concurrent_streams", 3)])
    path = register(Behaviour("unary_unary", [("return", b"ok")]))
    raw, streams = _open_past_limit(srv.port, path, 100)
    try:
        assert raw.pump(lambda: all(s.ended for s in streams[3:]), timeout=HANG)
        assert {s.reset for s in streams[3:]} == {REFUSED_STREAM}
        for stream in streams[:3]:
            raw.send_request(stream, b"q")
        assert raw.pump(lambda: all(s.ended for s in streams[:3]), timeout=HANG)
        assert [s.status for s in streams[:3]] == [0, 0, 0]
    finally:
        raw.close()
    assert cached_client("grpcio-sync", srv.target).unary(path, b"q", timeout=HANG).response == b"ok"


@pytest.mark.parametrize("server_facade", GRPCPY)
def test_streams_before_the_settings_exchange_are_refused_too(fresh_server, server_facade):
    """A client that opens streams before it has read the server's SETTINGS
    cannot know the limit: the excess is refused with REFUSED_STREAM all
    the same, which tells the client it may retry (RFC 9113 section 5.1.2).
    (grpcio resets such streams ENHANCE_YOUR_CALM.)"""
    srv = fresh_server(server_facade, options=[("grpc.max_concurrent_streams", 3)])
    path = register(Behaviour("unary_unary", [("return", b"ok")]))
    raw = RawH2Client(srv.port)
    try:
        streams = [raw.open(path) for _ in range(5)]
        assert raw.pump(lambda: all(s.ended for s in streams[3:]), timeout=HANG)
        assert [s.reset for s in streams[3:]] == [REFUSED_STREAM] * 2
        assert not any(s.ended for s in streams[:3])
    finally:
        raw.close()


class _Concurrency:
    """A handler that notes how many calls it runs at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.now = self.most = 0

    def enter(self):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def leave(self):
        with self.lock:
            self.now -= 1

    def raw(self, context_kind):
        if context_kind == "aio":
            async def handler(request, context):
                self.enter()
                try:
                    await asyncio.sleep(0.05)
                finally:
                    self.leave()
                return b"r"
            return handler

        def handler(request, context):
            self.enter()
            try:
                time.sleep(0.05)
            finally:
                self.leave()
            return b"r"
        return handler


@pytest.mark.parametrize("client_facade, server_facade", [
    ("grpcio-sync", "grpcpy-sync"), ("grpcio-aio", "grpcpy-aio"), ("grpcpy-sync", "grpcpy-aio"),
    ("grpcpy-aio", "grpcpy-sync"), ("grpcpy-sync", "grpcio-sync"), ("grpcpy-aio", "grpcio-aio")])
def test_clients_queue_at_the_servers_stream_limit(request, fresh_server, fresh_client, client_facade, server_facade):
    """Eight calls at once on one channel to a server allowing two streams:
    every call succeeds (the client waits for a free stream, it does not
    fail the call), and the server never runs more than two. grpcio's server
    counts a stream until its trailers are written out, so a stream opened
    as soon as the previous one's trailers arrive is sometimes refused
    (REFUSED_STREAM): the clients send it again (grpcpy: see the core's
    REPLAY_LIMIT)."""
    srv = fresh_server(server_facade, options=[("grpc.max_concurrent_streams", 2)])
    seen = _Concurrency()
    path = register(Behaviour("unary_unary", [], raw=seen.raw))
    client = fresh_client(client_facade, srv.target)
    assert client.unary(path, b"warm", timeout=HANG).response == b"r"   # the limit is known now
    calls = [client.start("unary_unary", path, b"q", timeout=HANG) for _ in range(8)]
    assert [c.result() for c in calls] == [b"r"] * 8
    assert 1 <= seen.most <= 2


@pytest.mark.parametrize("server_facade", GRPCPY)
def test_stop_with_grace_serves_a_call_whose_request_comes_during_the_grace(fresh_server, server_facade):
    """A call admitted before stop(grace) and still waiting for its request
    is a call in flight: when the request comes within the grace the
    handler runs and answers, and the server stops after it."""
    srv = fresh_server(server_facade)
    b = Behaviour("unary_unary", [("return", b"ok")])
    path = register(b)
    raw = RawH2Client(srv.port)
    try:
        assert raw.handshake()
        stream = raw.open(path)
        raw.pump()
        assert wait_for(lambda: len(srv.server._active) == 1)
        if hasattr(srv, "lt"):
            stopping = asyncio.run_coroutine_threadsafe(srv.server.stop(HANG), srv.lt.loop)
            srv.lt.call(lambda: None)   # the stop has begun
            stopped = stopping.done
        else:
            stopped = srv.server.stop(HANG).is_set
        assert not stopped()
        assert raw.pump(lambda: raw.goaways, timeout=HANG)    # the stop is on the wire
        raw.send_request(stream, b"late")
        assert raw.pump(lambda: stream.ended, timeout=HANG)
        assert stream.status == 0 and b.requests == [b"late"]
        assert wait_for(stopped)
    finally:
        raw.close()
