"""Large messages arrive intact: both APIs, plaintext and TLS, against grpcio
and against grpcpy, several connections at once.

Large messages take the paths built for throughput: the output cut into
64 KiB pieces (written piece by piece over TLS), the read buffer that all
connections of an event loop share, the sync API's TLS record pump. Sizes
straddle the frame size (16 KiB), the output piece (64 KiB) and the 1 MiB
mark; every payload is random, so a piece written twice, dropped or read
from another connection's bytes shows as a mismatch."""
import asyncio
import hashlib
import os
import threading

import grpc
import grpc.aio
import pytest

import grpcpy
import grpcpy.aio

from ..security.certs import material

SIZES = [0, 1, 16 * 1024 - 5, 16 * 1024, 64 * 1024 + 1, (1 << 20) + 7, 3 << 20]
OPTIONS = [("grpc.max_receive_message_length", 8 << 20), ("grpc.max_send_message_length", 8 << 20)]
PAIRS = [("grpcpy", "grpcpy"), ("grpcpy", "grpcio"), ("grpcio", "grpcpy")]
IDS = ["grpcpy-to-grpcpy", "grpcpy-to-grpcio", "grpcio-to-grpcpy"]


def mods(impl):
    return (grpc, grpc.aio) if impl == "grpcio" else (grpcpy, grpcpy.aio)


def digest(data):
    return hashlib.sha256(data).digest()


# -- asyncio ---------------------------------------------------------------------------------

def aio_handlers(mod):
    async def echo(request, context):
        return request

    async def digests(request_iterator, context):
        async for request in request_iterator:
            yield digest(request)
            yield request

    return mod.method_handlers_generic_handler("L", {
        "Echo": mod.unary_unary_rpc_method_handler(echo),
        "Digests": mod.stream_stream_rpc_method_handler(digests),
    })


def run_aio(coro, loop_kind):
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(asyncio.wait_for(coro, 60))


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "tls"])
@pytest.mark.parametrize("loop_kind", ["uvloop", "asyncio"])
@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
def test_aio_large_messages(pair, loop_kind, tls):
    async def scenario():
        smod, samod = mods(pair[1])
        server = samod.server(options=OPTIONS)
        server.add_generic_rpc_handlers((aio_handlers(smod),))
        m = material()
        if tls:
            port = server.add_secure_port("127.0.0.1:0", smod.ssl_server_credentials([m["server"]]))
        else:
            port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        cmod, camod = mods(pair[0])
        target = "localhost:%d" % port

        def channel():
            if tls:
                return camod.secure_channel(target, cmod.ssl_channel_credentials(m["ca"]), options=OPTIONS)
            return camod.insecure_channel(target, options=OPTIONS)

        async def client(seed):
            payloads = [os.urandom(n) for n in SIZES]
            async with channel() as ch:
                echo = ch.unary_unary("/L/Echo")
                for payload in payloads:
                    assert await echo(payload) == payload
                # several calls in flight on one connection
                got = await asyncio.gather(*(echo(p) for p in payloads))
                assert got == payloads
                call = ch.stream_stream("/L/Digests")()
                for payload in payloads[::-1]:
                    await call.write(payload)
                    assert await call.read() == digest(payload)
                    assert await call.read() == payload
                await call.done_writing()
                assert await call.read() is camod.EOF
            return seed

        # three connections at once on one loop: they share its read buffer
        assert sorted(await asyncio.gather(*(client(i) for i in range(3)))) == [0, 1, 2]
        await server.stop(None)

    run_aio(scenario(), loop_kind)


# -- threads ---------------------------------------------------------------------------------

def sync_handlers(mod):
    def echo(request, context):
        return request

    def digests(request_iterator, context):
        for request in request_iterator:
            yield digest(request)
            yield request

    return mod.method_handlers_generic_handler("L", {
        "Echo": mod.unary_unary_rpc_method_handler(echo),
        "Digests": mod.stream_stream_rpc_method_handler(digests),
    })


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "tls"])
@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
def test_sync_large_messages(pair, tls):
    from concurrent import futures
    smod, _ = mods(pair[1])
    cmod, _ = mods(pair[0])
    server = smod.server(futures.ThreadPoolExecutor(8), options=OPTIONS)
    server.add_generic_rpc_handlers((sync_handlers(smod),))
    m = material()
    if tls:
        port = server.add_secure_port("127.0.0.1:0", smod.ssl_server_credentials([m["server"]]))
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    target = "localhost:%d" % port
    errors = []

    def client():
        try:
            payloads = [os.urandom(n) for n in SIZES]
            if tls:
                ch = cmod.secure_channel(target, cmod.ssl_channel_credentials(m["ca"]), options=OPTIONS)
            else:
                ch = cmod.insecure_channel(target, options=OPTIONS)
            with ch:
                echo = ch.unary_unary("/L/Echo")
                for payload in payloads:
                    assert echo(payload, timeout=30) == payload
                replies = list(ch.stream_stream("/L/Digests")(iter(payloads), timeout=30))
                expected = []
                for payload in payloads:
                    expected += [digest(payload), payload]
                assert replies == expected
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    try:
        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        assert not any(t.is_alive() for t in threads)
        if errors:
            raise errors[0]
    finally:
        server.stop(None)
