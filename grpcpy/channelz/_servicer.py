"""The thin sync and aio servicers over grpcpy.channelz._service, and the
client stub."""
from grpcpy import _types
from grpcpy.channelz._service import METHODS, NOT_FOUND, SERVICE, NotFound


def _sync_method(answer):
    def method(self, request, context):
        try:
            return answer(request)
        except NotFound as exc:
            context.abort(NOT_FOUND, str(exc))
    return method


def _aio_method(answer):
    async def method(self, request, context):
        try:
            return answer(request)
        except NotFound as exc:
            await context.abort(NOT_FOUND, str(exc))
    return method


class ChannelzServicer:
    """grpc.channelz.v1.Channelz for a sync server."""


class AioChannelzServicer:
    """grpc.channelz.v1.Channelz for an aio server (the answers never block:
    they run on the event loop)."""


for _name, (_answer, _, _) in METHODS.items():
    setattr(ChannelzServicer, _name, _sync_method(_answer))
    setattr(AioChannelzServicer, _name, _aio_method(_answer))
del _name, _answer


def _is_aio(server):
    return type(server).__module__.startswith("grpcpy.aio")


def add_channelz_servicer(server):
    """Serve grpc.channelz.v1.Channelz on a grpcpy server, sync or aio
    (grpcio-channelz's call)."""
    servicer = AioChannelzServicer() if _is_aio(server) else ChannelzServicer()
    handlers = {
        name: _types.unary_unary_rpc_method_handler(
            getattr(servicer, name), request_deserializer=request.FromString,
            response_serializer=response.SerializeToString)
        for name, (_, request, response) in METHODS.items()
    }
    server.add_generic_rpc_handlers((_types.method_handlers_generic_handler(SERVICE, handlers),))


class ChannelzStub:
    """A client of grpc.channelz.v1.Channelz on a grpcpy channel (sync or
    aio): one multicallable per method, as generated stubs have."""

    def __init__(self, channel):
        for name, (_, request, response) in METHODS.items():
            setattr(self, name, channel.unary_unary(
                "/%s/%s" % (SERVICE, name), request_serializer=request.SerializeToString,
                response_deserializer=response.FromString))
