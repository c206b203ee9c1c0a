"""Testing servicers with a real grpcpy server and channel connected in
memory: no listening socket, no port, nothing else on the machine to
collide with, and every part of the call path the same as in production
(deadlines, metadata, cancellation, streaming, status details).

    import grpcpy.testing

    with grpcpy.testing.server_and_channel() as (server, channel):
        greeter_pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
        stub = greeter_pb2_grpc.GreeterStub(channel)
        outcome = grpcpy.testing.invoke(stub.SayHello, HelloRequest(name="you"))
        assert outcome.code is grpcpy.StatusCode.OK

``grpcpy.testing.aio.server_and_channel()`` is the asyncio counterpart
(``async with``), ``add_in_memory_port(server)`` gives any grpcpy server
(sync or asyncio) an in-memory "port" and returns the target for
``grpcpy.insecure_channel`` / ``grpcpy.aio.insecure_channel``.

The transport: between a sync channel and a sync server, in-memory byte
pipes (the threaded facade's I/O loop waits on an eventfd per end, not on a
socket); between an asyncio channel and an asyncio server, in-memory
asyncio transports (no file descriptor at all); across the two facades a
``socket.socketpair()``. See grpcpy.testing._transport.
"""
import collections
import contextlib
from concurrent import futures

import grpcpy
from grpcpy import _types
from grpcpy.testing import _transport

__all__ = ["add_in_memory_port", "server_and_channel", "invoke", "call_handler", "Outcome", "aio"]


def add_in_memory_port(server):
    """Give a grpcpy server (sync or asyncio) an in-memory port; returns the
    channel target (``grpcpy-memory:///<n>``) that reaches it. Channels
    connect once the server has started, like a port that starts
    listening."""
    return _transport.add_port(server)


@contextlib.contextmanager
def server_and_channel(*handlers, interceptors=None, options=None, channel_options=None,
                       channel_interceptors=None, max_workers=4, maximum_concurrent_rpcs=None,
                       compression=None):
    """A started grpcpy.server (a thread pool of `max_workers`) with the
    generic `handlers`, and a grpcpy channel to it over memory:
    ``with server_and_channel(...) as (server, channel)``. Servicers can
    also be added to `server` inside the block (``add_XServicer_to_server``).
    On exit the channel closes and the server stops (in-flight calls
    cancelled)."""
    pool = futures.ThreadPoolExecutor(max_workers)
    server = grpcpy.server(pool, handlers=handlers, interceptors=interceptors, options=options,
                           maximum_concurrent_rpcs=maximum_concurrent_rpcs, compression=compression)
    target = add_in_memory_port(server)
    server.start()
    channel = grpcpy.insecure_channel(target, options=channel_options)
    try:
        if channel_interceptors:
            yield server, grpcpy.intercept_channel(channel, *channel_interceptors)
        else:
            yield server, channel
    finally:
        channel.close()
        server.stop(None).wait(10)
        pool.shutdown(wait=False)


class Outcome(collections.namedtuple(
        "Outcome", ("response", "responses", "initial_metadata", "trailing_metadata", "code", "details"))):
    """How one call ended, whichever way: `response` (unary-response
    methods; None when the call failed), `responses` (every response
    received, for any method), the metadata, `code` and `details`."""

    def termination(self):
        """(response, trailing_metadata, code, details), as grpcio-testing's
        unary-response termination() (response None for a streaming
        response or a failed call)."""
        return self.response, self.trailing_metadata, self.code, self.details

    @property
    def ok(self):
        return self.code is grpcpy.StatusCode.OK


def invoke(multicallable, request, **kwargs):
    """Make one call with a sync multicallable (a stub's method or
    ``channel.unary_unary(...)``), to its end, and return its Outcome
    instead of raising RpcError. `request` is the request message, or an
    iterable of them for request-streaming methods; `kwargs` are the call's
    (timeout, metadata, wait_for_ready, compression ...)."""
    if isinstance(multicallable, (_types.UnaryUnaryMultiCallable, _types.StreamUnaryMultiCallable)):
        try:
            response, call = multicallable.with_call(request, **kwargs)
        except grpcpy.RpcError as exc:
            response, call = None, exc
        responses = [] if response is None else [response]
    else:
        call = multicallable(request, **kwargs)
        responses = []
        response = None
        try:
            for item in call:
                responses.append(item)
        except grpcpy.RpcError:
            pass
    return Outcome(response, responses, call.initial_metadata(), call.trailing_metadata(), call.code(),
                   call.details())


class _Passing:
    """Hands request and response objects of one call across unchanged (as
    grpcio-testing gives them to the servicer): each message goes over the
    wire as an empty payload while the object waits here, in order."""

    def __init__(self):
        self.requests = collections.deque()
        self.responses = collections.deque()

    def handler(self, method_handler):
        """`method_handler` with (de)serializers that take and give the
        objects kept here."""
        requests, responses = self.requests, self.responses

        def take_request(_data):
            return requests.popleft()

        def keep_response(obj):
            responses.append(obj)
            return b""
        return method_handler._replace(request_deserializer=take_request, response_serializer=keep_response)

    def multicallable(self, channel, method_handler):
        requests, responses = self.requests, self.responses

        def keep_request(obj):
            requests.append(obj)
            return b""

        def take_response(_data):
            return responses.popleft()
        kind = ("stream" if method_handler.request_streaming else "unary") + "_" + \
            ("stream" if method_handler.response_streaming else "unary")
        return getattr(channel, kind)(_HANDLER_PATH, keep_request, take_response)


_HANDLER_PATH = "/grpcpy.testing.Handler/Call"


def _handler_table(passing, method_handler):
    return grpcpy.method_handlers_generic_handler(
        "grpcpy.testing.Handler", {"Call": passing.handler(_as_handler(method_handler))})


def _as_handler(method_handler):
    if hasattr(method_handler, "request_streaming"):
        # any RpcMethodHandler (grpcio's too): grpcpy's, to replace its serializers
        return _types._RpcMethodHandler(*(getattr(method_handler, field) for field in _types._RpcMethodHandler._fields))
    if not callable(method_handler):
        raise TypeError("call_handler takes an RpcMethodHandler or a unary-unary function")
    return grpcpy.unary_unary_rpc_method_handler(method_handler)


def call_handler(method_handler, request, **kwargs):
    """Run one handler (an RpcMethodHandler such as
    ``grpcpy.unary_stream_rpc_method_handler(servicer.ListThings)``, or a
    plain unary-unary function) for one call on a real server, with a real
    servicer context, and return its Outcome (``.termination()`` gives
    (response, trailing_metadata, code, details)). As in grpcio-testing the
    request and response objects reach the handler and the caller
    unchanged (no serialization); everything else - metadata, deadline
    (`timeout`), cancellation, status - goes over an in-memory
    connection."""
    method_handler = _as_handler(method_handler)
    passing = _Passing()
    with server_and_channel(_handler_table(passing, method_handler)) as (_, channel):
        return invoke(passing.multicallable(channel, method_handler), request, **kwargs)


def __getattr__(name):
    # grpcpy.testing.aio without importing asyncio for sync users
    if name == "aio":
        import importlib
        return importlib.import_module("grpcpy.testing.aio")
    raise AttributeError("module 'grpcpy.testing' has no attribute %r" % (name,))
