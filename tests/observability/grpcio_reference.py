"""The metrics tests' traffic on grpcio alone, with grpcio-observability's
OpenTelemetryPlugin registered globally: prints its data points as JSON
(test_metrics.test_same_figures_as_grpcio_observability compares them with
grpcpy's). Runs in an interpreter with grpcio-observability and without
grpcpy; the provider gets Views with A66's buckets, as the plugin asks for
none itself.
"""
import json
import os
import sys
from concurrent import futures

import grpc
import grpc_observability
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metrics_service as svc  # noqa: E402


def main():
    reader = InMemoryMetricReader()
    views = [View(instrument_name="grpc.*duration", aggregation=ExplicitBucketHistogramAggregation(svc.A66_LATENCY)),
             View(instrument_name="grpc.*message_size", aggregation=ExplicitBucketHistogramAggregation(svc.A66_SIZE))]
    plugin = grpc_observability.OpenTelemetryPlugin(meter_provider=MeterProvider(metric_readers=[reader],
                                                                                 views=views))
    with plugin:
        server = grpc.server(futures.ThreadPoolExecutor(4))
        svc.Service(grpc).add_to(server)
        target = "127.0.0.1:%d" % server.add_insecure_port("127.0.0.1:0")
        server.start()
        with grpc.insecure_channel(target, options=svc.channel_options()) as channel:
            svc.run_sync(grpc, channel)
        server.stop(None)
    # leaving the plugin flushes what grpc-core still held
    print(json.dumps({"target": target, "points": svc.points(reader)}))


if __name__ == "__main__":
    main()
