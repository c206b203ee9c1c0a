"""Channelz figures after known traffic: N unary calls, M failures and a
bidirectional stream of K messages each way, on a channel and a server of
each facade (and of grpcio with grpcio-channelz, the reference), read
through the Channelz service by a grpcio client (grpcio-channelz's stub and
messages: a cross-check of our proto) and by a grpcpy client."""
import asyncio
import concurrent.futures as cf
import ipaddress
import time

import grpc
import pytest
from grpc_channelz.v1 import channelz as grpcio_channelz
from grpc_channelz.v1 import channelz_pb2 as their_pb
from grpc_channelz.v1 import channelz_pb2_grpc as their_grpc

import grpcpy
import grpcpy.aio
from grpcpy import channelz

N, M, K = 5, 2, 3
OK_CALLS = N + 1                   # the unary calls and the stream
ALL_CALLS = N + M + 1


def unary(request, context):
    if request == b"fail":
        context.abort(grpcpy.StatusCode.INVALID_ARGUMENT, "asked to fail")
    return request


def bidi(requests, context):
    for message in requests:
        yield message


async def aio_unary(request, context):
    if request == b"fail":
        await context.abort(grpcpy.StatusCode.INVALID_ARGUMENT, "asked to fail")
    return request


async def aio_bidi(requests, context):
    async for message in requests:
        yield message


def handlers(mod, aio):
    return mod.method_handlers_generic_handler("cz.Test", {
        "Unary": mod.unary_unary_rpc_method_handler(aio_unary if aio else unary),
        "Bidi": mod.stream_stream_rpc_method_handler(aio_bidi if aio else bidi),
    })


# -- readers: the Channelz service as seen by a grpcio and a grpcpy client ------------------

class Reader:
    """Calls the admin server's Channelz service; answers come back as
    grpcio-channelz's messages whichever client asked."""

    def __init__(self, kind, port):
        self.kind = kind
        target = "127.0.0.1:%d" % port
        if kind == "grpcio":
            self._channel = grpc.insecure_channel(target)
            self._stub = their_grpc.ChannelzStub(self._channel)
        else:
            self._channel = grpcpy.insecure_channel(target)
            self._stub = channelz.ChannelzStub(self._channel)

    def close(self):
        self._channel.close()

    def ask(self, method, **fields):
        if self.kind == "grpcio":
            request = getattr(their_pb, method + "Request")(**fields)
            return getattr(self._stub, method)(request, timeout=10)
        request = getattr(channelz.channelz_pb2, method + "Request")(**fields)
        answer = getattr(self._stub, method)(request, timeout=10)
        # parsed by grpcio-channelz's classes: our bytes mean the same to them
        return getattr(their_pb, method + "Response").FromString(answer.SerializeToString())

    def all_channels(self):
        return self._all("GetTopChannels", "start_channel_id", "channel", lambda c: c.ref.channel_id)

    def all_servers(self):
        return self._all("GetServers", "start_server_id", "server", lambda s: s.ref.server_id)

    def _all(self, method, start_field, items, ident):
        found, start = [], 0
        while True:
            answer = self.ask(method, **{start_field: start})
            page = list(getattr(answer, items))
            found += page
            if answer.end or not page:
                return found
            start = ident(page[-1]) + 1

    def channel_to(self, port):
        target = "127.0.0.1:%d" % port
        matches = [c for c in self.all_channels() if c.data.target.endswith(target)]
        assert len(matches) == 1, matches
        return matches[0]

    def server_on(self, port):
        """The server with a connection on `port` (grpcio names its listening
        sockets with port 0)."""
        matches = [s for s in self.all_servers() if any(
            self.ask("GetSocket", socket_id=ref.socket_id).socket.local.tcpip_address.port == port
            for ref in self.ask("GetServerSockets", server_id=s.ref.server_id).socket_ref)]
        assert len(matches) == 1, matches
        return matches[0]

    def channel_socket(self, channel):
        (sub_ref,) = channel.subchannel_ref
        sub = self.ask("GetSubchannel", subchannel_id=sub_ref.subchannel_id).subchannel
        (sock_ref,) = sub.socket_ref
        return sub, self.ask("GetSocket", socket_id=sock_ref.socket_id).socket

    def server_socket_from(self, server, client_port):
        refs = self.ask("GetServerSockets", server_id=server.ref.server_id).socket_ref
        for ref in refs:
            sock = self.ask("GetSocket", socket_id=ref.socket_id).socket
            if sock.remote.tcpip_address.port == client_port:
                return sock
        raise AssertionError("no server socket from port %d" % client_port)


# -- traffic ------------------------------------------------------------------------------------

def sync_traffic(mod, channel):
    call = channel.unary_unary("/cz.Test/Unary")
    for _ in range(N):
        assert call(b"ok", timeout=10) == b"ok"
    for _ in range(M):
        with pytest.raises(mod.RpcError) as info:
            call(b"fail", timeout=10)
        assert info.value.code() == mod.StatusCode.INVALID_ARGUMENT
    replies = list(channel.stream_stream("/cz.Test/Bidi")(iter([b"m"] * K), timeout=10))
    assert replies == [b"m"] * K


async def aio_traffic(mod, channel):
    call = channel.unary_unary("/cz.Test/Unary")
    for _ in range(N):
        assert await call(b"ok", timeout=10) == b"ok"
    for _ in range(M):
        with pytest.raises(mod.aio.AioRpcError) as info:
            await call(b"fail", timeout=10)
        assert info.value.code() == mod.StatusCode.INVALID_ARGUMENT
    stream = channel.stream_stream("/cz.Test/Bidi")(timeout=10)
    replies = []
    for _ in range(K):
        await stream.write(b"m")
        replies.append(await stream.read())
    await stream.done_writing()
    assert await stream.read() is grpcpy.aio.EOF or await stream.code() == grpcpy.StatusCode.OK
    assert await stream.code() == mod.StatusCode.OK
    assert replies == [b"m"] * K


# -- what must be seen ---------------------------------------------------------------------------

def seconds(timestamp):
    return timestamp.seconds + timestamp.nanos / 1e9


def check(reader, port, began, exact_times=True):
    ended = time.time()

    def recent(timestamp):
        assert timestamp.seconds
        if exact_times:
            # grpcpy's clock of the figures is coarse (the kernel's tick): a
            # margin. (grpcio's times run a second or two behind the wall
            # clock here: only set.)
            assert began - 1 <= seconds(timestamp) <= ended + 1

    channel = reader.channel_to(port)
    data = channel.data
    assert data.state.state == their_pb.ChannelConnectivityState.READY
    assert (data.calls_started, data.calls_succeeded, data.calls_failed) == (ALL_CALLS, OK_CALLS, M)
    recent(data.last_call_started_timestamp)
    assert reader.ask("GetChannel", channel_id=channel.ref.channel_id).channel.ref == channel.ref

    sub, client_socket = reader.channel_socket(channel)
    assert (sub.data.calls_started, sub.data.calls_succeeded, sub.data.calls_failed) == (ALL_CALLS, OK_CALLS, M)
    assert sub.data.state.state == their_pb.ChannelConnectivityState.READY
    figures = client_socket.data
    assert figures.streams_started == ALL_CALLS
    assert figures.messages_sent == N + M + K
    assert figures.messages_received == N + K
    recent(figures.last_local_stream_created_timestamp)
    recent(figures.last_message_sent_timestamp)
    recent(figures.last_message_received_timestamp)
    assert client_socket.remote.tcpip_address.port == port
    assert ipaddress.ip_address(client_socket.remote.tcpip_address.ip_address) == ipaddress.ip_address("127.0.0.1")
    assert not client_socket.HasField("security")

    server = reader.server_on(port)
    assert (server.data.calls_started, server.data.calls_succeeded, server.data.calls_failed) == (
        ALL_CALLS, OK_CALLS, M)
    recent(server.data.last_call_started_timestamp)
    assert reader.ask("GetServer", server_id=server.ref.server_id).server.ref == server.ref
    server_socket = reader.server_socket_from(server, client_socket.local.tcpip_address.port)
    figures = server_socket.data
    assert figures.streams_started == ALL_CALLS
    assert figures.messages_received == N + M + K
    assert figures.messages_sent == N + K
    recent(figures.last_remote_stream_created_timestamp)
    assert server_socket.local.tcpip_address.port == port
    return client_socket, server_socket


def stream_outcomes(sock):
    return sock.data.streams_succeeded, sock.data.streams_failed


# -- the subjects ----------------------------------------------------------------------------------

IMPLS = ["grpcio", "grpcpy-sync", "grpcpy-aio"]
READERS = ["grpcio", "grpcpy"]


def run_sync(impl, reader_kind):
    mod = grpc if impl == "grpcio" else grpcpy
    admin = mod.server(cf.ThreadPoolExecutor(2))
    (grpcio_channelz if impl == "grpcio" else channelz).add_channelz_servicer(admin)
    admin_port = admin.add_insecure_port("127.0.0.1:0")
    admin.start()
    server = mod.server(cf.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((handlers(mod, False),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = mod.insecure_channel("127.0.0.1:%d" % port)
    reader = Reader(reader_kind, admin_port)
    try:
        began = time.time()
        sync_traffic(mod, channel)
        return check(reader, port, began, exact_times=impl != "grpcio")
    finally:
        reader.close()
        channel.close()
        server.stop(None)
        admin.stop(None)


def run_aio(reader_kind):
    async def main():
        admin = grpcpy.aio.server()
        channelz.add_channelz_servicer(admin)
        admin_port = admin.add_insecure_port("127.0.0.1:0")
        await admin.start()
        server = grpcpy.aio.server()
        server.add_generic_rpc_handlers((handlers(grpcpy, True),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpcpy.aio.insecure_channel("127.0.0.1:%d" % port)
        reader = Reader(reader_kind, admin_port)
        try:
            began = time.time()
            await aio_traffic(grpcpy, channel)
            # the reader blocks: off the loop that serves the answers
            return await asyncio.to_thread(check, reader, port, began)
        finally:
            reader.close()
            await channel.close()
            await server.stop(None)
            await admin.stop(None)
    return asyncio.run(main())


@pytest.mark.parametrize("reader_kind", READERS)
@pytest.mark.parametrize("impl", IMPLS)
def test_figures_after_known_traffic(impl, reader_kind):
    if impl == "grpcio" and reader_kind == "grpcpy":
        pytest.skip("grpcio's answers are grpcio's; the grpcpy reader reads grpcpy's")
    if impl == "grpcpy-aio":
        client_socket, server_socket = run_aio(reader_kind)
    else:
        client_socket, server_socket = run_sync(impl, reader_kind)
    # a stream succeeds when it ends cleanly at the HTTP/2 level, whatever its
    # gRPC status (grpc-core counts it so): every call here did
    assert stream_outcomes(client_socket) == (ALL_CALLS, 0)
    assert stream_outcomes(server_socket) == (ALL_CALLS, 0)
