"""grpcpy.testing: a real server and channel connected in memory, on both
facades. Everything the call layer does works over it (all four call
shapes, metadata, deadlines, cancellation, flow control with large
messages, status details), and the connection opens no socket and no port."""
import asyncio
import os
import threading

import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2

import grpcpy
import grpcpy.aio
import grpcpy.status
import grpcpy.testing
import grpcpy.testing.aio

BIG = 3 * 1024 * 1024 + 7          # beyond the default flow-control windows


def _socket_fds():
    """This process's open sockets and eventfds."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue
        if target.startswith("socket:") or "eventfd" in target:
            out.append(target)
    return out


def _rich():
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="quota")
    status.details.add().Pack(error_details_pb2.QuotaFailure(violations=[
        error_details_pb2.QuotaFailure.Violation(subject="user:1", description="daily limit")]))
    return status


# -- sync ----------------------------------------------------------------------------------------

class SyncService:
    def __init__(self):
        self.started = threading.Event()
        self.cancelled = threading.Event()

    def echo(self, request, context):
        md = dict(context.invocation_metadata())
        context.send_initial_metadata((("seen", md.get("who", "")),))
        context.set_trailing_metadata((("peer", context.peer()),))
        if request == b"rich":
            context.abort_with_status(grpcpy.status.to_status(_rich()))
        if request == b"big":
            return b"x" * BIG
        return b"echo:" + request

    def wait(self, request, context):
        # until the client's deadline or cancellation ends the call
        done = threading.Event()
        context.add_callback(done.set)
        self.started.set()
        if not done.wait(10):
            return b"not ended"
        self.cancelled.set()
        return b"ended"

    def count(self, request, context):
        for i in range(int(request)):
            yield str(i).encode()

    def total(self, requests, context):
        return str(sum(len(r) for r in requests)).encode()

    def chat(self, requests, context):
        for r in requests:
            yield r.upper()

    def handler(self):
        return grpcpy.method_handlers_generic_handler("t.Svc", {
            "Echo": grpcpy.unary_unary_rpc_method_handler(self.echo),
            "Wait": grpcpy.unary_unary_rpc_method_handler(self.wait),
            "Count": grpcpy.unary_stream_rpc_method_handler(self.count),
            "Total": grpcpy.stream_unary_rpc_method_handler(self.total),
            "Chat": grpcpy.stream_stream_rpc_method_handler(self.chat),
        })


def test_sync_pair_every_shape_metadata_and_status():
    service = SyncService()
    grpcpy.server  # noqa: B018  (the loop and its wake-up pair exist before we count)
    with grpcpy.testing.server_and_channel(service.handler()) as (server, channel):
        before = _socket_fds()
        out = grpcpy.testing.invoke(channel.unary_unary("/t.Svc/Echo"), b"hi", metadata=(("who", "me"),),
                                    timeout=10)
        assert out.ok and out.response == b"echo:hi"
        assert dict(out.initial_metadata)["seen"] == "me"
        assert dict(out.trailing_metadata)["peer"].startswith("memory:")
        assert grpcpy.testing.invoke(channel.unary_stream("/t.Svc/Count"), b"4").responses == \
            [b"0", b"1", b"2", b"3"]
        assert grpcpy.testing.invoke(channel.stream_unary("/t.Svc/Total"), iter([b"ab", b"cde"])).response == b"5"
        assert grpcpy.testing.invoke(channel.stream_stream("/t.Svc/Chat"), iter([b"a", b"b"])).responses == \
            [b"A", b"B"]
        big = grpcpy.testing.invoke(channel.unary_unary("/t.Svc/Echo"), b"big", timeout=10)
        assert big.ok and len(big.response) == BIG
        rich = grpcpy.testing.invoke(channel.unary_unary("/t.Svc/Echo"), b"rich", timeout=10)
        assert rich.termination()[2:] == (grpcpy.StatusCode.RESOURCE_EXHAUSTED, "quota")
        assert grpcpy.status.from_call(_Call(rich)) == _rich()
        missing = grpcpy.testing.invoke(channel.unary_unary("/t.Svc/Nope"), b"", timeout=10)
        assert (missing.code, missing.details) == (grpcpy.StatusCode.UNIMPLEMENTED, "Method not found!")
        # the whole conversation used no new socket (an eventfd per end only)
        # (only what appeared counts: other threads of the test process may
        # close their own sockets meanwhile)
        assert [fd for fd in set(_socket_fds()) - set(before) if fd.startswith("socket:")] == []


class _Call:
    """An Outcome seen through the Call accessors from_call reads."""

    def __init__(self, outcome):
        self._o = outcome

    def code(self):
        return self._o.code

    def details(self):
        return self._o.details

    def trailing_metadata(self):
        return self._o.trailing_metadata


def test_sync_pair_deadline_and_cancellation():
    service = SyncService()
    with grpcpy.testing.server_and_channel(service.handler()) as (server, channel):
        out = grpcpy.testing.invoke(channel.unary_unary("/t.Svc/Wait"), b"", timeout=0.2)
        assert out.code is grpcpy.StatusCode.DEADLINE_EXCEEDED
        assert service.cancelled.wait(10)          # the handler saw its call end
        service.cancelled.clear()
        service.started.clear()
        future = channel.unary_unary("/t.Svc/Wait").future(b"", timeout=10)
        assert service.started.wait(10)
        assert future.cancel()
        assert future.code() is grpcpy.StatusCode.CANCELLED
        assert service.cancelled.wait(10)


def test_sync_server_added_servicer_and_reconnect_after_server_restart():
    # a servicer added inside the block; a second pair is independent
    with grpcpy.testing.server_and_channel() as (server, channel):
        server.add_generic_rpc_handlers((SyncService().handler(),))
        assert grpcpy.testing.invoke(channel.unary_unary("/t.Svc/Echo"), b"1", timeout=10).response == b"echo:1"
        target = grpcpy.testing.add_in_memory_port(server)
    # the server has stopped: its name refuses connections (UNAVAILABLE)
    with grpcpy.insecure_channel(target) as channel:
        out = grpcpy.testing.invoke(channel.unary_unary("/t.Svc/Echo"), b"1", timeout=2)
        assert out.code is grpcpy.StatusCode.UNAVAILABLE


# -- asyncio -------------------------------------------------------------------------------------

class AioService:
    def __init__(self):
        self.started = self.ended = None

    async def echo(self, request, context):
        md = dict(context.invocation_metadata())
        await context.send_initial_metadata((("seen", md.get("who", "")),))
        context.set_trailing_metadata((("peer", context.peer()),))
        if request == b"rich":
            await context.abort_with_status(grpcpy.status.to_status(_rich()))
        if request == b"big":
            return b"x" * BIG
        return b"echo:" + request

    async def wait(self, request, context):
        self.started.set_result(True)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            self.ended.set_result(True)
            raise
        return b"not ended"

    async def count(self, request, context):
        for i in range(int(request)):
            yield str(i).encode()

    async def total(self, requests, context):
        return str(sum([len(r) async for r in requests])).encode()

    async def chat(self, requests, context):
        async for r in requests:
            yield r.upper()

    def handler(self):
        return grpcpy.method_handlers_generic_handler("t.Svc", {
            "Echo": grpcpy.unary_unary_rpc_method_handler(self.echo),
            "Wait": grpcpy.unary_unary_rpc_method_handler(self.wait),
            "Count": grpcpy.unary_stream_rpc_method_handler(self.count),
            "Total": grpcpy.stream_unary_rpc_method_handler(self.total),
            "Chat": grpcpy.stream_stream_rpc_method_handler(self.chat),
        })


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_aio_pair_every_shape_deadline_cancel_and_no_descriptor(loop_kind):
    async def main():
        service = AioService()
        before = _socket_fds()
        invoke = grpcpy.testing.aio.invoke
        async with grpcpy.testing.aio.server_and_channel(service.handler()) as (server, channel):
            out = await invoke(channel.unary_unary("/t.Svc/Echo"), b"hi", metadata=(("who", "me"),), timeout=10)
            assert out.ok and out.response == b"echo:hi"
            assert dict(out.initial_metadata)["seen"] == "me"
            assert dict(out.trailing_metadata)["peer"].startswith("memory:")
            assert (await invoke(channel.unary_stream("/t.Svc/Count"), b"3")).responses == [b"0", b"1", b"2"]
            assert (await invoke(channel.stream_unary("/t.Svc/Total"), iter([b"ab", b"c"]))).response == b"3"
            assert (await invoke(channel.stream_stream("/t.Svc/Chat"), iter([b"a", b"b"]))).responses == \
                [b"A", b"B"]
            big = await invoke(channel.unary_unary("/t.Svc/Echo"), b"big", timeout=10)
            assert big.ok and len(big.response) == BIG
            rich = await invoke(channel.unary_unary("/t.Svc/Echo"), b"rich", timeout=10)
            assert rich.code is grpcpy.StatusCode.RESOURCE_EXHAUSTED
            assert grpcpy.status.from_call(_Call(rich)) == _rich()

            service.started = asyncio.get_running_loop().create_future()
            service.ended = asyncio.get_running_loop().create_future()
            out = await invoke(channel.unary_unary("/t.Svc/Wait"), b"", timeout=0.2)
            assert out.code is grpcpy.StatusCode.DEADLINE_EXCEEDED
            assert await asyncio.wait_for(service.ended, 10)

            service.started = asyncio.get_running_loop().create_future()
            service.ended = asyncio.get_running_loop().create_future()
            call = channel.unary_unary("/t.Svc/Wait")(b"", timeout=10)
            await asyncio.wait_for(service.started, 10)
            assert call.cancel()
            assert await call.code() is grpcpy.StatusCode.CANCELLED
            assert await asyncio.wait_for(service.ended, 10)     # the handler was cancelled
            # no socket and no eventfd: the asyncio pair is pure memory
            # (only what appeared counts: other threads of the test process
            # may close their own sockets meanwhile)
            assert set(_socket_fds()) - set(before) == set()
    _run(main(), loop_kind)


def _run(coro, loop_kind):
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


# -- across the facades ------------------------------------------------------------------------


def test_sync_channel_to_aio_server_and_aio_channel_to_sync_server():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start():
        server = grpcpy.aio.server(handlers=[AioService().handler()])
        target = grpcpy.testing.add_in_memory_port(server)
        await server.start()
        return server, target
    aio_server, target = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        with grpcpy.insecure_channel(target) as channel:
            out = grpcpy.testing.invoke(channel.unary_stream("/t.Svc/Count"), b"2", timeout=10)
            assert out.responses == [b"0", b"1"]
    finally:
        asyncio.run_coroutine_threadsafe(aio_server.stop(None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()

    with grpcpy.testing.server_and_channel(SyncService().handler()) as (server, _):
        target = grpcpy.testing.add_in_memory_port(server)

        async def main():
            async with grpcpy.aio.insecure_channel(target) as channel:
                return await grpcpy.testing.aio.invoke(channel.stream_stream("/t.Svc/Chat"), iter([b"q"]),
                                                       timeout=10)
        assert asyncio.run(main()).responses == [b"Q"]


# -- call_handler: one handler, a real context, objects passed unchanged ---------------------------

class _Request:
    """Not serializable: call_handler hands objects across as they are."""

    def __init__(self, n):
        self.n = n


def test_call_handler_sync_every_shape():
    def unary(request, context):
        context.set_trailing_metadata((("deadline", str(context.time_remaining() is not None)),))
        if request.n < 0:
            context.abort(grpcpy.StatusCode.OUT_OF_RANGE, "negative")
        return {"double": request.n * 2}

    out = grpcpy.testing.call_handler(unary, _Request(4), timeout=5)
    assert out.termination() == ({"double": 8}, (("deadline", "True"),), grpcpy.StatusCode.OK, "")
    out = grpcpy.testing.call_handler(unary, _Request(-1))
    assert out.termination()[1:] == ((("deadline", "False"),), grpcpy.StatusCode.OUT_OF_RANGE, "negative")

    def count(request, context):
        yield from range(request.n)
    assert grpcpy.testing.call_handler(grpcpy.unary_stream_rpc_method_handler(count), _Request(3)).responses == \
        [0, 1, 2]

    def join(requests, context):
        return [r.n for r in requests]
    out = grpcpy.testing.call_handler(grpcpy.stream_unary_rpc_method_handler(join), iter([_Request(1), _Request(2)]))
    assert out.response == [1, 2]

    def negate(requests, context):
        for r in requests:
            yield -r.n
    out = grpcpy.testing.call_handler(grpcpy.stream_stream_rpc_method_handler(negate), iter([_Request(5)]))
    assert out.responses == [-5]


def test_call_handler_aio():
    async def unary(request, context):
        md = dict(context.invocation_metadata())
        await context.abort(grpcpy.StatusCode.PERMISSION_DENIED, "not for %s" % md["user"])

    async def count(request, context):
        for i in range(request.n):
            yield i

    async def main():
        out = await grpcpy.testing.aio.call_handler(unary, _Request(1), metadata=(("user", "bob"),))
        assert out.termination()[2:] == (grpcpy.StatusCode.PERMISSION_DENIED, "not for bob")
        out = await grpcpy.testing.aio.call_handler(grpcpy.unary_stream_rpc_method_handler(count), _Request(2))
        assert out.responses == [0, 1]
    asyncio.run(main())
