"""gRPC server reflection (``grpc.reflection.v1.ServerReflection`` and
``grpc.reflection.v1alpha.ServerReflection``) for grpcpy's sync and aio
servers, with grpcio-reflection's call::

    from grpcpy import reflection
    reflection.enable_server_reflection(None, server)

Both protocol versions are served on the same server: grpcurl and older
tools ask v1alpha, newer ones v1.

Listed services: the names given, plus every service registered on a grpcpy
server (generated ``add_XServicer_to_server``, generic handlers that name
their service), read at each request, so services added after this call are
listed too; the reflection services list themselves. Pass None to list only
what is registered. On a server that is not grpcpy's, the names given and
the reflection services are listed.

Descriptors come from ``pool`` (protobuf's default pool, where generated
``_pb2`` modules put theirs, unless given), then from grpcpy's own pool, so
grpcpy's built-in services (health ...) are describable too. Besides what
grpcio-reflection answers, a method symbol (``pkg.Service.Method``, which
``grpcurl describe`` asks for) is found in its service's file.
"""
import inspect

from grpcpy import _types
from grpcpy._protos import reflection_v1_pb as reflection_pb2              # noqa: F401  (v1 messages)
from grpcpy._protos import reflection_v1alpha_pb as reflection_v1alpha_pb2  # noqa: F401
from grpcpy.reflection._logic import Reflection, ReflectionStream

SERVICE_NAME_V1 = "grpc.reflection.v1.ServerReflection"
SERVICE_NAME_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
# grpcio-reflection's constant names the v1alpha service
SERVICE_NAME = SERVICE_NAME_V1ALPHA
SERVICE_NAMES = (SERVICE_NAME_V1, SERVICE_NAME_V1ALPHA)
_METHOD = "ServerReflectionInfo"

__all__ = ["SERVICE_NAME", "SERVICE_NAME_V1", "SERVICE_NAME_V1ALPHA", "SERVICE_NAMES",
           "enable_server_reflection", "reflection_pb2", "reflection_v1alpha_pb2"]


def _sync_behavior(reflection):
    def ServerReflectionInfo(request_iterator, context):
        stream = ReflectionStream(reflection)
        for request in request_iterator:
            yield stream.respond(request)
    return ServerReflectionInfo


def _aio_behavior(reflection):
    async def ServerReflectionInfo(request_iterator, context):
        stream = ReflectionStream(reflection)
        async for request in request_iterator:
            yield stream.respond(request)
    return ServerReflectionInfo


def _is_aio(server):
    # an asyncio server starts with a coroutine (grpcpy.aio and grpc.aio),
    # told apart without importing either facade
    return inspect.iscoroutinefunction(getattr(server, "start", None))


def enable_server_reflection(service_names, server, pool=None):
    """Serve reflection v1 and v1alpha on ``server`` (grpcpy sync or aio).

    service_names: fully-qualified service names to list (an iterable, or
    None); the services registered on a grpcpy server are listed as well.
    pool: the DescriptorPool to describe from (protobuf's default pool if
    None); grpcpy's own descriptors are consulted after it."""
    registered = getattr(server, "_service_names", None)
    if registered is None:
        # another server cannot tell its services: list ours at least
        service_names = set(service_names or ()) | set(SERVICE_NAMES)
    reflection = Reflection(service_names, pool=pool, registered=registered)
    behavior = (_aio_behavior if _is_aio(server) else _sync_behavior)(reflection)
    handler = _types.stream_stream_rpc_method_handler(
        behavior,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString)
    server.add_generic_rpc_handlers(tuple(
        _types.method_handlers_generic_handler(name, {_METHOD: handler}) for name in SERVICE_NAMES))
