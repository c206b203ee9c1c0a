"""A client call owns the attempts that carry it (grpcpy/_rpc/client.py).
One attempt ships today; this pins the structure the retry work builds on,
under both facades."""
from concurrent import futures

import grpcpy
import grpcpy.aio
from grpcpy._rpc.client import Attempt
from grpcpy._sync._call import _Call


def _server():
    server = grpcpy.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "t.S", {"M": grpcpy.unary_unary_rpc_method_handler(lambda request, context: request)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def _check(call, channel_connections):
    attempts = call._attempts
    assert len(attempts) == 1 and isinstance(attempts[0], Attempt)
    attempt = attempts[0]
    assert attempt.number == 0
    assert attempt.conn is call._conn and attempt.core_call is call._core_call
    assert attempt.conn in channel_connections


def test_one_attempt_on_the_channels_connection_sync():
    server, port = _server()
    try:
        with grpcpy.insecure_channel("127.0.0.1:%d" % port) as channel:
            multicallable = channel.unary_unary("/t.S/M")
            _, view = multicallable.with_call(b"x", timeout=5)
            call = view._state
            assert isinstance(call, _Call)
            _check(call, list(channel._connections.values()))
    finally:
        server.stop(None)


def test_one_attempt_on_the_channels_connection_aio():
    server, port = _server()

    async def scenario():
        async with grpcpy.aio.insecure_channel("127.0.0.1:%d" % port) as channel:
            call = channel.unary_unary("/t.S/M")(b"x", timeout=5)
            assert await call == b"x"
            _check(call, list(channel._connections.values()))
            # a call that never got a connection has made no attempt
            closed = grpcpy.aio.insecure_channel("127.0.0.1:1")
            failed = closed.unary_unary("/t.S/M")(b"x", timeout=0.5)
            try:
                await failed
            except grpcpy.aio.AioRpcError:
                pass
            assert failed._attempts == []
            await closed.close()
    try:
        grpcpy.aio.run(scenario())
    finally:
        server.stop(None)
