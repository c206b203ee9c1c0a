"""The interop TestService for asyncio servers (grpc.aio and grpcpy.aio run
the same code), plus a harness that starts a server of one implementation
and a channel of another."""
import asyncio
import contextlib
import types

import grpc
import grpc.aio

import grpcpy
import grpcpy.aio

ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"


def code_name(code):
    """StatusCode of either implementation -> its name."""
    return code.name


RPC_ERRORS = (grpc.RpcError, grpcpy.RpcError)


class InteropService:
    """grpc.testing.TestService with the interop semantics, and a record of
    what the handlers observed (for cancellation and deadline checks)."""

    def __init__(self, pb):
        self.pb = pb
        self.observed = []           # (method, what) tuples
        self.done = asyncio.Event()  # set when a handler saw its call end

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
            await context.abort(grpc.StatusCode(_code_tuple(request.response_status.code)),
                                request.response_status.message)
        return self.pb.messages_pb2.SimpleResponse(
            payload=self.pb.messages_pb2.Payload(body=b"\0" * request.response_size))

    async def StreamingOutputCall(self, request, context):
        await self._echo_metadata(context)
        for param in request.response_parameters:
            if param.interval_us:
                await asyncio.sleep(param.interval_us / 1e6)
            yield self.pb.messages_pb2.StreamingOutputCallResponse(
                payload=self.pb.messages_pb2.Payload(body=b"\1" * param.size))
        if request.response_status.code:
            await context.abort(grpc.StatusCode(_code_tuple(request.response_status.code)),
                                request.response_status.message)

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
                    await context.abort(grpc.StatusCode(_code_tuple(request.response_status.code)),
                                        request.response_status.message)
                for param in request.response_parameters:
                    yield self.pb.messages_pb2.StreamingOutputCallResponse(
                        payload=self.pb.messages_pb2.Payload(body=b"\2" * param.size))
        except asyncio.CancelledError:
            self.observed.append(("FullDuplexCall", "interrupted"))
            raise

    async def HalfDuplexCall(self, request_iterator, context):
        requests = [r async for r in request_iterator]
        for request in requests:
            for param in request.response_parameters:
                yield self.pb.messages_pb2.StreamingOutputCallResponse(
                    payload=self.pb.messages_pb2.Payload(body=b"\3" * param.size))


def make_service(pb):
    """The interop service on top of the generated servicer base class (whose
    methods answer UNIMPLEMENTED for the RPCs not implemented here)."""
    cls = type("Service", (InteropService, pb.test_pb2_grpc.TestServiceServicer), {})
    return cls(pb)


def _code_tuple(number):
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code.value
    raise ValueError(number)


def modules(impl):
    return (grpc.aio, grpc) if impl == "grpcio" else (grpcpy.aio, grpcpy)


@contextlib.asynccontextmanager
async def serving(pair, pb, server_options=None, client_options=None, server_compression=None,
                  channel_compression=None, service=None, address="127.0.0.1"):
    client_impl, server_impl = pair
    saio, smod = modules(server_impl)
    server = saio.server(options=server_options,
                         compression=_compression(smod, server_compression))
    service = service or make_service(pb)
    pb.test_pb2_grpc.add_TestServiceServicer_to_server(service, server)
    port = server.add_insecure_port("%s:0" % address)
    await server.start()
    caio, cmod = modules(client_impl)
    channel = caio.insecure_channel("%s:%d" % (address, port), options=client_options,
                                    compression=_compression(cmod, channel_compression))
    try:
        yield types.SimpleNamespace(stub=pb.test_pb2_grpc.TestServiceStub(channel), channel=channel,
                                    server=server, service=service, port=port, cmod=cmod, caio=caio,
                                    pb=pb, m=pb.messages_pb2)
    finally:
        await channel.close()
        await server.stop(None)


def _compression(mod, name):
    if name is None:
        return None
    return {"gzip": mod.Compression.Gzip, "deflate": mod.Compression.Deflate}[name]


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
