"""A finished call's objects are freed by reference counting, not left in
reference cycles for the cycle collector: at thousands of calls a second,
cycles would make the collector's work grow with the call rate. grpcpy's
own memory behaviour, so grpcpy on both sides."""
import asyncio
import gc
import weakref

import grpcpy
import grpcpy.aio


def _server_with(handler):
    server = grpcpy.aio.server()
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "t.S", {"M": grpcpy.unary_unary_rpc_method_handler(handler)}),))
    return server, server.add_insecure_port("127.0.0.1:0")


def test_finished_unary_calls_are_freed_without_the_cycle_collector(loop_kind):
    from .harness import run
    contexts = []

    async def handler(request, context):
        contexts.append(weakref.ref(context))
        if request == b"wait":
            await asyncio.sleep(0.001)
        return request

    async def scenario():
        server, port = _server_with(handler)
        await server.start()
        try:
            async with grpcpy.aio.insecure_channel("127.0.0.1:%d" % port) as channel:
                method = channel.unary_unary("/t.S/M")
                assert await method(b"warm", timeout=5) == b"warm"
                gc.collect()
                gc.disable()
                try:
                    calls = []
                    for request in (b"now", b"wait", b"now", b"wait"):
                        call = method(request, timeout=5)
                        assert await call == request
                        calls.append(weakref.ref(call))
                        del call
                    await asyncio.sleep(0.01)     # the handlers' tasks finish
                    alive_calls = [ref for ref in calls if ref() is not None]
                    alive_contexts = [ref for ref in contexts[1:] if ref() is not None]
                finally:
                    gc.enable()
        finally:
            await server.stop(None)
        assert alive_calls == [], "client call objects kept alive by cycles"
        assert alive_contexts == [], "servicer contexts kept alive by cycles"
    run(scenario())
