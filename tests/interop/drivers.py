"""Drivers: how the one call-behaviour suite reaches a client or a server of
either facade (asyncio or threaded sync) of either implementation.

Theory of operation. A scenario is an `async def` written against the
asyncio flavour of the client API, through a driver:

    await drv.unary(name, request, **kw)       -> response, or raises RpcError
    call = drv.unary_call(name, request, **kw) -> awaitable (the response),
        with awaitable initial_metadata(), trailing_metadata(), code(),
        details(), and plain cancel() / cancelled() (both facades answer those
        without blocking)
    call = drv.server_stream(name, request, **kw) -> `async for`, await read()
    await drv.client_stream(name, requests, **kw) -> response
    call = drv.bidi(name, requests=None, **kw)  -> await write(m), read()
        (drv.EOF at the end), done_writing(), `async for`, and the accessors
    await drv.raw_unary(path, payload)         -> bytes, for unknown methods
    await drv.expect_cancelled(call)           -> what a cancelled call does

The aio driver hands back grpc.aio / grpcpy.aio call objects unchanged (they
are that API). The sync driver wraps the sync generated stub on a grpc /
grpcpy channel: unary and client-streaming calls through `.future()` bridged
into asyncio futures (no thread per call, so 1000 concurrent calls stay
1000), blocking reads and accessors in a thread pool of the driver's own,
bidi requests from a queue-fed generator.

Cancellation is where the facades differ (both in grpcio): aio raises
asyncio.CancelledError when a cancelled call is awaited or read; sync raises
FutureCancelledError from result() of a cancelled future and the call itself
(an RpcError with code CANCELLED) from the next read. `expect_cancelled`
asserts the facade's own behaviour.

Server drivers give both facades one shape: `await start()`, `await
stop(grace)`."""
import asyncio
import concurrent.futures
import queue

import pytest

import grpc
import grpc.aio

import grpcpy
import grpcpy.aio

RPC_ERRORS = (grpc.RpcError, grpcpy.RpcError)

SERVICE = "/grpc.testing.TestService/"


def facade_modules(facade):
    """'grpcio-aio' -> (the API module, the implementation's top module)."""
    impl, kind = facade.split("-")
    top = grpc if impl == "grpcio" else grpcpy
    if kind == "aio":
        return (grpc.aio if impl == "grpcio" else grpcpy.aio), top
    return top, top


def sync_facade_missing(facade):
    """Why a sync facade cannot run yet (None when it can)."""
    _, top = facade_modules(facade)
    if facade.endswith("-sync") and not (hasattr(top, "insecure_channel") and hasattr(top, "server")):
        return "%s sync facade not there yet (no %s.insecure_channel / %s.server)" % ((top.__name__,) * 3)
    return None


def compression(mod, name):
    if name is None:
        return None
    return {"gzip": mod.Compression.Gzip, "deflate": mod.Compression.Deflate}[name]


# ---------------------------------------------------------------- clients

class AioDriver:
    """A grpc.aio / grpcpy.aio channel: the generated stub's calls as they are."""
    sync = False

    def __init__(self, facade, pb, address, options=None, compression_name=None):
        self.facade = facade
        self.api, self.top = facade_modules(facade)
        self.channel = self.api.insecure_channel(address, options=options,
                                                 compression=compression(self.top, compression_name))
        self.stub = pb.test_pb2_grpc.TestServiceStub(self.channel)
        self.EOF = self.api.EOF

    async def close(self):
        await self.channel.close()

    async def unary(self, name, request, **kw):
        return await getattr(self.stub, name)(request, **kw)

    def unary_call(self, name, request, **kw):
        return getattr(self.stub, name)(request, **kw)

    def server_stream(self, name, request, **kw):
        return getattr(self.stub, name)(request, **kw)

    async def client_stream(self, name, requests, **kw):
        return await getattr(self.stub, name)(iter(requests), **kw)

    def bidi(self, name, requests=None, **kw):
        if requests is not None:
            return getattr(self.stub, name)(iter(requests), **kw)
        return getattr(self.stub, name)(**kw)

    async def raw_unary(self, path, payload):
        return await self.channel.unary_unary(path)(payload)

    async def expect_cancelled(self, call):
        """grpc.aio: awaiting (unary) or reading (streams) a cancelled call
        raises asyncio.CancelledError."""
        with pytest.raises(asyncio.CancelledError):
            if hasattr(call, "read"):
                await call.read()
            else:
                await call


def _settle(target, future):
    if target.done():
        return
    try:
        target.set_result(future.result(timeout=0))
    except BaseException as exc:  # the RpcError / FutureCancelledError itself
        target.set_exception(exc)


def _bridge(loop, future):
    """A grpc.Future -> an asyncio future settled on `loop` when it is done."""
    target = loop.create_future()

    def done(_):
        try:
            loop.call_soon_threadsafe(_settle, target, future)
        except RuntimeError:  # the loop closed first: nobody waits any more
            pass
    future.add_done_callback(done)
    return target


class _SyncCall:
    """Common part of the sync call wrappers: the rendezvous (a grpc.Call and,
    for futures and streams, also grpc.Future / iterator) and accessors run in
    the driver's threads."""

    def __init__(self, driver, call):
        self._driver = driver
        self._call = call

    def _blocking(self, fn, *args):
        return asyncio.get_running_loop().run_in_executor(self._driver.pool, fn, *args)

    async def initial_metadata(self):
        return await self._blocking(self._call.initial_metadata)

    async def trailing_metadata(self):
        return await self._blocking(self._call.trailing_metadata)

    async def code(self):
        return await self._blocking(self._call.code)

    async def details(self):
        return await self._blocking(self._call.details)

    def cancel(self):
        return self._call.cancel()

    def cancelled(self):
        return self._call.cancelled()


class _SyncUnaryCall(_SyncCall):
    """`stub.Method.future(...)`: awaiting gives the response."""

    def __init__(self, driver, call):
        super().__init__(driver, call)
        self._result = _bridge(asyncio.get_running_loop(), call)

    def __await__(self):
        return self._result.__await__()


class _SyncStreamCall(_SyncCall):
    """A response iterator (server streaming, bidi): reads in a thread; for
    bidi also a queue the request generator takes its messages from."""
    _DONE = object()

    def __init__(self, driver, call_factory, requests=None):
        self._queue = None
        if requests is None:
            self._queue = queue.Queue()
            requests = self._requests()
            driver.open_queues.append(self._queue)
        super().__init__(driver, call_factory(requests))

    def _requests(self):
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            yield item

    async def write(self, message):
        self._queue.put(message)

    async def done_writing(self):
        self._queue.put(self._DONE)

    def cancel(self):
        if self._queue is not None:
            self._queue.put(self._DONE)  # the request thread is not left waiting
        return self._call.cancel()

    async def read(self):
        return await self._blocking(next, self._call, self._driver.EOF)

    def __aiter__(self):
        return self

    async def __anext__(self):
        message = await self.read()
        if message is self._driver.EOF:
            raise StopAsyncIteration
        return message


class SyncDriver:
    """A grpc / grpcpy sync channel with the same (generated) stub."""
    sync = True
    EOF = object()

    def __init__(self, facade, pb, address, options=None, compression_name=None):
        self.facade = facade
        self.api, self.top = facade_modules(facade)
        self.channel = self.api.insecure_channel(address, options=options,
                                                 compression=compression(self.top, compression_name))
        self.stub = pb.test_pb2_grpc.TestServiceStub(self.channel)
        # blocking reads and accessors; sized for a handful of streams at once
        self.pool = concurrent.futures.ThreadPoolExecutor(16, thread_name_prefix="sync-driver")
        self.open_queues = []

    async def close(self):
        for q in self.open_queues:
            q.put(_SyncStreamCall._DONE)
        self.channel.close()
        await asyncio.get_running_loop().run_in_executor(None, self.pool.shutdown)

    async def unary(self, name, request, **kw):
        return await self.unary_call(name, request, **kw)

    def unary_call(self, name, request, **kw):
        return _SyncUnaryCall(self, getattr(self.stub, name).future(request, **kw))

    def server_stream(self, name, request, **kw):
        multi = getattr(self.stub, name)
        return _SyncStreamCall(self, lambda _: multi(request, **kw), requests=())

    async def client_stream(self, name, requests, **kw):
        return await _SyncUnaryCall(self, getattr(self.stub, name).future(iter(requests), **kw))

    def bidi(self, name, requests=None, **kw):
        multi = getattr(self.stub, name)
        return _SyncStreamCall(self, lambda reqs: multi(iter(reqs), **kw), requests=requests)

    async def raw_unary(self, path, payload):
        return await _SyncUnaryCall(self, self.channel.unary_unary(path).future(payload))

    async def expect_cancelled(self, call):
        """grpc (sync): result() of a cancelled future raises
        FutureCancelledError; the next read of a cancelled stream raises the
        call itself, an RpcError with code CANCELLED."""
        if isinstance(call, _SyncUnaryCall):
            with pytest.raises(self.top.FutureCancelledError):
                await call
        else:
            with pytest.raises(RPC_ERRORS) as info:
                await call.read()
            assert info.value.code().name == "CANCELLED"


def client_driver(facade, *args, **kw):
    return (SyncDriver if facade.endswith("-sync") else AioDriver)(facade, *args, **kw)


# ---------------------------------------------------------------- servers

class AioServer:
    def __init__(self, facade, options=None, compression_name=None, interceptors=None):
        self.api, self.top = facade_modules(facade)
        self.server = self.api.server(options=options, interceptors=interceptors,
                                      compression=compression(self.top, compression_name))

    def add_insecure_port(self, address):
        return self.server.add_insecure_port(address)

    async def start(self):
        await self.server.start()

    async def stop(self, grace):
        await self.server.stop(grace)


class SyncServer:
    # Enough handler threads for the scenarios that hold several calls in
    # their handlers at once; more calls than this wait in the pool's queue.
    WORKERS = 16

    def __init__(self, facade, options=None, compression_name=None, interceptors=None):
        self.api, self.top = facade_modules(facade)
        self.pool = concurrent.futures.ThreadPoolExecutor(self.WORKERS, thread_name_prefix="sync-server")
        self.server = self.api.server(self.pool, options=options, interceptors=interceptors,
                                      compression=compression(self.top, compression_name))

    def add_insecure_port(self, address):
        return self.server.add_insecure_port(address)

    async def start(self):
        self.server.start()

    async def stop(self, grace):
        stopped = self.server.stop(grace)
        await asyncio.get_running_loop().run_in_executor(None, stopped.wait)
        await asyncio.get_running_loop().run_in_executor(None, self.pool.shutdown)


def server_driver(facade, *args, **kw):
    return (SyncServer if facade.endswith("-sync") else AioServer)(facade, *args, **kw)
