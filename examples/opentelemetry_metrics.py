"""OpenTelemetry metrics (gRFC A66) of a server and a client in one process.

The plugin is grpcio-observability's API: register it (here with `with`)
and every channel and server made afterwards records into the
MeterProvider it was given. An InMemoryMetricReader collects the points,
and the program prints, per instrument, how many calls or attempts it
counted by status (and the bytes, for the message sizes).

    pip install grpcpy[otel]
    python examples/opentelemetry_metrics.py
"""
import collections
import time
from concurrent import futures

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import grpcpy
from grpcpy.observability import OpenTelemetryPlugin


def say(request, context):
    if not request:
        context.abort(grpcpy.StatusCode.INVALID_ARGUMENT, "say something")
    return b"you said " + request


def metrics(reader):
    """The reader's metrics (it has none before the first record)."""
    data = reader.get_metrics_data()
    return [metric for resource in (data.resource_metrics if data else ())
            for scope in resource.scope_metrics for metric in scope.metrics]


def table(reader):
    """One line per instrument: counter values, or histogram record counts
    by status (with the bytes for sizes)."""
    lines = []
    for metric in metrics(reader):
        by_status, total_bytes = collections.Counter(), 0
        for point in metric.data.data_points:
            status = point.attributes.get("grpc.status", "started")
            by_status[status] += getattr(point, "count", None) or getattr(point, "value", 0)
            if metric.unit == "By":
                total_bytes += point.sum
        counts = " ".join("%s=%d" % item for item in sorted(by_status.items()))
        lines.append("%-55s %s%s" % (metric.name, counts, " (%d bytes)" % total_bytes if metric.unit == "By" else ""))
    return sorted(lines)


def server_calls_done(reader):
    return sum(point.count for metric in metrics(reader) if metric.name == "grpc.server.call.duration"
               for point in metric.data.data_points)


def main():
    reader = InMemoryMetricReader()
    # Generated stubs tell the channel their methods are known; this
    # hand-made call is not, so the filter lets its name be recorded
    # (otherwise it would be "other", as A66 asks for unknown names).
    plugin = OpenTelemetryPlugin(meter_provider=MeterProvider(metric_readers=[reader]),
                                 generic_method_attribute_filter=lambda method: method.startswith("demo."))
    with plugin:
        server = grpcpy.server(futures.ThreadPoolExecutor(2))
        server.add_registered_method_handlers("demo.Echo", {"Say": grpcpy.unary_unary_rpc_method_handler(say)})
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        with grpcpy.insecure_channel("127.0.0.1:%d" % port) as channel:
            call = channel.unary_unary("/demo.Echo/Say")
            for word in (b"one", b"two", b"three", b""):
                try:
                    call(word, timeout=10)
                except grpcpy.RpcError as error:
                    print("call failed:", error.code().name)
        # a server call's figures are recorded as it ends, maybe just after
        # the client had its answer
        deadline = time.monotonic() + 10
        while server_calls_done(reader) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.stop(None)
    for line in table(reader):
        print(line)


if __name__ == "__main__":
    main()
