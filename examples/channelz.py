"""Channelz: a server with the admin services, some traffic, and a client
that reads the figures back.

The application server serves a `demo.Echo` service; a separate admin server
runs `grpcpy.admin.add_admin_servicers` (channelz), as production servers
usually keep admin services on a port of their own. A channel makes 4 calls,
one of which fails, and a client of the admin port then asks Channelz for
the top channels and the servers and prints what it says about them. Any
channelz client (grpcdebug, grpcio-channelz's stub) reads the same answers.

    python examples/channelz.py
"""
from concurrent import futures

import grpcpy
import grpcpy.admin
from grpcpy import channelz

pb = channelz.channelz_pb2


def echo(request, context):
    if request == b"boom":
        context.abort(grpcpy.StatusCode.INVALID_ARGUMENT, "no booms here")
    return request


def main():
    app = grpcpy.server(futures.ThreadPoolExecutor(4))
    app.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "demo.Echo", {"Say": grpcpy.unary_unary_rpc_method_handler(echo)}),))
    app_port = app.add_insecure_port("127.0.0.1:0")
    app.start()

    admin = grpcpy.server(futures.ThreadPoolExecutor(2))
    grpcpy.admin.add_admin_servicers(admin)
    admin_port = admin.add_insecure_port("127.0.0.1:0")
    admin.start()

    target = "127.0.0.1:%d" % app_port
    with grpcpy.insecure_channel(target) as channel:
        say = channel.unary_unary("/demo.Echo/Say")
        for word in (b"one", b"two", b"three", b"boom"):
            try:
                say(word, timeout=10)
            except grpcpy.RpcError:
                pass

        with grpcpy.insecure_channel("127.0.0.1:%d" % admin_port) as admin_channel:
            stub = channelz.ChannelzStub(admin_channel)
            for found in stub.GetTopChannels(pb.GetTopChannelsRequest(), timeout=10).channel:
                if found.data.target != target:
                    continue        # the admin client's own channel
                data = found.data
                print("channel to the app: %s, %d calls started, %d succeeded, %d failed" % (
                    pb.ChannelConnectivityState.State.Name(data.state.state), data.calls_started,
                    data.calls_succeeded, data.calls_failed))
                sub = stub.GetSubchannel(pb.GetSubchannelRequest(
                    subchannel_id=found.subchannel_ref[0].subchannel_id), timeout=10).subchannel
                sock = stub.GetSocket(pb.GetSocketRequest(socket_id=sub.socket_ref[0].socket_id),
                                      timeout=10).socket
                print("its socket: %d messages sent, %d received" % (sock.data.messages_sent,
                                                                       sock.data.messages_received))
            for server in stub.GetServers(pb.GetServersRequest(), timeout=10).server:
                ports = [stub.GetSocket(pb.GetSocketRequest(socket_id=ref.socket_id), timeout=10)
                         .socket.local.tcpip_address.port for ref in server.listen_socket]
                if app_port in ports:
                    print("app server: %d calls started, %d succeeded, %d failed" % (
                        server.data.calls_started, server.data.calls_succeeded, server.data.calls_failed))
    app.stop(None)
    admin.stop(None)


if __name__ == "__main__":
    main()
