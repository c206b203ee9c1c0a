"""Sync and asyncio facades of grpcpy talking to each other in one process:
a sync client against a grpcpy.aio server, and a grpcpy.aio client against a
sync server. The asyncio side runs on its own loop in its own thread."""
import asyncio
import threading

import pytest

import grpcpy
import grpcpy.aio

from .conftest import path, standard_handlers


def _new_loop():
    """uvloop's loop when it is installed (grpcpy.aio.run's choice)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class LoopThread:
    def __init__(self):
        self.loop = _new_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def loop_thread():
    lt = LoopThread()
    yield lt
    lt.close()


def _aio_handlers():
    async def unary(request, context):
        await context.send_initial_metadata((("im", "1"),))
        context.set_trailing_metadata((("tm", "2"),))
        if request == b"fail":
            await context.abort(grpcpy.StatusCode.INVALID_ARGUMENT, "bad request")
        return request

    async def stream(request, context):
        for i in range(int(request)):
            yield str(i).encode()

    async def collect(request_iterator, context):
        return b",".join([r async for r in request_iterator])

    async def echo(request_iterator, context):
        async for r in request_iterator:
            yield r

    return {
        "Unary": grpcpy.unary_unary_rpc_method_handler(unary),
        "Stream": grpcpy.unary_stream_rpc_method_handler(stream),
        "Collect": grpcpy.stream_unary_rpc_method_handler(collect),
        "Echo": grpcpy.stream_stream_rpc_method_handler(echo),
    }


def test_sync_client_against_aio_server(loop_thread):
    async def start():
        server = grpcpy.aio.server()
        server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler("t.S", _aio_handlers()),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = loop_thread.run(start())
    try:
        with grpcpy.insecure_channel("127.0.0.1:%d" % port) as channel:
            response, call = channel.unary_unary(path("Unary")).with_call(b"hi", timeout=5)
            assert response == b"hi"
            assert ("im", "1") in [tuple(m) for m in call.initial_metadata()]
            assert ("tm", "2") in [tuple(m) for m in call.trailing_metadata()]
            assert list(channel.unary_stream(path("Stream"))(b"3", timeout=5)) == [b"0", b"1", b"2"]
            assert channel.stream_unary(path("Collect"))(iter([b"a", b"b"]), timeout=5) == b"a,b"
            assert list(channel.stream_stream(path("Echo"))(iter([b"x", b"y"]), timeout=5)) == [b"x", b"y"]
            with pytest.raises(grpcpy.RpcError) as info:
                channel.unary_unary(path("Unary"))(b"fail", timeout=5)
            assert info.value.code() == grpcpy.StatusCode.INVALID_ARGUMENT
            assert info.value.details() == "bad request"
            assert ("tm", "2") in [tuple(m) for m in info.value.trailing_metadata()]
    finally:
        loop_thread.run(server.stop(None))


def test_aio_client_against_sync_server(loop_thread, serve, release):
    running = serve(grpcpy, standard_handlers(grpcpy, release))

    async def client():
        async with grpcpy.aio.insecure_channel(running.target) as channel:
            call = channel.unary_unary(path("Unary"))(b"hi", timeout=5)
            assert await call == b"hi"
            assert ("im", "1") in [tuple(m) for m in await call.initial_metadata()]
            assert ("tm", "2") in [tuple(m) for m in await call.trailing_metadata()]
            assert [r async for r in channel.unary_stream(path("Stream"))(b"3", timeout=5)] == [b"0", b"1", b"2"]
            assert await channel.stream_unary(path("Collect"))(iter([b"a", b"b"]), timeout=5) == b"a,b"
            responses = channel.stream_stream(path("Echo"))(iter([b"x", b"y"]), timeout=5)
            assert [r async for r in responses] == [b"x", b"y"]
            with pytest.raises(grpcpy.aio.AioRpcError) as info:
                await channel.unary_unary(path("Unary"))(b"fail", timeout=5)
            assert info.value.code() == grpcpy.StatusCode.INVALID_ARGUMENT
            assert info.value.details() == "bad request"
            assert isinstance(info.value, grpcpy.RpcError)
            assert ("tm", "2") in [tuple(m) for m in info.value.trailing_metadata()]

    loop_thread.run(client())

