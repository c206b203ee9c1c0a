"""The interop TestService, once for asyncio servers (grpc.aio and
grpcpy.aio run the same code) and once for threaded sync servers (grpc and
grpcpy), with the same semantics and the same record of observations; plus
the harness that starts a server of one facade and a client driver of
another."""
import asyncio
import contextlib
import threading
import time
import types

import grpc

from .drivers import RPC_ERRORS, client_driver, server_driver

ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"


def code_name(code):
    """StatusCode of either implementation -> its name."""
    return code.name


def _status(number):
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code
    raise ValueError(number)


class _TestServiceBase:
    """What the handlers observed, the same for both servicers:
    (method, "time_remaining", seconds) when a sleeping handler starts,
    (method, "interrupted") when the call ended under a busy handler,
    (method, "done" | "cancelled") when the call ended (cancelled: before the
    handler answered). Appended from handler threads or the loop alike."""

    def __init__(self, pb):
        self.pb = pb
        self.observed = []
        self.done = threading.Event()  # a watched call ended

    def _body(self, size, fill):
        return self.pb.messages_pb2.Payload(body=fill * size)


class AioInteropService(_TestServiceBase):
    """grpc.testing.TestService for grpc.aio / grpcpy.aio servers."""

    async def _echo_metadata(self, context):
        md = dict(context.invocation_metadata())
        if ECHO_INITIAL in md:
            await context.send_initial_metadata(((ECHO_INITIAL, md[ECHO_INITIAL]),))
        if ECHO_TRAILING in md:
            context.set_trailing_metadata(((ECHO_TRAILING, md[ECHO_TRAILING]),))

    def _watch(self, name, context):
        def on_done(ctx):
            self.observed.append((name, "cancelled" if ctx.cancelled() else "done"))
            self.done.set()
        context.add_done_callback(on_done)

    async def EmptyCall(self, request, context):
        return self.pb.empty_pb2.Empty()

    async def UnaryCall(self, request, context):
        self._watch("UnaryCall", context)
        await self._echo_metadata(context)
        md = dict(context.invocation_metadata())
        if "x-sleep" in md:
            self.observed.append(("UnaryCall", "time_remaining", context.time_remaining()))
            try:
                await asyncio.sleep(float(md["x-sleep"]))
            except asyncio.CancelledError:
                self.observed.append(("UnaryCall", "interrupted"))
                raise
        if request.response_status.code:
            await context.abort(_status(request.response_status.code), request.response_status.message)
        return self.pb.messages_pb2.SimpleResponse(payload=self._body(request.response_size, b"\0"))

    async def StreamingOutputCall(self, request, context):
        await self._echo_metadata(context)
        for param in request.response_parameters:
            if param.interval_us:
                await asyncio.sleep(param.interval_us / 1e6)
            yield self.pb.messages_pb2.StreamingOutputCallResponse(payload=self._body(param.size, b"\1"))
        if request.response_status.code:
            await context.abort(_status(request.response_status.code), request.response_status.message)

    async def StreamingInputCall(self, request_iterator, context):
        total = 0
        async for request in request_iterator:
            total += len(request.payload.body)
        return self.pb.messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    async def FullDuplexCall(self, request_iterator, context):
        self._watch("FullDuplexCall", context)
        await self._echo_metadata(context)
        try:
            async for request in request_iterator:
                if request.response_status.code:
                    await context.abort(_status(request.response_status.code), request.response_status.message)
                for param in request.response_parameters:
                    yield self.pb.messages_pb2.StreamingOutputCallResponse(payload=self._body(param.size, b"\2"))
        except asyncio.CancelledError:
            self.observed.append(("FullDuplexCall", "interrupted"))
            raise

    async def HalfDuplexCall(self, request_iterator, context):
        requests = [r async for r in request_iterator]
        for request in requests:
            for param in request.response_parameters:
                yield self.pb.messages_pb2.StreamingOutputCallResponse(payload=self._body(param.size, b"\3"))


class _Watch:
    """A sync handler's view of its call ending: `context.add_callback` sets
    the event, so a sleeping handler waits on it instead of time.sleep and
    notices a cancel or the deadline at once."""

    def __init__(self, record, name, context):
        self.ended = threading.Event()
        self.answered = False
        self._record, self._name = record, name
        if not context.add_callback(self._on_end):
            self._on_end()  # the call is over already

    def _on_end(self):
        self._record.observed.append((self._name, "done" if self.answered else "cancelled"))
        self._record.done.set()
        self.ended.set()

    def sleep(self, seconds):
        """True when the call ended during the sleep."""
        return self.ended.wait(seconds)


class SyncInteropService(_TestServiceBase):
    """grpc.testing.TestService for grpc / grpcpy sync servers (handlers run
    in the server's thread pool)."""

    def _echo_metadata(self, context):
        md = dict(context.invocation_metadata())
        if ECHO_INITIAL in md:
            context.send_initial_metadata(((ECHO_INITIAL, md[ECHO_INITIAL]),))
        if ECHO_TRAILING in md:
            context.set_trailing_metadata(((ECHO_TRAILING, md[ECHO_TRAILING]),))

    def EmptyCall(self, request, context):
        return self.pb.empty_pb2.Empty()

    def UnaryCall(self, request, context):
        watch = _Watch(self, "UnaryCall", context)
        self._echo_metadata(context)
        md = dict(context.invocation_metadata())
        if "x-sleep" in md:
            self.observed.append(("UnaryCall", "time_remaining", context.time_remaining()))
            if watch.sleep(float(md["x-sleep"])):
                self.observed.append(("UnaryCall", "interrupted"))
                return self.pb.messages_pb2.SimpleResponse()  # nobody receives it
        watch.answered = True
        if request.response_status.code:
            context.abort(_status(request.response_status.code), request.response_status.message)
        return self.pb.messages_pb2.SimpleResponse(payload=self._body(request.response_size, b"\0"))

    def StreamingOutputCall(self, request, context):
        self._echo_metadata(context)
        for param in request.response_parameters:
            if param.interval_us:
                time.sleep(param.interval_us / 1e6)
            yield self.pb.messages_pb2.StreamingOutputCallResponse(payload=self._body(param.size, b"\1"))
        if request.response_status.code:
            context.abort(_status(request.response_status.code), request.response_status.message)

    def StreamingInputCall(self, request_iterator, context):
        total = sum(len(request.payload.body) for request in request_iterator)
        return self.pb.messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    def FullDuplexCall(self, request_iterator, context):
        watch = _Watch(self, "FullDuplexCall", context)
        self._echo_metadata(context)
        try:
            # a cancelled call's request iterator raises RpcError (grpc)
            for request in request_iterator:
                if request.response_status.code:
                    watch.answered = True
                    context.abort(_status(request.response_status.code), request.response_status.message)
                for param in request.response_parameters:
                    yield self.pb.messages_pb2.StreamingOutputCallResponse(payload=self._body(param.size, b"\2"))
        except RPC_ERRORS:
            self.observed.append(("FullDuplexCall", "interrupted"))
            raise
        watch.answered = True

    def HalfDuplexCall(self, request_iterator, context):
        requests = list(request_iterator)
        for request in requests:
            for param in request.response_parameters:
                yield self.pb.messages_pb2.StreamingOutputCallResponse(payload=self._body(param.size, b"\3"))


def make_service(pb, facade="grpcio-aio"):
    """The interop service for a server facade, on top of the generated
    servicer base class (whose methods answer UNIMPLEMENTED for the RPCs not
    implemented here)."""
    base = SyncInteropService if facade.endswith("-sync") else AioInteropService
    cls = type("Service", (base, pb.test_pb2_grpc.TestServiceServicer), {})
    return cls(pb)


async def until(predicate, timeout=5.0, step=0.01):
    """Poll `predicate` (observations come from other threads too)."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(step)
    return predicate()


@contextlib.asynccontextmanager
async def serving(pair, pb, server_options=None, client_options=None, server_compression=None,
                  channel_compression=None, service=None, address="127.0.0.1", server_interceptors=None):
    """A server of facade pair.server and a client driver of pair.client."""
    server = server_driver(pair.server, options=server_options, compression_name=server_compression,
                           interceptors=server_interceptors)
    service = service or make_service(pb, pair.server)
    pb.test_pb2_grpc.add_TestServiceServicer_to_server(service, server.server)
    port = server.add_insecure_port("%s:0" % address)
    await server.start()
    drv = client_driver(pair.client, pb, "%s:%d" % (address, port), options=client_options,
                        compression_name=channel_compression)
    try:
        yield types.SimpleNamespace(drv=drv, server=server, service=service, port=port, pb=pb, m=pb.messages_pb2)
    finally:
        await drv.close()
        await server.stop(None)


LOOP_KIND = {"value": "uvloop"}
RUN_TIMEOUT = 60


def _loop_factory(kind):
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop
    return asyncio.SelectorEventLoop


def run(coro):
    """Run a scenario on the loop kind the current test asked for."""
    with asyncio.Runner(loop_factory=_loop_factory(LOOP_KIND["value"])) as runner:
        return runner.run(asyncio.wait_for(coro, RUN_TIMEOUT))
