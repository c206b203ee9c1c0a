"""grpc.aio-only call behaviour (awaiting twice, the write side of request
streams), for grpc.aio and grpcpy.aio against grpcio's sync server. The
scenarios are coroutines run on the facade's loop."""
import asyncio

from .drivers import Behaviour, known_gap, register

OK_PATH = register(Behaviour("unary_unary", [("return", b"r")]))
NOT_FOUND = register(Behaviour("unary_unary", [("abort", "NOT_FOUND", "nope")]))
ECHO = register(Behaviour("stream_stream", [("read_all",), ("yield", b"done")]))
SUM = register(Behaviour("stream_unary", [("read_all",), ("return", b"sum")]))


def test_await_a_finished_unary_call_twice(request, aio_client):
    async def scenario():
        call = aio_client.multicallable("unary_unary", OK_PATH)(b"q", timeout=5)
        first = await call
        second = await call
        return first, second, await call.code()
    assert aio_client.run(scenario) == (b"r", b"r", aio_client.code("OK"))


def test_await_a_failed_unary_call_twice(aio_client):
    async def scenario():
        call = aio_client.multicallable("unary_unary", NOT_FOUND)(b"q", timeout=5)
        errors = []
        for _ in range(2):
            try:
                await call
            except aio_client.api.AioRpcError as err:
                errors.append((err.code().name, err.details()))
        return errors
    assert aio_client.run(scenario) == [("NOT_FOUND", "nope")] * 2


def test_await_a_stream_unary_call_twice(request, aio_client):
    async def scenario():
        call = aio_client.multicallable("stream_unary", SUM)(timeout=5)
        await call.write(b"1")
        await call.done_writing()
        return await call, await call
    assert aio_client.run(scenario) == (b"sum", b"sum")


def test_write_after_done_writing(request, aio_client):
    async def scenario():
        call = aio_client.multicallable("stream_stream", ECHO)(timeout=5)
        await call.write(b"1")
        await call.done_writing()
        try:
            await call.write(b"2")
        except Exception as exc:  # noqa: BLE001 - the type is the answer
            raised = exc
        else:
            raised = None
        rest = [m async for m in call]
        return type(raised), rest, (await call.code()).name
    assert aio_client.run(scenario) == (asyncio.InvalidStateError, [b"done"], "OK")


def test_done_writing_twice(aio_client):
    async def scenario():
        call = aio_client.multicallable("stream_stream", ECHO)(timeout=5)
        await call.done_writing()
        await call.done_writing()  # a no-op the second time
        return [m async for m in call], (await call.code()).name
    assert aio_client.run(scenario) == ([b"done"], "OK")


def test_write_after_the_call_ended(request, aio_client):
    path = register(Behaviour("stream_stream", [("abort", "ABORTED", "stop")]))

    async def scenario():
        call = aio_client.multicallable("stream_stream", path)(timeout=5)
        code = await call.code()
        try:
            await call.write(b"late")
        except aio_client.api.AioRpcError as err:
            return code.name, "AioRpcError", err.code().name
        except Exception as exc:  # noqa: BLE001
            return code.name, type(exc).__name__, None
        return code.name, None, None
    assert aio_client.run(scenario) == ("ABORTED", "InvalidStateError", None)


def test_iterating_and_reading_are_exclusive(request, aio_client):
    # grpc.aio forbids mixing read() with async iteration on one call
    path = register(Behaviour("unary_stream", [("yield", b"a"), ("yield", b"b")]))

    async def scenario():
        call = aio_client.multicallable("unary_stream", path)(b"q", timeout=5)
        first = await call.read()
        try:
            async for _ in call:
                pass
        except Exception as exc:  # noqa: BLE001
            return first, type(exc).__name__
        return first, None
    assert aio_client.run(scenario) == (b"a", "UsageError")


def test_wait_for_connection(request, aio_client):
    """None once the call is under way; the call's AioRpcError when it has
    failed (grpc.aio, unary and streaming calls)."""
    async def scenario():
        results = []
        call = aio_client.multicallable("unary_unary", OK_PATH)(b"q", timeout=5)
        results.append(await call.wait_for_connection())
        results.append(await call)
        for kind in ("unary_unary", "unary_stream"):
            call = aio_client.multicallable(kind, NOT_FOUND)(b"q", timeout=5)
            try:
                results.append(await call.wait_for_connection())
            except aio_client.api.AioRpcError as err:
                results.append(err.code().name)
        return results
    assert aio_client.run(scenario) == [None, b"r", "NOT_FOUND", "NOT_FOUND"]
