"""Prometheus metrics: a server and a channel counted by grpcpy.prometheus,
served on /metrics, then scraped over HTTP like Prometheus would.

`Metrics().register_global()` installs the metrics on every server and
channel made afterwards (one of them: the option
("grpcpy.stats_hooks", metrics)); `start_http_server` serves prometheus_client's
registry on a port. The program makes four calls (one fails), reads its
own /metrics and prints the grpc_ counters (histogram buckets, sums and
prometheus_client's _created samples left out).

    pip install grpcpy[prometheus]
    python examples/prometheus_metrics.py
"""
import urllib.request
from concurrent import futures

import grpcpy
import grpcpy.prometheus


def say(request, context):
    if request == b"boom":
        context.abort(grpcpy.StatusCode.INVALID_ARGUMENT, "no booms here")
    return request


def main():
    grpcpy.prometheus.Metrics().register_global()
    metrics_http = grpcpy.prometheus.start_http_server(0, addr="127.0.0.1")     # 0: a free port

    server = grpcpy.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "demo.Echo", {"Say": grpcpy.unary_unary_rpc_method_handler(say)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpcpy.insecure_channel("127.0.0.1:%d" % port) as channel:
        call = channel.unary_unary("/demo.Echo/Say")
        for word in (b"one", b"two", b"three", b"boom"):
            try:
                call(word, timeout=10)
            except grpcpy.RpcError:
                pass
    server.stop(None).wait()        # every call has ended on the server too

    url = "http://127.0.0.1:%d/metrics" % metrics_http.port
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode("utf-8")
    for line in text.splitlines():
        if line.startswith("grpc_") and not any(s in line for s in ("_bucket", "_sum", "_created")):
            print(line)
    metrics_http.close()


if __name__ == "__main__":
    main()
