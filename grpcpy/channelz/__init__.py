"""grpcpy.channelz: the ``grpc.channelz.v1.Channelz`` service (gRFC A14) for
grpcpy's own channels, subchannels, servers and sockets, on sync and aio
servers alike.

    grpcpy.channelz.add_channelz_servicer(server)

is grpcio-channelz's call (``grpc_channelz.v1.channelz``), which reads
grpcio's C core and so cannot describe grpcpy's objects: use this one.
The figures are counters the core keeps anyway (see grpcpy._channelz):
calls started, succeeded and failed and the last call's start for channels,
subchannels and servers; streams, messages each way, keepalive pings, the
flow-control windows, addresses and TLS details for sockets. A call that a
channel retries counts once per attempt on its subchannel and channel; a
call that fails before reaching any connection (no address could be
reached, the channel closed) counts on its channel.

``channelz_pb2`` is the message module (our own descriptors, loadable in the
same process as grpcio-channelz's); ``ChannelzStub`` is a client stub.
"""
from grpcpy._protos import channelz_pb as channelz_pb2
from grpcpy.channelz._servicer import (AioChannelzServicer, ChannelzServicer, ChannelzStub,
                                       add_channelz_servicer)

__all__ = ["add_channelz_servicer", "ChannelzServicer", "AioChannelzServicer", "ChannelzStub",
           "channelz_pb2"]
