"""The grpc.health.v1.Health service's stub, servicer base and registration
(grpc_health.v1.health_pb2_grpc's names), for grpcpy servers and channels."""
import sys

from grpcpy import _types
from grpcpy.health import health_pb2 as _pb

SERVICE_NAME = "grpc.health.v1.Health"
# a grpcpy server option: stop(grace) first flips every service of the
# grpcpy health servicers registered on it to NOT_SERVING
DRAIN_ON_STOP = "grpcpy.health.drain_on_stop"


class HealthStub:
    """Client stub: Check, List (unary) and Watch (server streaming)."""

    def __init__(self, channel):
        self.Check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=_pb.HealthCheckRequest.SerializeToString,
            response_deserializer=_pb.HealthCheckResponse.FromString,
            _registered_method=True)
        self.List = channel.unary_unary(
            "/grpc.health.v1.Health/List",
            request_serializer=_pb.HealthListRequest.SerializeToString,
            response_deserializer=_pb.HealthListResponse.FromString,
            _registered_method=True)
        self.Watch = channel.unary_stream(
            "/grpc.health.v1.Health/Watch",
            request_serializer=_pb.HealthCheckRequest.SerializeToString,
            response_deserializer=_pb.HealthCheckResponse.FromString,
            _registered_method=True)


def _unimplemented(context):
    context.set_code(_types.StatusCode.UNIMPLEMENTED)
    context.set_details("Method not implemented!")
    raise NotImplementedError("Method not implemented!")


class HealthServicer:
    """Base class of a Health service written by hand: every method answers
    UNIMPLEMENTED until overridden. grpcpy.health.HealthServicer is the
    ready-made one."""

    def Check(self, request, context):
        _unimplemented(context)

    def List(self, request, context):
        _unimplemented(context)

    def Watch(self, request, context):
        _unimplemented(context)


def add_HealthServicer_to_server(servicer, server):
    """Serve `servicer` on a grpcpy server, sync or asyncio.

    grpcpy's own servicers (grpcpy.health.HealthServicer and
    grpcpy.health.aio.HealthServicer) go on either kind: on an asyncio
    server the sync servicer's statuses are served by coroutines, so its
    Watches hold no thread. With the server option
    ("grpcpy.health.drain_on_stop", 1), the server's stop(grace) first calls
    their enter_graceful_shutdown(), so open Watches see NOT_SERVING before
    the connections close."""
    state = _state_of(servicer)
    check, listing, watch = servicer.Check, servicer.List, servicer.Watch
    if state is not None:
        # grpcpy's servicer of the other kind than the server: its statuses
        # served by the server's kind of functions (methods a subclass
        # overrides are kept)
        from grpcpy.health import aio, health
        aio_server = _is_aio_server(server)
        own = aio.HealthServicer if aio_server else health.HealthServicer
        if not isinstance(servicer, own):
            other = health.HealthServicer if aio_server else aio.HealthServicer
            fitting = (aio if aio_server else health)._methods(state)
            check, listing, watch = [
                fit if getattr(type(servicer), name, None) is getattr(other, name) else mine
                for name, fit, mine in zip(("Check", "List", "Watch"), fitting, (check, listing, watch))]
    handlers = {
        "Check": _types.unary_unary_rpc_method_handler(
            check, request_deserializer=_pb.HealthCheckRequest.FromString,
            response_serializer=_pb.HealthCheckResponse.SerializeToString),
        "List": _types.unary_unary_rpc_method_handler(
            listing, request_deserializer=_pb.HealthListRequest.FromString,
            response_serializer=_pb.HealthListResponse.SerializeToString),
        "Watch": _types.unary_stream_rpc_method_handler(
            watch, request_deserializer=_pb.HealthCheckRequest.FromString,
            response_serializer=_pb.HealthCheckResponse.SerializeToString),
    }
    server.add_generic_rpc_handlers((_types.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    add_registered = getattr(server, "add_registered_method_handlers", None)
    if add_registered is not None:
        add_registered(SERVICE_NAME, handlers)
    if state is not None:
        options = getattr(server, "_options", None)
        raw = getattr(options, "raw", None) or {}
        if raw.get(DRAIN_ON_STOP) and hasattr(server, "_add_stop_hook"):
            server._add_stop_hook(state.enter_graceful_shutdown)


def _state_of(servicer):
    from grpcpy.health._state import HealthState
    state = getattr(servicer, "_state", None)
    return state if isinstance(state, HealthState) else None


def _is_aio_server(server):
    # grpcpy.aio is not imported for a sync program
    module = sys.modules.get("grpcpy.aio._server")
    return module is not None and isinstance(server, module.Server)
