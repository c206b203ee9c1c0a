"""Servers and clients of both implementations (grpcio, grpcpy) and both
facades (sync, asyncio) for the rich-status tests. One logical service,
written once: each method names the status it ends with."""
import asyncio
import collections
import threading
from concurrent import futures

import grpc
import grpc.aio
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status as grpcio_status

import grpcpy
import grpcpy.aio
import grpcpy.status

SERVICE = "rich.Errors"
KEY = "grpc-status-details-bin"
SERVERS = ("grpcio-sync", "grpcio-aio", "grpcpy-sync", "grpcpy-aio")
CLIENTS = ("grpcio-sync", "grpcio-aio", "grpcpy-sync", "grpcpy-aio")


class _Status(collections.namedtuple("_Status", "code details trailing_metadata")):
    pass


def rich_status():
    """A google.rpc.Status with three standard details packed in Any."""
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="the order is not valid")
    for detail in (
            error_details_pb2.BadRequest(field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field="quantity", description="must be positive")]),
            error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=3)),
            error_details_pb2.ErrorInfo(reason="OUT_OF_STOCK", domain="shop.example", metadata={"sku": "a-1"})):
        status.details.add().Pack(detail)
    return status


def read_details(status):
    """What a client gets out of a google.rpc.Status: comparable values."""
    if status is None:
        return None
    out = [status.code, status.message]
    for any_ in status.details:
        for cls in (error_details_pb2.BadRequest, error_details_pb2.RetryInfo, error_details_pb2.ErrorInfo):
            if any_.Is(cls.DESCRIPTOR):
                msg = cls()
                any_.Unpack(msg)
                out.append((cls.__name__, msg.SerializeToString(deterministic=True)))
    return tuple(out)


def _mismatched(field):
    status = rich_status()
    if field == "code":
        return _Status(grpcpy.StatusCode.FAILED_PRECONDITION, status.message, ((KEY, status.SerializeToString()),))
    return _Status(grpcpy.StatusCode.INVALID_ARGUMENT, "another message", ((KEY, status.SerializeToString()),))


def status_for(method, impl):
    """The grpc.Status the handler aborts with (None: it returns)."""
    to_status = grpcio_status.to_status if impl.startswith("grpcio") else grpcpy.status.to_status
    code_cls = grpc.StatusCode if impl.startswith("grpcio") else grpcpy.StatusCode
    if method == "Rich":
        return to_status(rich_status())
    if method == "BadCode":
        status = _mismatched("code")
        return _Status(code_cls.FAILED_PRECONDITION, status.details, status.trailing_metadata)
    if method == "BadMessage":
        status = _mismatched("message")
        return _Status(code_cls.INVALID_ARGUMENT, status.details, status.trailing_metadata)
    if method == "Plain":
        return _Status(code_cls.NOT_FOUND, "no such order", (("other", "x"),))
    return None


def _handlers(impl):
    module = grpc if impl.startswith("grpcio") else grpcpy

    def sync_handler(method):
        def behavior(request, context):
            status = status_for(method, impl)
            if status is not None:
                context.abort_with_status(status)
            return b"ok"
        return behavior

    def aio_handler(method):
        async def behavior(request, context):
            status = status_for(method, impl)
            if status is not None:
                await context.abort_with_status(status)
            return b"ok"
        return behavior

    make = aio_handler if impl.endswith("aio") else sync_handler
    return module.method_handlers_generic_handler(SERVICE, {
        name: module.unary_unary_rpc_method_handler(make(name))
        for name in ("Rich", "BadCode", "BadMessage", "Plain", "Ok")})


class LoopThread:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Server:
    """A started server of one kind on 127.0.0.1; .port; stop()."""

    def __init__(self, impl, handlers=None):
        self.impl = impl
        handlers = handlers or [_handlers(impl)]
        module = grpc if impl.startswith("grpcio") else grpcpy
        if impl.endswith("sync"):
            self.server = module.server(futures.ThreadPoolExecutor(4), handlers=handlers)
            self.port = self.server.add_insecure_port("127.0.0.1:0")
            self.server.start()
            self.thread = None
        else:
            self.thread = LoopThread()

            async def start():
                server = module.aio.server()
                server.add_generic_rpc_handlers(handlers)
                port = server.add_insecure_port("127.0.0.1:0")
                await server.start()
                return server, port
            self.server, self.port = self.thread.run(start())

    def stop(self):
        if self.thread is None:
            self.server.stop(None)
        else:
            self.thread.run(self.server.stop(None))
            self.thread.close()


def call(client, port, method):
    """(code name, details, rich-status values or the from_call error) of one
    call from a client of kind `client`, read with that implementation's
    from_call."""
    target = "127.0.0.1:%d" % port
    path = "/%s/%s" % (SERVICE, method)
    if client.endswith("sync"):
        module, from_call = (grpc, grpcio_status.from_call) if client.startswith("grpcio") else \
            (grpcpy, grpcpy.status.from_call)
        with module.insecure_channel(target) as channel:
            try:
                _, call_ = channel.unary_unary(path).with_call(b"x", timeout=10)
            except module.RpcError as exc:
                call_ = exc
            return _outcome(call_.code().name, call_.details(), lambda: from_call(call_))

    async def run():
        module = grpc if client.startswith("grpcio") else grpcpy
        from_call = grpcio_status.aio.from_call if client.startswith("grpcio") else grpcpy.status.aio.from_call
        async with module.aio.insecure_channel(target) as channel:
            call_ = channel.unary_unary(path)(b"x", timeout=10)
            try:
                await call_
            except module.aio.AioRpcError:
                pass
            code, details = await call_.code(), await call_.details()
            try:
                found = ("status", read_details(await from_call(call_)))
            except ValueError as exc:
                found = ("ValueError", str(exc))
            return code.name, details, found
    return asyncio.run(run())


def _outcome(code, details, read):
    try:
        found = ("status", read_details(read()))
    except ValueError as exc:
        found = ("ValueError", str(exc))
    return code, details, found
