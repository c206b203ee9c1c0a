"""Known traffic between real peers, for the observability tests: a
service on grpcpy's sync and asyncio servers and on grpcio's, and a fixed
set of calls made by grpcpy's sync and asyncio channels and by grpcio's.

The calls (KNOWN, per method): OK_CALLS unary calls that succeed and
FAILED_CALLS that the server fails with FAILED_CODE, one server-streaming
call answered with STREAMED messages, one client-streaming call sending
UPLOADED messages. Messages are raw bytes (no serializer)."""
import asyncio
import contextlib
from concurrent import futures

import grpc
import grpc.aio

import grpcpy
import grpcpy.aio
from tests.health.harness import LoopThread

SERVICE = "test.observability.Traffic"
UNARY = "/%s/Unary" % SERVICE
SERVER_STREAM = "/%s/ServerStream" % SERVICE
CLIENT_STREAM = "/%s/ClientStream" % SERVICE

OK_CALLS = 3
FAILED_CALLS = 2
FAILED_CODE = "NOT_FOUND"
STREAMED = 4
UPLOADED = 3

SERVERS = ["grpcpy-sync", "grpcpy-aio", "grpcio"]
CLIENTS = ["grpcpy-sync", "grpcpy-aio", "grpcio"]
TIMEOUT = 30

# (grpc_type, method name) -> started, handled by code, messages from the
# client, messages from the server
KNOWN = {
    ("unary", "Unary"): (OK_CALLS + FAILED_CALLS, {"OK": OK_CALLS, FAILED_CODE: FAILED_CALLS},
                         OK_CALLS + FAILED_CALLS, OK_CALLS),
    ("server_stream", "ServerStream"): (1, {"OK": 1}, 1, STREAMED),
    ("client_stream", "ClientStream"): (1, {"OK": 1}, UPLOADED, 1),
}
CALLS = sum(started for started, _, _, _ in KNOWN.values())


def _module(kind):
    return grpc if kind == "grpcio" else grpcpy


def _sync_handlers(module):
    def unary(request, context):
        if request.startswith(b"fail"):
            context.abort(getattr(module.StatusCode, FAILED_CODE), "no such thing")
        return request

    def server_stream(request, context):
        for i in range(int(request)):
            yield b"item %d" % i

    def client_stream(requests, context):
        return b"%d" % sum(1 for _ in requests)

    return unary, server_stream, client_stream


def _aio_handlers(module):
    async def unary(request, context):
        if request.startswith(b"fail"):
            await context.abort(getattr(module.StatusCode, FAILED_CODE), "no such thing")
        return request

    async def server_stream(request, context):
        for i in range(int(request)):
            yield b"item %d" % i

    async def client_stream(requests, context):
        count = 0
        async for _ in requests:
            count += 1
        return b"%d" % count

    return unary, server_stream, client_stream


def generic_handler(module, aio):
    unary, server_stream, client_stream = (_aio_handlers if aio else _sync_handlers)(module)
    return module.method_handlers_generic_handler(SERVICE, {
        "Unary": module.unary_unary_rpc_method_handler(unary),
        "ServerStream": module.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": module.stream_unary_rpc_method_handler(client_stream),
    })


class Server:
    """The traffic service on a running server of `kind`."""

    def __init__(self, kind, options=(), interceptors=(), more_handlers=()):
        self.kind = kind
        self._more = tuple(more_handlers)       # generic handlers after the service's
        self._loop = None
        module = _module(kind)
        if kind == "grpcpy-aio":
            self._loop = LoopThread()
            self.port = self._loop.run(self._start_aio(options))
        else:
            self.server = module.server(futures.ThreadPoolExecutor(4), options=list(options),
                                        interceptors=list(interceptors))
            self.server.add_generic_rpc_handlers((generic_handler(module, aio=False),) + self._more)
            self.port = self.server.add_insecure_port("127.0.0.1:0")
            self.server.start()

    async def _start_aio(self, options):
        self.server = grpcpy.aio.server(options=list(options))
        self.server.add_generic_rpc_handlers((generic_handler(grpcpy, aio=True),) + self._more)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return port

    @property
    def target(self):
        return "127.0.0.1:%d" % self.port

    def close(self):
        if self._loop is None:
            self.server.stop(None).wait(TIMEOUT)
        else:
            self._loop.run(self.server.stop(None))
            self._loop.close()


@contextlib.contextmanager
def serving(kind, options=(), interceptors=(), more_handlers=()):
    """A Server of `kind` for the block; stopped after it (so every call
    it served has ended)."""
    server = Server(kind, options, interceptors, more_handlers)
    try:
        yield server
    finally:
        server.close()


def _uploads():
    return (b"part %d" % i for i in range(UPLOADED))


def sync_traffic(channel, module, metadata=None):
    """The KNOWN calls on a channel of grpcio's sync API (`module` grpc or grpcpy)."""
    unary = channel.unary_unary(UNARY)
    for i in range(OK_CALLS):
        assert unary(b"hello %d" % i, timeout=TIMEOUT, metadata=metadata) == b"hello %d" % i
    for i in range(FAILED_CALLS):
        try:
            unary(b"fail %d" % i, timeout=TIMEOUT, metadata=metadata)
        except module.RpcError as e:
            assert e.code().name == FAILED_CODE, e
        else:
            raise AssertionError("the call should have failed")
    replies = list(channel.unary_stream(SERVER_STREAM)(b"%d" % STREAMED, timeout=TIMEOUT, metadata=metadata))
    assert len(replies) == STREAMED
    assert channel.stream_unary(CLIENT_STREAM)(_uploads(), timeout=TIMEOUT, metadata=metadata) == b"%d" % UPLOADED


async def _aio_traffic(target, options, metadata):
    async with grpcpy.aio.insecure_channel(target, options=list(options)) as channel:
        unary = channel.unary_unary(UNARY)
        for i in range(OK_CALLS):
            assert await unary(b"hello %d" % i, timeout=TIMEOUT, metadata=metadata) == b"hello %d" % i
        for i in range(FAILED_CALLS):
            try:
                await unary(b"fail %d" % i, timeout=TIMEOUT, metadata=metadata)
            except grpcpy.aio.AioRpcError as e:
                assert e.code().name == FAILED_CODE, e
            else:
                raise AssertionError("the call should have failed")
        replies = [r async for r in channel.unary_stream(SERVER_STREAM)(b"%d" % STREAMED, timeout=TIMEOUT,
                                                                          metadata=metadata)]
        assert len(replies) == STREAMED
        reply = await channel.stream_unary(CLIENT_STREAM)(_uploads(), timeout=TIMEOUT, metadata=metadata)
        assert reply == b"%d" % UPLOADED


def run_known_traffic(kind, target, options=(), metadata=None):
    """Make the KNOWN calls from a new channel of `kind` (closed after)."""
    if kind == "grpcpy-aio":
        asyncio.run(_aio_traffic(target, options, metadata))
        return
    module = _module(kind)
    with module.insecure_channel(target, options=list(options)) as channel:
        sync_traffic(channel, module, metadata)


def call_methods(kind, target, methods, options=()):
    """One unary call to each of `methods` from a new channel of `kind`;
    the status code of each, by name."""
    async def aio():
        async with grpcpy.aio.insecure_channel(target, options=list(options)) as channel:
            codes = []
            for method in methods:
                try:
                    await channel.unary_unary(method)(b"x", timeout=TIMEOUT)
                    codes.append("OK")
                except grpcpy.aio.AioRpcError as e:
                    codes.append(e.code().name)
            return codes

    if kind == "grpcpy-aio":
        return asyncio.run(aio())
    module = _module(kind)
    codes = []
    with module.insecure_channel(target, options=list(options)) as channel:
        for method in methods:
            try:
                channel.unary_unary(method)(b"x", timeout=TIMEOUT)
                codes.append("OK")
            except module.RpcError as e:
                codes.append(e.code().name)
    return codes
