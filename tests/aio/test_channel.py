"""grpc.aio.Channel: connectivity, targets, failures and reconnection (the
client call's own surface is in tests/facades, under every client facade).
The server is always grpcio's."""
import asyncio
import os
import socket
import uuid

import grpc
import pytest

from .harness import ECHO, GRPCIO, HAS_IPV6, RPC_ERRORS, generic_handler, method, run

BACKOFF = (("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
           ("grpc.max_reconnect_backoff_ms", 100))


async def _grpcio_server(address="127.0.0.1:0"):
    server = GRPCIO.aio.server()
    server.add_generic_rpc_handlers((generic_handler(grpc, ECHO),))
    port = server.add_insecure_port(address)
    await server.start()
    return server, port


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connectivity_states(impl):
    async def scenario():
        server, port = await _grpcio_server()
        channel = impl.aio.insecure_channel("127.0.0.1:%d" % port)
        try:
            assert channel.get_state().name == "IDLE"
            assert channel.get_state(try_to_connect=False).name == "IDLE"
            state = channel.get_state(try_to_connect=True)
            assert state.name in ("IDLE", "CONNECTING", "READY")
            if state.name != "READY":
                await asyncio.wait_for(channel.wait_for_state_change(state), 5)
                assert channel.get_state().name != state.name
            await asyncio.wait_for(channel.channel_ready(), 5)
            assert channel.get_state().name == "READY"
            assert await method(channel, "uu", "Echo")(b"x", timeout=5) == b"x"
        finally:
            await channel.close()
            await server.stop(None)
        assert channel.get_state().name == "SHUTDOWN"
    run(scenario())


def test_wait_for_state_change_wakes_on_server_loss(impl):
    async def scenario():
        server, port = await _grpcio_server()
        channel = impl.aio.insecure_channel("127.0.0.1:%d" % port, options=BACKOFF)
        try:
            await asyncio.wait_for(channel.channel_ready(), 5)
            waiter = asyncio.ensure_future(channel.wait_for_state_change(impl.mod.ChannelConnectivity.READY))
            await asyncio.sleep(0.02)
            assert not waiter.done()
            await server.stop(None)
            await asyncio.wait_for(waiter, 5)
            assert channel.get_state().name != "READY"
        finally:
            await channel.close()
    run(scenario())


def test_close_then_call_raises_usage_error(impl):
    async def scenario():
        server, port = await _grpcio_server()
        try:
            channel = impl.aio.insecure_channel("127.0.0.1:%d" % port)
            echo = method(channel, "uu", "Echo")
            assert await echo(b"x", timeout=5) == b"x"
            await channel.close()
            await channel.close()   # twice is harmless
            with pytest.raises(impl.aio.UsageError) as info:
                await echo(b"x", timeout=5)
            assert isinstance(info.value, impl.aio.BaseError)
            async with impl.aio.insecure_channel("127.0.0.1:%d" % port) as channel:
                assert await method(channel, "uu", "Echo")(b"y", timeout=5) == b"y"
            assert channel.get_state().name == "SHUTDOWN"
            with pytest.raises(impl.aio.UsageError):
                method(channel, "uu", "Echo")(b"z")
        finally:
            await server.stop(None)
    run(scenario())


def test_close_cancels_calls_in_flight(impl):
    async def slow(request, context):
        await asyncio.sleep(10)
        return b""

    async def scenario():
        server = GRPCIO.aio.server()
        server.add_generic_rpc_handlers((generic_handler(grpc, {"Slow": ("uu", slow)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            channel = impl.aio.insecure_channel("127.0.0.1:%d" % port)
            call = method(channel, "uu", "Slow")(b"", timeout=5)
            await asyncio.sleep(0.05)
            await channel.close()
            assert call.done()
            assert (await call.code()).name == "CANCELLED"
        finally:
            await server.stop(None)
    run(scenario())


@pytest.mark.parametrize("target", ["dns:///localhost:{port}", "dns:localhost:{port}", "localhost:{port}",
                                    "ipv4:127.0.0.1:{port}", "ipv6:[::1]:{port}", "127.0.0.1:{port}"])
def test_targets(impl, target):
    if "::1" in target and not HAS_IPV6:
        pytest.skip("no IPv6 loopback")

    async def scenario():
        server, port = await _grpcio_server("[::]:0" if HAS_IPV6 else "127.0.0.1:0")
        try:
            async with impl.aio.insecure_channel(target.format(port=port)) as channel:
                assert await method(channel, "uu", "Echo")(b"t", timeout=5) == b"t"
        finally:
            await server.stop(None)
    run(scenario())


@pytest.mark.parametrize("form", ["unix:", "unix://"])
def test_unix_target(impl, form):
    path = "/tmp/grpcpy-aio-ch-%s.sock" % uuid.uuid4().hex[:12]

    async def scenario():
        server, _ = await _grpcio_server("unix:" + path)
        try:
            async with impl.aio.insecure_channel(form + path) as channel:
                assert await method(channel, "uu", "Echo")(b"u", timeout=5) == b"u"
        finally:
            await server.stop(None)
    try:
        run(scenario())
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_nobody_listening(impl):
    port = _free_port()

    async def scenario():
        loop = asyncio.get_running_loop()
        async with impl.aio.insecure_channel("127.0.0.1:%d" % port) as channel:
            started = loop.time()
            with pytest.raises(RPC_ERRORS) as info:
                await method(channel, "uu", "Echo")(b"x", timeout=5)
            assert info.value.code().name == "UNAVAILABLE"
            assert loop.time() - started < 1.0
            assert channel.get_state().name == "TRANSIENT_FAILURE"
            started = loop.time()
            with pytest.raises(RPC_ERRORS) as info:
                await method(channel, "uu", "Echo")(b"x", timeout=0.3, wait_for_ready=True)
            assert info.value.code().name == "DEADLINE_EXCEEDED"
            assert 0.25 < loop.time() - started < 1.0
    run(scenario())


def test_reconnects_to_a_restarted_server(impl):
    async def scenario():
        server, port = await _grpcio_server()
        channel = impl.aio.insecure_channel("127.0.0.1:%d" % port, options=BACKOFF)
        try:
            echo = method(channel, "uu", "Echo")
            assert await echo(b"1", timeout=5) == b"1"
            await server.stop(None)
            with pytest.raises(RPC_ERRORS) as info:
                await echo(b"2", timeout=5)
            assert info.value.code().name == "UNAVAILABLE"
            server, _ = await _grpcio_server("127.0.0.1:%d" % port)
            # wait_for_ready rides out the backoff; without it a call succeeds
            # once the channel has reconnected on its own
            assert await echo(b"3", timeout=5, wait_for_ready=True) == b"3"
            assert await echo(b"4", timeout=5) == b"4"
        finally:
            await channel.close()
            await server.stop(None)
    run(scenario())


def test_reconnects_without_wait_for_ready(impl):
    async def scenario():
        server, port = await _grpcio_server()
        channel = impl.aio.insecure_channel("127.0.0.1:%d" % port, options=BACKOFF)
        loop = asyncio.get_running_loop()
        try:
            echo = method(channel, "uu", "Echo")
            assert await echo(b"1", timeout=5) == b"1"
            await server.stop(None)
            server, _ = await _grpcio_server("127.0.0.1:%d" % port)
            end = loop.time() + 3
            while True:
                try:
                    assert await echo(b"again", timeout=1) == b"again"
                    break
                except RPC_ERRORS as exc:
                    assert exc.code().name == "UNAVAILABLE"
                    assert loop.time() < end, "the channel did not reconnect"
                    await asyncio.sleep(0.02)
        finally:
            await channel.close()
            await server.stop(None)
    run(scenario())
