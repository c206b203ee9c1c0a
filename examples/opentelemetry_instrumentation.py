"""Traces from the opentelemetry-instrumentation-grpc package on a program
written for grpcpy: a sync and an asyncio server and client, a call that
succeeds and one that fails, and the spans the package made.

grpcpy.install_as_grpc() comes first: the package patches the module it
imports as `grpc` (grpc.insecure_channel, grpc.server, grpc.aio.*), which
then is grpcpy, so grpcpy.insecure_channel and grpcpy.server are the ones
it wraps. skip_dep_check=True: the instrumentors otherwise look for the
grpcio distribution and instrument nothing without it.

    pip install opentelemetry-sdk opentelemetry-instrumentation-grpc
    python examples/opentelemetry_instrumentation.py
"""
import asyncio
import time
from concurrent import futures

import grpcpy

grpcpy.install_as_grpc()     # before the instrumentation package imports grpc

import grpcpy.aio  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.instrumentation.grpc import (GrpcAioInstrumentorClient, GrpcAioInstrumentorServer,  # noqa: E402
                                                GrpcInstrumentorClient, GrpcInstrumentorServer)
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

exporter = InMemorySpanExporter()    # a real exporter (OTLP, console) goes here
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
for instrumentor in (GrpcInstrumentorClient(), GrpcInstrumentorServer(),
                     GrpcAioInstrumentorClient(), GrpcAioInstrumentorServer()):
    instrumentor.instrument(skip_dep_check=True)


def hello(request, context):
    if not request:
        context.abort(grpcpy.StatusCode.INVALID_ARGUMENT, "say who you are")
    return b"hello " + request


async def aio_hello(request, context):
    return b"hello " + request


def call(stub, request):
    try:
        return stub(request, timeout=10)
    except grpcpy.RpcError as exc:
        return exc.code().name


def sync_calls():
    server = grpcpy.server(futures.ThreadPoolExecutor(2), handlers=[grpcpy.method_handlers_generic_handler(
        "demo.Greeter", {"Hello": grpcpy.unary_unary_rpc_method_handler(hello)})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpcpy.insecure_channel("127.0.0.1:%d" % port) as channel:
        stub = channel.unary_unary("/demo.Greeter/Hello")
        print("sync:", call(stub, b"world"), call(stub, b""))
    server.stop(None)


async def aio_calls():
    server = grpcpy.aio.server()
    server.add_generic_rpc_handlers([grpcpy.method_handlers_generic_handler(
        "demo.AioGreeter", {"Hello": grpcpy.unary_unary_rpc_method_handler(aio_hello)})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpcpy.aio.insecure_channel("127.0.0.1:%d" % port) as channel:
        print("aio:", await channel.unary_unary("/demo.AioGreeter/Hello")(b"async world", timeout=10))
    await server.stop(None)


def main():
    sync_calls()
    asyncio.run(aio_calls())
    end = time.monotonic() + 10
    while len(exporter.get_finished_spans()) < 6 and time.monotonic() < end:
        time.sleep(0.01)     # a server span can end just after its client got the answer
    spans = exporter.get_finished_spans()
    for client in sorted((s for s in spans if s.kind.name == "CLIENT"), key=lambda s: s.start_time):
        for span in [client] + [s for s in spans if s.parent and s.parent.span_id == client.context.span_id]:
            print("%-6s %s status=%s rpc.grpc.status_code=%s" % (
                span.kind.name, span.name, span.status.status_code.name, span.attributes["rpc.grpc.status_code"]))


if __name__ == "__main__":
    main()
