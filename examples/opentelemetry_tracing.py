"""OpenTelemetry tracing: one trace across two hops.

A client calls a shop server, whose handler calls a stock server; all three
are grpcpy, traced by ``grpcpy.observability.OpenTelemetryTracing`` (gRFC
A72's spans: Sent.* and Attempt.* for a client call and its attempts,
Recv.* for a server call). The trace context travels in each call's
metadata as W3C `traceparent`, and the shop's handler runs inside its
server span, so its own call joins the same trace with no code for it.

The OpenTelemetry SDK keeps the spans in memory here and the program prints
each trace as a tree; a real application would give the TracerProvider a
BatchSpanProcessor with an exporter (OTLP, ConsoleSpanExporter, ...).

    pip install grpcpy[otel]
    python examples/opentelemetry_tracing.py
"""
from concurrent import futures

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import grpcpy
from grpcpy.observability import OpenTelemetryTracing

STOCK = {b"apple": 3}


def take(item, context):
    if STOCK.get(item, 0) == 0:
        context.abort(grpcpy.StatusCode.FAILED_PRECONDITION, "out of stock")
    STOCK[item] -= 1
    return b"taken"


def serve(service, method, handler):
    server = grpcpy.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        service, {method: grpcpy.unary_unary_rpc_method_handler(handler)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, "127.0.0.1:%d" % port


def print_tree(spans, parent=None, depth=0):
    children = sorted((s for s in spans if (s.parent.span_id if s.parent else None) == parent),
                      key=lambda s: s.start_time)
    for span in children:
        status = span.status.status_code.name
        if span.status.description:
            status += " (%s)" % span.status.description
        print("%-36s %-8s %s" % ("  " * depth + span.name, span.kind.name, status))
        print_tree(spans, span.context.span_id, depth + 1)


def main():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("shop-client")

    # registered globally: the channels and servers made inside are traced
    with OpenTelemetryTracing(tracer_provider=provider):
        stock, stock_target = serve("demo.Stock", "Take", take)
        stock_channel = grpcpy.insecure_channel(stock_target)

        def buy(item, context):
            try:
                return stock_channel.unary_unary("/demo.Stock/Take")(item, timeout=10)
            except grpcpy.RpcError as err:
                context.abort(err.code(), err.details())

        shop, shop_target = serve("demo.Shop", "Buy", buy)
        channel = grpcpy.insecure_channel(shop_target)

    for item in (b"apple", b"pear"):
        with tracer.start_as_current_span("buy " + item.decode()):
            try:
                channel.unary_unary("/demo.Shop/Buy")(item, timeout=10)
            except grpcpy.RpcError:
                pass
    channel.close()
    stock_channel.close()
    shop.stop(5).wait(10)   # once stopped, every server call has ended its span
    stock.stop(5).wait(10)

    spans = exporter.get_finished_spans()
    for root in sorted((s for s in spans if s.parent is None), key=lambda s: s.start_time):
        trace = [s for s in spans if s.context.trace_id == root.context.trace_id]
        print("trace of %r: %d spans" % (root.name, len(trace)))
        print_tree(trace)


if __name__ == "__main__":
    main()
