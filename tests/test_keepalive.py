"""Keepalive and connection management against real peers, through a TCP
proxy that sees the frames (tests/netproxy.py): grpcpy clients (sync and
aio) against a grpcio server, a grpcio client against grpcpy servers (sync
and aio).

The bounds below are hang guards with wide margins; what is asserted is the
behaviour (frames on the wire, status codes), plus lower bounds on ping
intervals, which slowness cannot break.
"""
import asyncio
import concurrent.futures
import threading
import time

import grpc
import pytest

import grpcpy
import grpcpy.aio
from tests.netproxy import GOAWAY, NetProxy, wait_for

SERVICE = "t.K"
ENHANCE_YOUR_CALM = 0xB
MAX_ID = 0x7FFFFFFF
# a grpcio server that lets clients ping as often as they like
PERMISSIVE = [("grpc.http2.min_ping_interval_without_data_ms", 10), ("grpc.keepalive_permit_without_calls", 1),
              ("grpc.http2.max_ping_strikes", 0)]


def _echo(request, context):
    return request


def _sleep(request, context):
    """Sleeps for the seconds the request names (or until the call ends)."""
    done = threading.Event()
    context.add_callback(done.set)
    done.wait(float(request))
    return request


HOLD_ENDED = threading.Event()      # a Hold call ended on the server


def _hold(request, context):
    """Runs until the call ends (the client cancels, the connection dies)."""
    done = threading.Event()
    context.add_callback(done.set)
    done.wait(30)
    HOLD_ENDED.set()
    return request


async def _aio_hold(request, context):
    try:
        await asyncio.sleep(30)
    finally:
        HOLD_ENDED.set()
    return request


async def _aio_echo(request, context):
    return request


async def _aio_sleep(request, context):
    await asyncio.sleep(float(request))
    return request


def _handlers(mod, echo, sleep, hold):
    return mod.method_handlers_generic_handler(SERVICE, {
        "Echo": mod.unary_unary_rpc_method_handler(echo),
        "Sleep": mod.unary_unary_rpc_method_handler(sleep),
        "Hold": mod.unary_unary_rpc_method_handler(hold),
    })


class SyncServer:
    def __init__(self, mod, options):
        self.pool = concurrent.futures.ThreadPoolExecutor(8)
        self.server = mod.server(self.pool, handlers=[_handlers(mod, _echo, _sleep, _hold)], options=options)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self):
        self.server.stop(0).wait(5)
        self.pool.shutdown(wait=False)


class AioServer:
    """A grpcpy.aio server on a loop of its own thread."""

    def __init__(self, options):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(options), self.loop).result(10)

    async def _start(self, options):
        self.server = grpcpy.aio.server(options=options)
        self.server.add_generic_rpc_handlers([_handlers(grpcpy, _aio_echo, _aio_sleep, _aio_hold)])
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return port

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.server.stop(0), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def start_server(kind, options):
    if kind == "grpcio":
        return SyncServer(grpc, options)
    if kind == "grpcpy-sync":
        return SyncServer(grpcpy, options)
    return AioServer(options)


@pytest.fixture
def servers():
    started = []

    def make(kind, options=()):
        server = start_server(kind, list(options))
        proxy = NetProxy(("127.0.0.1", server.port))
        started.append((server, proxy))
        return proxy

    yield make
    for server, proxy in started:
        proxy.close()
        server.stop()


# -- grpcpy clients, both facades: one interface for the scenarios ----------------------------

class SyncClient:
    def __init__(self, target, options):
        self.channel = grpcpy.insecure_channel(target, options=options)

    def call(self, method, request, timeout=10):
        """(status code, details, elapsed seconds)."""
        start = time.monotonic()
        try:
            self.channel.unary_unary("/%s/%s" % (SERVICE, method))(request, timeout=timeout)
            return grpcpy.StatusCode.OK, "", time.monotonic() - start
        except grpcpy.RpcError as err:
            return err.code(), err.details(), time.monotonic() - start

    def start(self, method, request, timeout=10):
        result = []
        thread = threading.Thread(target=lambda: result.append(self.call(method, request, timeout)), daemon=True)
        thread.start()

        def wait():
            thread.join(timeout + 5)
            return result[0]
        return wait

    @property
    def keepalive_time(self):
        return self.channel._keepalive_time

    def close(self):
        self.channel.close()


class AioClient:
    """A grpcpy.aio channel driven from the test thread through a loop thread."""

    def __init__(self, target, options):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def make():
            return grpcpy.aio.insecure_channel(target, options=options)
        self.channel = self._run(make())

    def _run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _call(self, method, request, timeout):
        start = self.loop.time()
        try:
            await self.channel.unary_unary("/%s/%s" % (SERVICE, method))(request, timeout=timeout)
            return grpcpy.StatusCode.OK, "", self.loop.time() - start
        except grpcpy.aio.AioRpcError as err:
            return err.code(), err.details(), self.loop.time() - start

    def call(self, method, request, timeout=10):
        return self._run(self._call(method, request, timeout), timeout + 5)

    def start(self, method, request, timeout=10):
        fut = asyncio.run_coroutine_threadsafe(self._call(method, request, timeout), self.loop)
        return lambda: fut.result(timeout + 5)

    @property
    def keepalive_time(self):
        return self.channel._keepalive_time

    def close(self):
        self._run(self.channel.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(params=["sync", "aio"])
def client(request):
    made = []

    def make(target, options):
        c = (SyncClient if request.param == "sync" else AioClient)(target, options)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def gaps(frames):
    return [b.at - a.at for a, b in zip(frames, frames[1:])]


# -- grpcpy client -> grpcio server ----------------------------------------------------------

def test_client_keepalive_pings_on_the_wire(servers, client):
    proxy = servers("grpcio", PERMISSIVE)
    c = client(proxy.target, [("grpc.keepalive_time_ms", 200), ("grpc.keepalive_permit_without_calls", 1),
                              ("grpc.http2.max_pings_without_data", 0)])
    assert c.call("Echo", b"hi")[0] == grpcpy.StatusCode.OK
    assert wait_for(lambda: len(proxy.pings("c2s")) >= 4)
    ours = [f for f in proxy.pings("c2s") if f.payload == b"grpcpyKA"]
    assert len(ours) >= 4 and min(gaps(ours)) >= 0.19
    acks = [f for f in proxy.frames("s2c") if f.type == 6 and f.ack and f.payload == b"grpcpyKA"]
    assert len(acks) >= 3


def test_black_holed_connection_fails_calls_within_time_plus_timeout(servers, client):
    proxy = servers("grpcio", PERMISSIVE)
    # only the three usual options
    c = client(proxy.target, [("grpc.keepalive_time_ms", 1000), ("grpc.keepalive_timeout_ms", 1000),
                              ("grpc.keepalive_permit_without_calls", 1)])
    assert c.call("Echo", b"hi")[0] == grpcpy.StatusCode.OK
    wait = c.start("Sleep", b"30", timeout=20)
    time.sleep(0.2)
    proxy.black_hole()
    start = time.monotonic()
    code, details, _ = wait()
    took = time.monotonic() - start
    assert code == grpcpy.StatusCode.UNAVAILABLE, (code, details)
    assert "keepalive" in details
    assert took < 2.0 + 3.0      # time + timeout, with room for a loaded machine
    # the channel reconnects for the next call
    proxy.black_hole(False)
    assert c.call("Echo", b"again")[0] == grpcpy.StatusCode.OK
    assert len(proxy.links) == 2


def test_too_many_pings_doubles_the_keepalive_time(servers, client):
    # grpcio's default policy: with no call open, one ping per two hours
    proxy = servers("grpcio", [("grpc.http2.max_ping_strikes", 2)])
    c = client(proxy.target, [("grpc.keepalive_time_ms", 100), ("grpc.keepalive_permit_without_calls", 1),
                              ("grpc.http2.max_pings_without_data", 0)])
    assert c.call("Echo", b"hi")[0] == grpcpy.StatusCode.OK
    assert wait_for(lambda: any(f.goaway()[1:] == (ENHANCE_YOUR_CALM, b"too_many_pings")
                                for f in proxy.frames("s2c", GOAWAY, link=0)))
    assert wait_for(lambda: c.keepalive_time == 0.2)
    # the next connection pings half as often
    assert c.call("Echo", b"again")[0] == grpcpy.StatusCode.OK
    assert len(proxy.links) == 2
    assert wait_for(lambda: len(proxy.pings("c2s", link=1)) >= 3)
    assert min(gaps(proxy.pings("c2s", link=1)[:3])) >= 0.19


def test_grpcio_server_age_goaway_lets_calls_finish(servers, client):
    proxy = servers("grpcio", PERMISSIVE + [("grpc.max_connection_age_ms", 300),
                                            ("grpc.max_connection_age_grace_ms", 10000)])
    c = client(proxy.target, [])
    assert c.call("Sleep", b"1.0")[0] == grpcpy.StatusCode.OK
    assert proxy.frames("s2c", GOAWAY, link=0)
    assert c.call("Echo", b"again")[0] == grpcpy.StatusCode.OK


def test_client_idle_timeout_closes_and_reconnects(servers, client):
    proxy = servers("grpcio", PERMISSIVE)
    c = client(proxy.target, [("grpc.client_idle_timeout_ms", 200)])
    assert c.call("Echo", b"hi")[0] == grpcpy.StatusCode.OK
    assert wait_for(lambda: proxy.links[0].closed)
    assert c.call("Echo", b"again")[0] == grpcpy.StatusCode.OK
    assert len(proxy.links) == 2


def test_client_idle_timeout_spares_a_channel_with_a_call_open(servers, client):
    proxy = servers("grpcio", PERMISSIVE)
    c = client(proxy.target, [("grpc.client_idle_timeout_ms", 200)])
    assert c.call("Sleep", b"1.0")[0] == grpcpy.StatusCode.OK
    assert len(proxy.links) == 1


# -- grpcio client -> grpcpy servers ----------------------------------------------------------

GRPCPY_SERVERS = ["grpcpy-sync", "grpcpy-aio"]


def grpcio_call(channel, method, request, timeout=10):
    try:
        channel.unary_unary("/%s/%s" % (SERVICE, method))(request, timeout=timeout)
        return grpc.StatusCode.OK
    except grpc.RpcError as err:
        return err.code()


@pytest.mark.parametrize("kind", GRPCPY_SERVERS)
def test_server_ping_policy_sends_too_many_pings(servers, kind):
    proxy = servers(kind, [("grpc.http2.max_ping_strikes", 2)])
    with grpc.insecure_channel(proxy.target, options=[
            ("grpc.keepalive_time_ms", 100), ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0)]) as channel:
        assert grpcio_call(channel, "Echo", b"hi") == grpc.StatusCode.OK
        assert wait_for(lambda: any(f.goaway()[1:] == (ENHANCE_YOUR_CALM, b"too_many_pings")
                                    for f in proxy.frames("s2c", GOAWAY)))
        assert wait_for(lambda: proxy.links[0].closed)
        assert len(proxy.pings("c2s", link=0)) >= 3


@pytest.mark.parametrize("kind", GRPCPY_SERVERS)
def test_server_keepalive_pings(servers, kind):
    proxy = servers(kind, [("grpc.keepalive_time_ms", 200)])
    with grpc.insecure_channel(proxy.target) as channel:
        assert grpcio_call(channel, "Sleep", b"1.2") == grpc.StatusCode.OK
    ours = [f for f in proxy.pings("s2c") if f.payload == b"grpcpyKA"]
    assert len(ours) >= 2 and min(gaps(ours)) >= 0.19


@pytest.mark.parametrize("kind", GRPCPY_SERVERS)
def test_server_idle_goaway(servers, kind):
    proxy = servers(kind, [("grpc.max_connection_idle_ms", 300)])
    with grpc.insecure_channel(proxy.target) as channel:
        assert grpcio_call(channel, "Echo", b"hi") == grpc.StatusCode.OK
        assert wait_for(lambda: proxy.links[0].closed)
        goaways = [f.goaway() for f in proxy.frames("s2c", GOAWAY, link=0)]
        # grpcio closes an idle connection on the first GOAWAY, often before
        # the PING's answer brings the final one
        assert goaways in ([(MAX_ID, 0, b"")], [(MAX_ID, 0, b""), (1, 0, b"")])
        assert [f.payload for f in proxy.pings("s2c", link=0)] == [b"grpcpyGA"]
        assert grpcio_call(channel, "Echo", b"again") == grpc.StatusCode.OK


@pytest.mark.parametrize("kind", GRPCPY_SERVERS)
def test_server_age_goaway_lets_calls_in_flight_finish(servers, kind):
    proxy = servers(kind, [("grpc.max_connection_age_ms", 300), ("grpc.max_connection_age_grace_ms", 10000)])
    with grpc.insecure_channel(proxy.target) as channel:
        assert grpcio_call(channel, "Sleep", b"1.2") == grpc.StatusCode.OK
        [first, final] = [f.goaway() for f in proxy.frames("s2c", GOAWAY, link=0)]
        assert first == (MAX_ID, 0, b"") and final == (1, 0, b"")
        assert wait_for(lambda: proxy.links[0].closed)
        assert grpcio_call(channel, "Echo", b"again") == grpc.StatusCode.OK


@pytest.mark.parametrize("kind", GRPCPY_SERVERS)
def test_server_age_grace_ends_calls_still_running(servers, kind):
    proxy = servers(kind, [("grpc.max_connection_age_ms", 200), ("grpc.max_connection_age_grace_ms", 300)])
    with grpc.insecure_channel(proxy.target) as channel:
        assert grpcio_call(channel, "Sleep", b"10") == grpc.StatusCode.UNAVAILABLE
        assert grpcio_call(channel, "Echo", b"again") == grpc.StatusCode.OK


@pytest.mark.parametrize("kind", GRPCPY_SERVERS)
def test_server_keepalive_ends_calls_of_a_black_holed_client(servers, kind):
    proxy = servers(kind, [("grpc.keepalive_time_ms", 300), ("grpc.keepalive_timeout_ms", 300)])
    HOLD_ENDED.clear()
    with grpc.insecure_channel(proxy.target) as channel:
        future = channel.unary_unary("/%s/Hold" % SERVICE).future(b"x", timeout=30)
        assert wait_for(lambda: len(proxy.links) == 1 and proxy.frames("c2s", 1))
        time.sleep(0.1)
        proxy.black_hole()
        start = time.monotonic()
        assert HOLD_ENDED.wait(10)
        assert time.monotonic() - start < 0.6 + 3.0    # time + timeout, with room
        future.cancel()


# -- options ------------------------------------------------------------------------------------

def test_options_by_grpcio_names_and_defaults():
    import math
    from grpcpy._options import ChannelOptions, ServerOptions
    ch = ChannelOptions(None).h2_config()
    assert ch.keepalive_time == math.inf and ch.keepalive_timeout == 20.0
    assert not ch.keepalive_permit_without_calls and ch.max_pings_without_data == 2
    assert ch.max_ping_strikes == 0                     # no ping policy on a client
    assert ChannelOptions(None).client_idle_timeout == 1800.0
    assert ChannelOptions([("grpc.client_idle_timeout_ms", 2 ** 31 - 1)]).client_idle_timeout == math.inf
    srv = ServerOptions(None).h2_config()
    assert srv.keepalive_time == 7200.0 and srv.min_ping_interval_without_data == 300.0
    assert srv.max_ping_strikes == 2
    assert srv.max_connection_idle == srv.max_connection_age == srv.max_connection_age_grace == math.inf
    opts = ServerOptions([("grpc.max_connection_age_ms", 10000), ("grpc.keepalive_time_ms", 2 ** 31 - 1)])
    ages = {opts.h2_config().max_connection_age for _ in range(50)}
    assert len(ages) > 1 and all(9.0 <= a <= 11.0 for a in ages)     # +/-10% per connection
    assert opts.h2_config().keepalive_time == math.inf
