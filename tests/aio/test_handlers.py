"""Handler shapes grpc.aio accepts: plain functions (run off the event
loop), coroutines that use context.read()/write(), and handlers that raise."""
import concurrent.futures
import logging
import threading

import grpc
import pytest

from .harness import run, serving


def _sync_table(seen):
    def uu(request, context):
        seen.append(threading.current_thread())
        return request + b"!"

    def us(request, context):
        for i in range(3):
            seen.append(threading.current_thread())
            yield request + bytes([48 + i])

    def su(request_iterator, context):
        seen.append(threading.current_thread())
        return b"+".join(request_iterator)

    def ss(request_iterator, context):
        for request in request_iterator:
            seen.append(threading.current_thread())
            yield request.upper()

    return {"UU": ("uu", uu), "US": ("us", us), "SU": ("su", su), "SS": ("ss", ss)}


def test_sync_handlers_run_off_the_loop(impl):
    seen = []

    async def scenario():
        loop_thread = threading.get_ident()
        async with serving(impl, _sync_table(seen)) as s:
            assert await s.call("uu", "UU")(b"a", timeout=5) == b"a!"
            assert [r async for r in s.call("us", "US")(b"b", timeout=5)] == [b"b0", b"b1", b"b2"]
            assert await s.call("su", "SU")(iter([b"x", b"y", b"z"]), timeout=5) == b"x+y+z"
            call = s.call("ss", "SS")(timeout=5)
            for word in (b"one", b"two"):
                await call.write(word)
                assert await call.read() == word.upper()
            await call.done_writing()
            assert await call.read() == grpc.aio.EOF
            assert (await call.code()) == grpc.StatusCode.OK
        assert seen and loop_thread not in [t.ident for t in seen]
    run(scenario())


def test_sync_handlers_use_the_migration_thread_pool(impl):
    seen = []

    async def scenario():
        with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="migration") as pool:
            async with serving(impl, _sync_table(seen), migration_thread_pool=pool) as s:
                assert await s.call("uu", "UU")(b"a", timeout=5) == b"a!"
                assert len([r async for r in s.call("us", "US")(b"b", timeout=5)]) == 3
                assert await s.call("su", "SU")(iter([b"x"]), timeout=5) == b"x"
                assert [r async for r in s.call("ss", "SS")(iter([b"q"]), timeout=5)] == [b"Q"]
        names = {t.name for t in seen}
        assert len(seen) == 6 and names and all(n.startswith("migration") for n in names), names
    run(scenario())


def test_coroutine_handlers_with_read_and_write(impl):
    EOF = impl.aio.EOF

    async def us(request, context):
        for i in range(3):
            await context.write(request * (i + 1))

    async def su(request_iterator, context):
        parts = []
        while True:
            message = await context.read()
            if message is EOF:
                break
            parts.append(message)
        return b"|".join(parts)

    async def ss(request_iterator, context):
        while True:
            message = await context.read()
            if message is EOF:
                break
            await context.write(message[::-1])
        await context.write(b"end")

    table = {"US": ("us", us), "SU": ("su", su), "SS": ("ss", ss)}

    async def scenario():
        async with serving(impl, table) as s:
            assert [r async for r in s.call("us", "US")(b"q", timeout=5)] == [b"q", b"qq", b"qqq"]
            call = s.call("su", "SU")(timeout=5)
            for m in (b"1", b"22", b"333"):
                await call.write(m)
            await call.done_writing()
            assert await call == b"1|22|333"
            call = s.call("ss", "SS")(timeout=5)
            await call.write(b"abc")
            assert await call.read() == b"cba"
            await call.write(b"xy")
            assert await call.read() == b"yx"
            await call.done_writing()
            assert await call.read() == b"end"
            assert await call.read() == grpc.aio.EOF
            assert (await call.code()) == grpc.StatusCode.OK
    run(scenario())


class Boom(Exception):
    pass


@pytest.mark.parametrize("kind", ["uu", "us", "su", "ss"])
@pytest.mark.parametrize("style", ["async", "sync"])
def test_raising_handler_gives_unknown_and_is_logged(impl, kind, style, caplog):
    if style == "async":
        async def unary(request, context):
            raise Boom("went wrong")

        async def streaming(request, context):
            if kind == "ss":    # take the request first: grpcio's client
                async for _ in request:   # fails a write racing the status
                    pass
            yield b"first"
            raise Boom("went wrong")
    else:
        def unary(request, context):
            raise Boom("went wrong")

        def streaming(request, context):
            if kind == "ss":
                list(request)
            yield b"first"
            raise Boom("went wrong")

    fn = streaming if kind in ("us", "ss") else unary
    table = {"Bad": (kind, fn), "Echo": ("uu", lambda request, context: request)}

    async def scenario():
        async with serving(impl, table) as s:
            bad = s.call(kind, "Bad")
            request = b"r" if kind[0] == "u" else iter([b"r"])
            with caplog.at_level(logging.ERROR):
                if kind[1] == "u":
                    with pytest.raises(grpc.RpcError) as info:
                        await bad(request, timeout=5)
                else:
                    call = bad(request, timeout=5)
                    assert await call.read() == b"first"
                    with pytest.raises(grpc.RpcError) as info:
                        await call.read()
                assert info.value.code() == grpc.StatusCode.UNKNOWN
                if impl.name == "grpcio":
                    assert info.value.details() == "Unexpected %s: went wrong" % (Boom,)
                else:
                    # grpcpy has one rule for both APIs: grpcio sync's texts
                    # (grpcpy/_rpc/server.py)
                    what = "iterating responses" if kind[1] == "s" else "calling application"
                    assert info.value.details() == "Exception %s: went wrong" % (what,)
                # the server goes on serving
                assert await s.call("uu", "Echo")(b"next", timeout=5) == b"next"
        logged = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], Boom)]
        assert logged, caplog.text
        assert logged[0].levelno >= logging.ERROR
    run(scenario())


def test_code_set_before_raising_stands(impl):
    async def handler(request, context):
        context.set_code(impl.mod.StatusCode.NOT_FOUND)
        context.set_details("chosen first")
        raise Boom("then this")

    async def scenario():
        async with serving(impl, {"H": ("uu", handler)}) as s:
            with pytest.raises(grpc.RpcError) as info:
                await s.call("uu", "H")(b"", timeout=5)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            if impl.name == "grpcio":
                assert info.value.details() == "Unexpected %s: then this" % (Boom,)
            else:
                # grpcpy keeps the details the handler chose with its code
                assert info.value.details() == "chosen first"
    run(scenario())
