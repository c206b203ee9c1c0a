"""Metrics and traces together: a grpcpy.aio server and a sync client, with
Prometheus metrics on /metrics and OpenTelemetry traces printed to the
console.

    pip install grpcpy[otel,prometheus]
    python examples/observability.py

Both are grpcpy.stats hooks, installed here for every channel and server
made inside the `with` block. The tracer prints each span when it ends
(OpenTelemetry's ConsoleSpanExporter, one line per span); the client's
`Sent` span, its `Attempt` and the server's `Recv` span share one trace id,
carried in the request's `traceparent` header. At the end the program
scrapes its own /metrics over HTTP and prints the grpc_ counters.
"""
import asyncio
import queue
import threading
import urllib.request

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

import grpcpy
import grpcpy.aio
import grpcpy.prometheus
from grpcpy.observability import OpenTelemetryTracing


def one_line(span):
    status = span.status.status_code.name
    return "span %-25s trace=%032x id=%016x parent=%s %s\n" % (
        span.name, span.context.trace_id, span.context.span_id,
        "%016x" % span.parent.span_id if span.parent else "-" * 16, status)


async def lookup(request, context):
    if request == b"nobody":
        await context.abort(grpcpy.StatusCode.NOT_FOUND, "no such user")
    return b"found " + request


async def serve(started, stop):
    server = grpcpy.aio.server()
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "demo.Users", {"Lookup": grpcpy.unary_unary_rpc_method_handler(lookup)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    started.put(port)
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    await server.stop(None)


def main():
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=one_line)))
    metrics = grpcpy.prometheus.Metrics()
    with metrics, OpenTelemetryTracing(tracer_provider=provider):
        http = grpcpy.prometheus.start_http_server(0, addr="127.0.0.1")
        started, stop = queue.Queue(), threading.Event()
        thread = threading.Thread(target=lambda: grpcpy.aio.run(serve(started, stop)), daemon=True)
        thread.start()
        port = started.get(timeout=10)
        with grpcpy.insecure_channel("127.0.0.1:%d" % port) as channel:
            call = channel.unary_unary("/demo.Users/Lookup")
            for name in (b"ada", b"nobody"):
                try:
                    print("lookup %s: %s" % (name.decode(), call(name, timeout=10).decode()), flush=True)
                except grpcpy.RpcError as exc:
                    print("lookup %s: %s" % (name.decode(), exc.code().name), flush=True)
        stop.set()
        thread.join(10)
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http.port, timeout=10) as response:
        text = response.read().decode("utf-8")
    http.close()
    for line in text.splitlines():
        if line.startswith(("grpc_server_handled_total", "grpc_client_handled_total")):
            print(line)


if __name__ == "__main__":
    main()
