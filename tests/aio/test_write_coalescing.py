"""How grpcpy.aio turns application actions into socket writes: a lone call
leaves at once (no loop iteration passes before its bytes are written), and
many calls started in one loop iteration share a write instead of paying a
syscall each. grpcpy's own I/O policy, so grpcpy only; the peer is grpcio."""
import asyncio
import sys

import grpc
import pytest

import grpcpy.aio

from .harness import ECHO, IMPLS, run, serving


class CountingTransport:
    """Stands in front of the connection's real transport and counts writes."""

    def __init__(self, transport, note_caller=False):
        self._transport = transport
        self._note_caller = note_caller
        self.writes = []
        self.callers = []

    def write(self, data):
        self.writes.append(bytes(data))
        if self._note_caller:
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_name != "data_received":
                frame = frame.f_back
            self.callers.append("data_received" if frame is not None else "elsewhere")
        self._transport.write(data)

    def __getattr__(self, name):
        return getattr(self._transport, name)


@pytest.fixture
def impl():
    return IMPLS["grpcio"]      # the server; the channel under test is grpcpy's


def _counted_channel_call(s):
    channel = grpcpy.aio.insecure_channel("127.0.0.1:%d" % s.port)
    return channel, channel.unary_unary("/t.S/Echo")


def test_a_lone_call_is_written_before_the_loop_turns(impl):
    async def scenario():
        async with serving(impl, ECHO) as s:
            channel, call = _counted_channel_call(s)
            async with channel:
                assert await call(b"warm", timeout=5) == b"warm"
                proto = next(iter(channel._connections.values()))
                counter = proto.transport = CountingTransport(proto.transport)
                pending = call(b"lone", timeout=5)
                # nothing has awaited yet: the request is already on the socket
                assert len(counter.writes) == 1 and b"lone" in counter.writes[0]
                assert await pending == b"lone"
    run(scenario())


def test_calls_started_together_share_writes(impl):
    async def scenario():
        async with serving(impl, ECHO) as s:
            channel, call = _counted_channel_call(s)
            async with channel:
                assert await call(b"warm", timeout=5) == b"warm"
                proto = next(iter(channel._connections.values()))
                counter = proto.transport = CountingTransport(proto.transport)
                calls = [call(b"m%02d" % i, timeout=5) for i in range(64)]
                assert len(counter.writes) == 1          # the first went at once
                await asyncio.sleep(0)
                # the other 63 left together at the end of that loop iteration
                assert len(counter.writes) == 2
                assert all((b"m%02d" % i) in counter.writes[1] for i in range(1, 64))
                assert await asyncio.gather(*calls) == [b"m%02d" % i for i in range(64)]
    run(scenario())


def test_server_answers_in_the_write_of_the_read_that_carried_the_request(loop_kind):
    """A unary handler that does not wait answers from inside the callback
    that received its request: one write per request batch, none later."""
    async def scenario():
        server = grpcpy.aio.server()
        written = []

        async def echo(request, context):
            return request

        server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
            "t.S", {"Echo": grpcpy.unary_unary_rpc_method_handler(echo)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel("127.0.0.1:%d" % port) as channel:
                call = channel.unary_unary("/t.S/Echo")
                assert await call(b"warm", timeout=5) == b"warm"
                proto = next(iter(server._connections))
                counter = proto.transport = CountingTransport(proto.transport, note_caller=True)
                for i in range(20):
                    assert await call(b"r%d" % i, timeout=5) == b"r%d" % i
                written.extend(counter.callers)
        finally:
            await server.stop(None)
        # one write per call, every one made inside the read that carried the request
        assert written == ["data_received"] * 20
    run(scenario())
