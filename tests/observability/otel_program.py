"""A gRPC program instrumented with opentelemetry-instrumentation-grpc (the
package's four instrumentors, as its documentation shows), run by
test_otel_instrumentation.py in a fresh interpreter. It makes sync and
asyncio calls of every shape, successful and failing, each under a parent
span "case:<name>", and prints the spans the real OpenTelemetry SDK
recorded as JSON: per case the client span, the server span, and whether
the server span is the client span's child (trace context propagated).

    python otel_program.py grpc [--skip-dep-check]
        `import grpc`: grpcio itself, or grpcpy under `python -m grpcpy.run`
    python otel_program.py grpcpy [--skip-dep-check]
        a program written against grpcpy (grpcpy.insecure_channel,
        grpcpy.server, grpcpy.aio...), which calls grpcpy.install_as_grpc()
        before the instrumentation package is imported
"""
import asyncio
import json
import sys
import time
from concurrent import futures

API = sys.argv[1]
SKIP_DEP_CHECK = "--skip-dep-check" in sys.argv
if API == "grpcpy":
    import grpcpy
    grpcpy.install_as_grpc()
    import grpcpy.aio
    api = grpcpy
else:
    import grpc
    import grpc.aio
    api = grpc

from opentelemetry import trace  # noqa: E402
from opentelemetry.instrumentation.grpc import (GrpcAioInstrumentorClient, GrpcAioInstrumentorServer,  # noqa: E402
                                                GrpcInstrumentorClient, GrpcInstrumentorServer)
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("otel_program")
options = {"skip_dep_check": True} if SKIP_DEP_CHECK else {}
instrumentors = (GrpcInstrumentorClient(), GrpcInstrumentorServer(), GrpcAioInstrumentorClient(),
                 GrpcAioInstrumentorServer())
ENTRY_POINTS = (api, "insecure_channel"), (api, "server"), (api.aio, "insecure_channel"), (api.aio, "server")
originals = [getattr(module, name) for module, name in ENTRY_POINTS]
for instrumentor in instrumentors:
    instrumentor.instrument(**options)

Code = api.StatusCode


# -- the sync service -----------------------------------------------------------------

def unary(request, context):
    if request == b"abort":
        context.abort(Code.NOT_FOUND, "no such thing")
    if request == b"set_code":
        context.set_code(Code.INVALID_ARGUMENT)
        context.set_details("bad argument")
        return b""
    if request == b"raise":
        raise ValueError("the handler failed")
    return request


def server_stream(request, context):
    yield request
    if request == b"abort":
        context.abort(Code.PERMISSION_DENIED, "not you")
    yield request


def client_stream(requests, context):
    return b"".join(requests)


def bidi(requests, context):
    for request in requests:
        yield request


SYNC_HANDLERS = {
    "Unary": api.unary_unary_rpc_method_handler(unary),
    "ServerStream": api.unary_stream_rpc_method_handler(server_stream),
    "ClientStream": api.stream_unary_rpc_method_handler(client_stream),
    "Bidi": api.stream_stream_rpc_method_handler(bidi),
}


def case(name, call):
    with tracer.start_as_current_span("case:" + name):
        try:
            call()
        except api.RpcError:
            pass


def sync_calls():
    server = api.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers([api.method_handlers_generic_handler("demo.Sync", SYNC_HANDLERS)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with api.insecure_channel("127.0.0.1:%d" % port) as channel:
        unary_call = channel.unary_unary("/demo.Sync/Unary")
        stream_call = channel.unary_stream("/demo.Sync/ServerStream")
        case("unary", lambda: unary_call(b"x", timeout=20))
        case("unary_abort", lambda: unary_call(b"abort", timeout=20))
        case("unary_set_code", lambda: unary_call(b"set_code", timeout=20))
        case("unary_raise", lambda: unary_call(b"raise", timeout=20))
        case("unary_with_call", lambda: unary_call.with_call(b"x", timeout=20))
        case("unary_future", lambda: unary_call.future(b"x", timeout=20).result())
        case("server_stream", lambda: list(stream_call(b"x", timeout=20)))
        case("server_stream_abort", lambda: list(stream_call(b"abort", timeout=20)))
        case("client_stream", lambda: channel.stream_unary("/demo.Sync/ClientStream")(iter([b"a", b"b"]), timeout=20))
        case("bidi", lambda: list(channel.stream_stream("/demo.Sync/Bidi")(iter([b"a", b"b"]), timeout=20)))
    server.stop(None)


# -- the asyncio service ----------------------------------------------------------------

async def aio_unary(request, context):
    if request == b"abort":
        await context.abort(Code.NOT_FOUND, "no such thing")
    return request


async def aio_server_stream(request, context):
    yield request
    yield request


async def aio_client_stream(requests, context):
    return b"".join([request async for request in requests])


async def aio_bidi(requests, context):
    async for request in requests:
        yield request


AIO_HANDLERS = {
    "Unary": api.unary_unary_rpc_method_handler(aio_unary),
    "ServerStream": api.unary_stream_rpc_method_handler(aio_server_stream),
    "ClientStream": api.stream_unary_rpc_method_handler(aio_client_stream),
    "Bidi": api.stream_stream_rpc_method_handler(aio_bidi),
}


async def aio_case(name, make_call):
    with tracer.start_as_current_span("case:" + name):
        try:
            await make_call()
        except api.RpcError:
            pass


async def aio_calls():
    server = api.aio.server()
    server.add_generic_rpc_handlers([api.method_handlers_generic_handler("demo.Aio", AIO_HANDLERS)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with api.aio.insecure_channel("127.0.0.1:%d" % port) as channel:
        unary_call = channel.unary_unary("/demo.Aio/Unary")

        async def server_stream_call():
            return [r async for r in channel.unary_stream("/demo.Aio/ServerStream")(b"x", timeout=20)]

        async def bidi_call():
            return [r async for r in channel.stream_stream("/demo.Aio/Bidi")(iter([b"a", b"b"]), timeout=20)]

        await aio_case("aio_unary", lambda: unary_call(b"x", timeout=20))
        await aio_case("aio_unary_abort", lambda: unary_call(b"abort", timeout=20))
        await aio_case("aio_server_stream", server_stream_call)
        await aio_case("aio_client_stream",
                       lambda: channel.stream_unary("/demo.Aio/ClientStream")(iter([b"a", b"b"]), timeout=20))
        await aio_case("aio_bidi", bidi_call)
    await server.stop(None)


# -- the spans, by case ------------------------------------------------------------------

def shape(span):
    """What the instrumentation chose: name, kind, status, attributes
    (the peer's port and user agent differ run to run and by library)."""
    attributes = dict(span.attributes)
    if "rpc.user_agent" in attributes:
        attributes["rpc.user_agent"] = "<user agent>"
    if str(attributes.get("net.peer.port", "")).isdigit():
        attributes["net.peer.port"] = "<port>"
    return {"name": span.name, "kind": span.kind.name, "status": span.status.status_code.name,
            "attributes": attributes, "events": [event.name for event in span.events]}


def by_case(spans):
    cases = {span.context.trace_id: span.name[len("case:"):] for span in spans if span.name.startswith("case:")}
    out = {}
    for kind in ("CLIENT", "SERVER"):
        for span in spans:
            if span.kind.name == kind and span.context.trace_id in cases:
                out.setdefault(cases[span.context.trace_id], {})[kind.lower()] = span
    result = {}
    for name, pair in out.items():
        client, server = pair.get("client"), pair.get("server")
        result[name] = {
            "client": client and shape(client),
            "server": server and shape(server),
            "linked": bool(client and server and server.parent is not None
                           and server.parent.span_id == client.context.span_id),
        }
    return result


sync_calls()
asyncio.run(aio_calls())
expected = 15
end = time.monotonic() + 30
while True:      # server spans may end just after the client saw its response
    cases = by_case(exporter.get_finished_spans())
    complete = [c for c in cases.values() if c["client"] and c["server"]]
    uninstrumented = len(exporter.get_finished_spans()) == expected    # the case spans alone
    if len(complete) >= expected or uninstrumented or time.monotonic() > end:
        break
    time.sleep(0.01)
for instrumentor in instrumentors:
    instrumentor.uninstrument()
restored = [getattr(module, name) for module, name in ENTRY_POINTS] == originals
print(json.dumps({"cases": cases, "spans": len(exporter.get_finished_spans()), "restored": restored,
                  "grpc": type(sys.modules["grpc"]).__module__}))
