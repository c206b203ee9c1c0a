"""Server life cycle: start, stop with and without grace, termination."""
import asyncio

import grpc
import pytest

from .harness import GRPCIO, generic_handler, method, run, until


def _table(entered):
    async def slow(request, context):
        entered.append(context)
        await asyncio.sleep(10)
        return b"late"

    async def echo(request, context):
        return request

    return {"Slow": ("uu", slow), "Echo": ("uu", echo)}


async def _start(impl, entered, address="127.0.0.1:0"):
    server = impl.aio.server()
    server.add_generic_rpc_handlers((generic_handler(impl.mod, _table(entered)),))
    port = server.add_insecure_port(address)
    await server.start()
    return server, port


def test_wait_for_termination_reports_timeout(impl):
    async def scenario():
        server, _ = await _start(impl, [])
        # grpc.aio returns True when the wait timed out
        assert await server.wait_for_termination(0.05) is True
        waiter = asyncio.ensure_future(server.wait_for_termination())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        await server.stop(None)
        assert await asyncio.wait_for(waiter, 2) is False
        assert await server.wait_for_termination(0.05) is False
        assert await server.wait_for_termination() is False
    run(scenario())


def test_start_twice_and_after_stop(impl):
    async def scenario():
        server, port = await _start(impl, [])
        await server.start()        # grpc.aio: a no-op on a running server
        async with GRPCIO.aio.insecure_channel("127.0.0.1:%d" % port) as channel:
            assert await method(channel, "uu", "Echo")(b"x", timeout=5) == b"x"
        await server.stop(None)
        with pytest.raises(impl.aio.UsageError) as info:
            await server.start()
        assert str(info.value) == "Server not in ready state"
        await server.stop(None)     # stopping again is harmless
    run(scenario())


def test_add_port_after_start(impl):
    if impl.name == "grpcio":
        pytest.skip("grpcio returns a port number that never serves (a call to it hangs until its deadline)")

    async def scenario():
        server, _ = await _start(impl, [])
        try:
            with pytest.raises(impl.aio.UsageError):
                server.add_insecure_port("127.0.0.1:0")
        finally:
            await server.stop(None)
    run(scenario())


@pytest.mark.parametrize("grace", [None, 0.2])
def test_stop_cuts_off_calls_in_flight(impl, grace):
    entered = []
    ended = []

    async def scenario():
        server, port = await _start(impl, entered)
        async with GRPCIO.aio.insecure_channel("127.0.0.1:%d" % port) as channel:
            call = method(channel, "uu", "Slow")(b"", timeout=5)
            await until(lambda: entered)
            entered[0].add_done_callback(lambda ctx: ended.append(ctx))
            loop = asyncio.get_running_loop()
            started = loop.time()
            await server.stop(grace)
            took = loop.time() - started
            assert took < (grace or 0) + 0.5
            if grace:
                assert took >= grace * 0.9
            with pytest.raises(grpc.RpcError) as info:
                await call
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            await until(lambda: ended)
            assert ended[0].done() is True or impl.name == "grpcio"   # grpcio's context never says done
    run(scenario())


def test_grace_lets_short_calls_finish(impl):
    async def quick_then_done(request, context):
        await asyncio.sleep(0.1)
        return b"finished"

    async def scenario():
        server = impl.aio.server()
        server.add_generic_rpc_handlers((generic_handler(impl.mod, {"Q": ("uu", quick_then_done)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        async with GRPCIO.aio.insecure_channel("127.0.0.1:%d" % port) as channel:
            call = method(channel, "uu", "Q")(b"", timeout=5)
            await asyncio.sleep(0.03)
            await server.stop(2)
            assert await call == b"finished"
    run(scenario())


def test_new_call_after_stop_does_not_hang(impl):
    async def scenario():
        server, port = await _start(impl, [])
        channel = GRPCIO.aio.insecure_channel("127.0.0.1:%d" % port)
        try:
            assert await method(channel, "uu", "Echo")(b"warm", timeout=5) == b"warm"
            stopping = asyncio.ensure_future(server.stop(0.5))
            await asyncio.sleep(0.05)
            loop = asyncio.get_running_loop()
            started = loop.time()
            # the connection was told to go away: a new call does not land on
            # it; it reconnects, finds nobody listening and fails fast
            with pytest.raises(grpc.RpcError) as info:
                await method(channel, "uu", "Echo")(b"x", timeout=3)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert loop.time() - started < 1.0
            await stopping
        finally:
            await channel.close()
    run(scenario())


def test_new_call_after_graceful_stop_reaches_a_restarted_server(impl):
    async def scenario():
        server, port = await _start(impl, [])
        options = (("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
                   ("grpc.max_reconnect_backoff_ms", 100))
        channel = GRPCIO.aio.insecure_channel("127.0.0.1:%d" % port, options=options)
        try:
            assert await method(channel, "uu", "Echo")(b"one", timeout=5) == b"one"
            await server.stop(0.5)
            server, _ = await _start(impl, [], address="127.0.0.1:%d" % port)
            assert await method(channel, "uu", "Echo")(b"two", timeout=5, wait_for_ready=True) == b"two"
        finally:
            await channel.close()
            await server.stop(None)
    run(scenario())
