"""The Channelz service's rules: paging, NOT_FOUND, a TLS socket's security,
figures that outlive a connection, calls that never reached one, the proto
against grpcio-channelz's, grpcpy.admin, and grpcio-channelz under
install_as_grpc()."""
import asyncio
import concurrent.futures as cf
import ssl
import subprocess
import sys
import textwrap
import time

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_channelz.v1 import channelz as grpcio_channelz
from grpc_channelz.v1 import channelz_pb2 as their_pb

import grpcpy
import grpcpy.admin
import grpcpy.aio
from grpcpy import channelz

from ..security.certs import material

pb = channelz.channelz_pb2


def echo(request, context):
    return request


def echo_handlers():
    return grpcpy.method_handlers_generic_handler("cz.Test", {"Echo": grpcpy.unary_unary_rpc_method_handler(echo)})


@pytest.fixture
def admin():
    """A sync grpcpy server with the admin services, and a stub on it."""
    server = grpcpy.server(cf.ThreadPoolExecutor(2))
    grpcpy.admin.add_admin_servicers(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpcpy.insecure_channel("127.0.0.1:%d" % port)
    yield channelz.ChannelzStub(channel)
    channel.close()
    server.stop(None)


def code_of(call, request):
    with pytest.raises(grpcpy.RpcError) as info:
        call(request, timeout=10)
    return info.value.code()


# -- paging ---------------------------------------------------------------------------------------

def walk(method, start_field, items, max_results):
    ids, start, pages = [], 0, 0
    while True:
        answer = method(_request(start_field, start, max_results), timeout=10)
        page = [ident(item) for item in getattr(answer, items)]
        pages += 1
        assert len(page) <= max_results
        assert page == sorted(page) and all(i >= start for i in page)
        ids += page
        if answer.end:
            return ids, pages
        assert page, "a page that is not the last is not empty"
        start = page[-1] + 1


def ident(item):
    ref = item.ref
    return ref.channel_id if hasattr(ref, "channel_id") else ref.server_id


def _request(start_field, start, max_results):
    cls = pb.GetTopChannelsRequest if start_field == "start_channel_id" else pb.GetServersRequest
    return cls(**{start_field: start, "max_results": max_results})


def test_paging_of_channels_and_servers(admin):
    channels = [grpcpy.insecure_channel("127.0.0.1:1") for _ in range(5)]
    servers = [grpcpy.server(cf.ThreadPoolExecutor(1)) for _ in range(3)]
    try:
        everything = admin.GetTopChannels(pb.GetTopChannelsRequest(), timeout=10)
        assert everything.end
        all_ids = [c.ref.channel_id for c in everything.channel]
        assert all_ids == sorted(all_ids) and len(all_ids) >= 6     # ours and the stub's own
        ids, pages = walk(admin.GetTopChannels, "start_channel_id", "channel", 2)
        assert ids == all_ids and pages >= 3
        # a start between two ids begins at the next one
        answer = admin.GetTopChannels(pb.GetTopChannelsRequest(start_channel_id=all_ids[0] + 1, max_results=1),
                                      timeout=10)
        assert [c.ref.channel_id for c in answer.channel] == [all_ids[1]] and not answer.end
        # past the last id: nothing, and the end
        answer = admin.GetTopChannels(pb.GetTopChannelsRequest(start_channel_id=all_ids[-1] + 1), timeout=10)
        assert list(answer.channel) == [] and answer.end

        all_servers = [s.ref.server_id for s in admin.GetServers(pb.GetServersRequest(), timeout=10).server]
        assert len(all_servers) >= 4
        ids, pages = walk(admin.GetServers, "start_server_id", "server", 1)
        assert ids == all_servers and pages >= 4
    finally:
        for channel in channels:
            channel.close()


def test_server_sockets_paging(admin):
    server = grpcpy.server(cf.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers((echo_handlers(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    clients = [grpcpy.insecure_channel("127.0.0.1:%d" % port) for _ in range(3)]
    try:
        for client in clients:
            assert client.unary_unary("/cz.Test/Echo")(b"x", timeout=10) == b"x"
        (mine,) = [s for s in admin.GetServers(pb.GetServersRequest(), timeout=10).server
                   if s.listen_socket and s.listen_socket[0].name.endswith(":%d" % port)]
        listen = admin.GetSocket(pb.GetSocketRequest(socket_id=mine.listen_socket[0].socket_id), timeout=10).socket
        assert listen.local.tcpip_address.port == port
        assert bytes(listen.local.tcpip_address.ip_address) == bytes([127, 0, 0, 1])
        everything = admin.GetServerSockets(pb.GetServerSocketsRequest(server_id=mine.ref.server_id), timeout=10)
        assert everything.end and len(everything.socket_ref) == 3
        first = admin.GetServerSockets(pb.GetServerSocketsRequest(server_id=mine.ref.server_id, max_results=2),
                                       timeout=10)
        assert len(first.socket_ref) == 2 and not first.end
        rest = admin.GetServerSockets(pb.GetServerSocketsRequest(
            server_id=mine.ref.server_id, start_socket_id=first.socket_ref[-1].socket_id + 1), timeout=10)
        assert rest.end
        assert [r.socket_id for r in first.socket_ref] + [r.socket_id for r in rest.socket_ref] == [
            r.socket_id for r in everything.socket_ref]
        # each is a socket from one of the clients: one call each
        for ref in everything.socket_ref:
            sock = admin.GetSocket(pb.GetSocketRequest(socket_id=ref.socket_id), timeout=10).socket
            assert (sock.data.streams_started, sock.data.messages_received, sock.data.messages_sent) == (1, 1, 1)
            assert sock.local.tcpip_address.port == port
    finally:
        for client in clients:
            client.close()
        server.stop(None)


# -- NOT_FOUND ------------------------------------------------------------------------------------

def test_unknown_ids_are_not_found(admin):
    missing = 1 << 60
    assert code_of(admin.GetChannel, pb.GetChannelRequest(channel_id=missing)) == grpcpy.StatusCode.NOT_FOUND
    assert code_of(admin.GetSubchannel, pb.GetSubchannelRequest(subchannel_id=missing)) == grpcpy.StatusCode.NOT_FOUND
    assert code_of(admin.GetSocket, pb.GetSocketRequest(socket_id=missing)) == grpcpy.StatusCode.NOT_FOUND
    assert code_of(admin.GetServer, pb.GetServerRequest(server_id=missing)) == grpcpy.StatusCode.NOT_FOUND
    assert code_of(admin.GetServerSockets,
                   pb.GetServerSocketsRequest(server_id=missing)) == grpcpy.StatusCode.NOT_FOUND
    # an id of another kind of entity is not found either
    channel_id = admin.GetTopChannels(pb.GetTopChannelsRequest(), timeout=10).channel[0].ref.channel_id
    assert code_of(admin.GetSubchannel, pb.GetSubchannelRequest(subchannel_id=channel_id)) == \
        grpcpy.StatusCode.NOT_FOUND
    assert code_of(admin.GetSocket, pb.GetSocketRequest(socket_id=channel_id)) == grpcpy.StatusCode.NOT_FOUND
    assert code_of(admin.GetServer, pb.GetServerRequest(server_id=channel_id)) == grpcpy.StatusCode.NOT_FOUND


def test_a_closed_channel_is_no_longer_listed(admin):
    channel = grpcpy.insecure_channel("127.0.0.1:1")
    channel_id = channel._channelz.id
    answer = admin.GetChannel(pb.GetChannelRequest(channel_id=channel_id), timeout=10)
    assert answer.channel.data.state.state == pb.ChannelConnectivityState.IDLE
    channel.close()
    assert code_of(admin.GetChannel, pb.GetChannelRequest(channel_id=channel_id)) == grpcpy.StatusCode.NOT_FOUND
    listed = admin.GetTopChannels(pb.GetTopChannelsRequest(), timeout=10).channel
    assert channel_id not in [c.ref.channel_id for c in listed]


# -- figures beyond one connection ----------------------------------------------------------------

def test_calls_that_never_reach_a_connection_count_on_the_channel(admin):
    # nothing listens on port 1: every call fails UNAVAILABLE without a connection
    channel = grpcpy.insecure_channel("127.0.0.1:1")
    try:
        call = channel.unary_unary("/cz.Test/Echo")
        for _ in range(2):
            assert code_of(call, b"x") == grpcpy.StatusCode.UNAVAILABLE
        data = admin.GetChannel(pb.GetChannelRequest(channel_id=channel._channelz.id), timeout=10).channel.data
        assert (data.calls_started, data.calls_succeeded, data.calls_failed) == (2, 0, 2)
        assert data.last_call_started_timestamp.seconds
        assert data.state.state == pb.ChannelConnectivityState.TRANSIENT_FAILURE
    finally:
        channel.close()


def test_figures_outlive_the_connection(admin):
    server = grpcpy.server(cf.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers((echo_handlers(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpcpy.insecure_channel("127.0.0.1:%d" % port)
    server_id = server._channelz.id
    try:
        for _ in range(3):
            channel.unary_unary("/cz.Test/Echo")(b"x", timeout=10)
        server.stop(None).wait()
        # the loss is reported on the channel's I/O loop: wait for the
        # subchannel to have no socket left
        sub_ref = admin.GetChannel(pb.GetChannelRequest(channel_id=channel._channelz.id),
                                   timeout=10).channel.subchannel_ref[0]
        for _ in range(10_000):
            sub = admin.GetSubchannel(pb.GetSubchannelRequest(subchannel_id=sub_ref.subchannel_id), timeout=10)
            if not sub.subchannel.socket_ref:
                break
            time.sleep(0.002)
        channel_data = admin.GetChannel(pb.GetChannelRequest(channel_id=channel._channelz.id), timeout=10).channel
        assert (channel_data.data.calls_started, channel_data.data.calls_succeeded) == (3, 3)
        (sub_ref,) = channel_data.subchannel_ref
        sub = admin.GetSubchannel(pb.GetSubchannelRequest(subchannel_id=sub_ref.subchannel_id), timeout=10)
        assert (sub.subchannel.data.calls_started, sub.subchannel.data.calls_succeeded) == (3, 3)
        assert list(sub.subchannel.socket_ref) == []
        server_data = admin.GetServer(pb.GetServerRequest(server_id=server_id), timeout=10).server.data
        assert (server_data.calls_started, server_data.calls_succeeded) == (3, 3)
        assert list(admin.GetServerSockets(pb.GetServerSocketsRequest(server_id=server_id),
                                           timeout=10).socket_ref) == []
    finally:
        channel.close()


# -- TLS ------------------------------------------------------------------------------------------

def der(pem):
    return ssl.PEM_cert_to_DER_cert(pem.decode())


@pytest.mark.parametrize("facade", ["sync", "aio"])
def test_tls_socket_security(admin, facade):
    certs = material()
    server_key, server_chain = certs["server"]
    client_key, client_chain = certs["client"]
    server_creds = grpcpy.ssl_server_credentials([(server_key, server_chain)], root_certificates=certs["ca"],
                                                 require_client_auth=True)
    client_creds = grpcpy.ssl_channel_credentials(certs["ca"], client_key, client_chain)

    def inspect(channel_id, server_id):
        channel = admin.GetChannel(pb.GetChannelRequest(channel_id=channel_id), timeout=10).channel
        sub = admin.GetSubchannel(pb.GetSubchannelRequest(
            subchannel_id=channel.subchannel_ref[0].subchannel_id), timeout=10).subchannel
        client = admin.GetSocket(pb.GetSocketRequest(socket_id=sub.socket_ref[0].socket_id), timeout=10).socket
        (ref,) = admin.GetServerSockets(pb.GetServerSocketsRequest(server_id=server_id), timeout=10).socket_ref
        server = admin.GetSocket(pb.GetSocketRequest(socket_id=ref.socket_id), timeout=10).socket
        return client, server

    if facade == "sync":
        server = grpcpy.server(cf.ThreadPoolExecutor(2))
        server.add_generic_rpc_handlers((echo_handlers(),))
        port = server.add_secure_port("127.0.0.1:0", server_creds)
        server.start()
        channel = grpcpy.secure_channel("localhost:%d" % port, client_creds)
        try:
            assert channel.unary_unary("/cz.Test/Echo")(b"x", timeout=10) == b"x"
            client, served = inspect(channel._channelz.id, server._channelz.id)
        finally:
            channel.close()
            server.stop(None)
    else:
        async def main():
            server = grpcpy.aio.server()
            server.add_generic_rpc_handlers((echo_handlers(),))
            port = server.add_secure_port("127.0.0.1:0", server_creds)
            await server.start()
            channel = grpcpy.aio.secure_channel("localhost:%d" % port, client_creds)
            try:
                assert await channel.unary_unary("/cz.Test/Echo")(b"x", timeout=10) == b"x"
                return await asyncio.to_thread(inspect, channel._channelz.id, server._channelz.id)
            finally:
                await channel.close()
                await server.stop(None)
        client, served = asyncio.run(main())

    for sock in (client, served):
        tls = sock.security.tls
        assert tls.standard_name.startswith("TLS_"), tls     # TLS 1.3: OpenSSL's name is the standard one
    assert client.security.tls.remote_certificate == der(server_chain)
    assert client.security.tls.local_certificate == der(client_chain)
    assert served.security.tls.local_certificate == der(server_chain)
    assert served.security.tls.remote_certificate == der(client_chain)
    assert client.remote.tcpip_address.port == served.local.tcpip_address.port
    assert client.local.tcpip_address.port == served.remote.tcpip_address.port


# -- the proto --------------------------------------------------------------------------------------

def fields(file):
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    out = {}

    def walk(messages, prefix):
        for message in messages:
            out[prefix + message.name] = sorted(
                (f.name, f.number, f.type, f.label, f.type_name) for f in message.field)
            walk(message.nested_type, prefix + message.name + ".")
            for enum in message.enum_type:
                out[prefix + message.name + "." + enum.name] = [(v.name, v.number) for v in enum.value]
    walk(proto.message_type, "")
    out["service"] = [(m.name, m.input_type, m.output_type) for m in proto.service[0].method]
    return out


def test_our_proto_is_grpcio_channelz_s():
    assert fields(pb.DESCRIPTOR) == fields(their_pb.DESCRIPTOR)
    assert pb.DESCRIPTOR.package == their_pb.DESCRIPTOR.package == "grpc.channelz.v1"


def test_grpcio_channelz_on_a_grpcio_server_and_ours_side_by_side():
    # both implementations' services in one process, each describing its own
    server = grpc.server(cf.ThreadPoolExecutor(2))
    grpcio_channelz.add_channelz_servicer(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    ours = grpcpy.server(cf.ThreadPoolExecutor(2))
    channelz.add_channelz_servicer(ours)
    our_port = ours.add_insecure_port("127.0.0.1:0")
    ours.start()
    try:
        with grpcpy.insecure_channel("127.0.0.1:%d" % port) as to_grpcio, \
                grpcpy.insecure_channel("127.0.0.1:%d" % our_port) as to_ours:
            theirs = channelz.ChannelzStub(to_grpcio).GetServers(pb.GetServersRequest(), timeout=10)
            mine = channelz.ChannelzStub(to_ours).GetServers(pb.GetServersRequest(), timeout=10)
        assert theirs.server and theirs.end     # grpcio's (others of the process' may still be alive)
        assert ours._channelz.id in [s.ref.server_id for s in mine.server]
    finally:
        server.stop(None)
        ours.stop(None)


# -- grpcio-channelz under install_as_grpc ----------------------------------------------------------

UNDER_ALIAS = textwrap.dedent("""
    import sys
    import concurrent.futures as cf
    import grpcpy
    grpcpy.install_as_grpc()
    import grpc
    from grpc_channelz.v1 import channelz, channelz_pb2, channelz_pb2_grpc

    server = grpc.server(cf.ThreadPoolExecutor(2))
    channelz.add_channelz_servicer(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
        stub = channelz_pb2_grpc.ChannelzStub(channel)
        for _ in range(3):
            stub.GetServers(channelz_pb2.GetServersRequest(), timeout=10)
        answer = stub.GetServers(channelz_pb2.GetServersRequest(), timeout=10)
        assert type(answer) is channelz_pb2.GetServersResponse
        (mine,) = answer.server
        assert (mine.data.calls_started, mine.data.calls_succeeded) == (4, 3), mine
        try:
            stub.GetChannel(channelz_pb2.GetChannelRequest(channel_id=1 << 60), timeout=10)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
        else:
            raise AssertionError("no NOT_FOUND")
    server.stop(None)
    try:
        import grpc_channelz.v1._servicer
    except ImportError as exc:
        print("private:", exc)
    assert "grpc._cython" not in sys.modules
    assert not any(name.startswith("grpc._") and name != "grpc._utilities" for name in sys.modules)
    print("ok")
""")


def test_grpcio_channelz_under_install_as_grpc_serves_grpcpy_s_figures():
    out = subprocess.run([sys.executable, "-c", UNDER_ALIAS], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1] == "ok"
    # its private module reading grpcio's C core fails plainly at import
    assert lines[0].startswith("private: ") and "grpc._cython" in lines[0]


def test_a_cancelled_stream_is_a_failed_stream_on_both_sides(admin):
    import threading

    def endless(request, context):
        ended = threading.Event()
        context.add_callback(ended.set)
        yield b"first"
        ended.wait(10)          # until the server has seen the cancellation

    server = grpcpy.server(cf.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler("cz.Test", {
        "Endless": grpcpy.unary_stream_rpc_method_handler(endless)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpcpy.insecure_channel("127.0.0.1:%d" % port)
    try:
        call = channel.unary_stream("/cz.Test/Endless")(b"go", timeout=10)
        assert next(call) == b"first"
        call.cancel()
        channel_data = admin.GetChannel(pb.GetChannelRequest(channel_id=channel._channelz.id), timeout=10).channel
        assert (channel_data.data.calls_started, channel_data.data.calls_failed) == (1, 1)
        sub = admin.GetSubchannel(pb.GetSubchannelRequest(
            subchannel_id=channel_data.subchannel_ref[0].subchannel_id), timeout=10).subchannel
        client = admin.GetSocket(pb.GetSocketRequest(socket_id=sub.socket_ref[0].socket_id), timeout=10).socket
        assert (client.data.streams_started, client.data.streams_succeeded, client.data.streams_failed) == (1, 0, 1)
        # the server learns of the reset from the wire: wait for it
        for _ in range(10_000):
            (ref,) = admin.GetServerSockets(pb.GetServerSocketsRequest(server_id=server._channelz.id),
                                            timeout=10).socket_ref
            served = admin.GetSocket(pb.GetSocketRequest(socket_id=ref.socket_id), timeout=10).socket
            if served.data.streams_failed:
                break
            time.sleep(0.002)
        assert (served.data.streams_started, served.data.streams_succeeded, served.data.streams_failed) == (1, 0, 1)
        assert (served.data.messages_sent, served.data.messages_received) == (1, 1)
    finally:
        channel.close()
        server.stop(None)
